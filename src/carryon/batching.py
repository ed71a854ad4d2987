"""`--batch ROLES`: a role's calls go through the provider's batch API (about half price, results within hours).

`BatchClient` is a ChatClient: the judges and the engine call it as they would a synchronous model, so batch mode
needs no second pipeline. Calls are held in a queue; once no new call has arrived for `settle_s` (every worker is
waiting) the queue is submitted as one batch — so each batch is a *round*: all pending judgements, or, for the
target, every pending conversation's next turn (the rollout then keeps all conversations in flight at once).

Durability (the run store's `batches` and `batch_requests` tables):
- a batch and the keys of its requests (the call-cache keys, also each request's `custom_id`) are committed before
  the provider sees it (`submitting`), and marked `live` with the provider's id the moment it is accepted;
- a killed or restarted run first reconciles: a `submitting` batch is looked up at the provider (OpenAI by metadata,
  Anthropic by time and size) and adopted if found; every live batch is watched again. A call whose key is in a live
  batch waits for that batch — it is never submitted twice;
- an ended batch's results are committed in one transaction; requests that failed or expired (the rest of an
  expired batch, a batch that failed as a whole) are submitted again in the next round, alone, up to
  `max_attempts` times, after which the call fails like a synchronous call that ran out of retries.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Coroutine
from typing import Any

from carryon.core.errors import ModelCallError
from carryon.core.chat import ChatRequest, ChatResult
from carryon.models.batch_api import BatchAPI, BatchState
from carryon.store import Store


class BatchClient:
    def __init__(self, role: str, name: str, api: BatchAPI, store: Store, *, poll_s: float = 30.0,
                 settle_s: float = 0.2, max_attempts: int = 3) -> None:  # fmt: skip
        self.name = name
        self.role = role
        self.api = api
        self.base_url = api.endpoint
        self.store = store
        self.poll_s, self.settle_s, self.max_attempts = poll_s, settle_s, max_attempts
        self.submitted = 0
        """Requests submitted by this process."""
        self.batches = 0
        self.adopted = 0
        """Batches of an earlier, interrupted process found live and collected."""
        self._queue: dict[str, ChatRequest] = {}
        self._futures: dict[str, asyncio.Future[ChatResult]] = {}
        self._requests: dict[str, ChatRequest] = {}
        self._attempts: dict[str, int] = {}
        self._wake: asyncio.Event | None = None
        self._ready: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._error: ModelCallError | None = None

    # -- the ChatClient protocol --------------------------------------------------------------------------------
    async def complete(self, request: ChatRequest) -> ChatResult:
        if self._ready is None:
            self._ready = asyncio.ensure_future(self._start())
        await asyncio.shield(self._ready)
        if self._error is not None:
            raise self._error
        key = request.cache_key(self.name)
        stored = self.store.batch_result(key)
        if stored is not None:  # collected by an earlier batch (perhaps of a killed run)
            return ChatResult.model_validate_json(stored)
        self._requests[key] = request
        future = self._futures.get(key)
        if future is None:
            future = self._futures[key] = asyncio.get_running_loop().create_future()
            self._enqueue(key, request)
        return await asyncio.shield(future)

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    # -- background work ----------------------------------------------------------------------------------------
    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            failure = error if isinstance(error, ModelCallError) else ModelCallError(f"{self.name}: batch: {error!r}")
            self._fail_all(failure)

    def _enqueue(self, key: str, request: ChatRequest) -> None:
        self._queue[key] = request
        if self._wake is not None:
            self._wake.set()

    async def _start(self) -> None:
        """Reconcile what an earlier process left: adopt its live batches, look up the ones it was submitting."""
        self._wake = asyncio.Event()
        for row in self.store.open_batches(self.role, self.name):
            batch_id, remote = row["batch_id"], row["remote_id"]
            keys = self.store.batch_keys(batch_id)
            if row["status"] == "submitting":
                try:
                    remote = await self.api.find(batch_id, row["n"], row["created"], self.store.known_remote_batches())
                except ModelCallError:
                    remote = None
                if remote is None:  # never reached the provider: its requests are submitted afresh when asked for
                    self.store.finish_batch(batch_id, "not_submitted", {}, {})
                    continue
                self.store.set_batch(batch_id, "live", remote)
            loop = asyncio.get_running_loop()
            for key in keys:
                self._futures.setdefault(key, loop.create_future())
            self.adopted += 1
            self._spawn(self._watch(batch_id, remote, keys))
        if self._queue:
            self._wake.set()
        self._spawn(self._flush_rounds())

    async def _flush_rounds(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            size = -1
            while size != len(self._queue) and len(self._queue) < self.api.max_requests:
                size = len(self._queue)
                await asyncio.sleep(self.settle_s)  # more calls may be on their way: wait for a quiet moment
            chunk = list(itertools.islice(self._queue.items(), self.api.max_requests))
            for key, _ in chunk:
                del self._queue[key]
            if not self._queue:
                self._wake.clear()
            if chunk:
                await self._submit(chunk)

    async def _submit(self, chunk: list[tuple[str, ChatRequest]]) -> None:
        batch_id = f"carryon-{uuid.uuid4().hex[:20]}"
        keys = [key for key, _ in chunk]
        self.store.add_batch(batch_id, self.api.provider, self.role, self.name, self.api.endpoint, keys)
        try:
            remote: str | None = await self.api.submit(batch_id, chunk)
        except ModelCallError as error:
            if error.permanent:
                self.store.finish_batch(batch_id, "rejected", {}, {k: str(error) for k in keys})
                raise
            try:  # the provider may have made it before the connection failed: look before submitting again
                remote = await self.api.find(batch_id, len(keys), 0.0, self.store.known_remote_batches())
            except ModelCallError:
                remote = None
            if remote is None:
                self.store.finish_batch(batch_id, "not_submitted", {}, {k: str(error) for k in keys})
                self._retry_or_fail(keys, str(error))
                return
        assert remote is not None
        self.store.set_batch(batch_id, "live", remote)
        self.submitted += len(keys)
        self.batches += 1
        self._spawn(self._watch(batch_id, remote, keys))

    async def _watch(self, batch_id: str, remote: str, keys: list[str]) -> None:
        """Poll one batch until it ends; commit its results; hand them to the waiting calls."""
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                state = await self.api.poll(remote)
            except ModelCallError as error:
                if not error.permanent:
                    continue  # the API is briefly unreachable: the batch runs on regardless
                state = BatchState(remote, True, f"unknown ({error})")  # gone: its requests are submitted again
            if state.ended:
                break
        outcomes = await self._results(state)
        wanted = set(keys)
        done: dict[str, ChatResult] = {}
        failed: dict[str, str] = {}
        for key, outcome in outcomes.items():
            if key not in wanted:
                continue
            if isinstance(outcome, ChatResult):
                outcome.batch_id, outcome.endpoint = remote, self.api.endpoint
                done[key] = outcome
            else:
                failed[key] = outcome
        self.store.finish_batch(batch_id, state.status, {k: r.model_dump_json() for k, r in done.items()}, failed)
        for key, result in done.items():
            future = self._futures.pop(key, None)
            self._requests.pop(key, None)
            self._attempts.pop(key, None)
            if future is not None and not future.done():
                future.set_result(result)
        missing = [key for key in keys if key not in done]
        for reason, group in itertools.groupby(missing, key=lambda k: failed.get(k, f"batch {state.status}")):
            self._retry_or_fail(list(group), reason)

    async def _results(self, state: BatchState) -> dict[str, ChatResult | str]:
        while state.raw:
            try:
                return await self.api.results(state)
            except ModelCallError as error:
                if error.permanent:
                    break  # results gone: the requests are submitted again
                await asyncio.sleep(self.poll_s)
        return {}

    def _retry_or_fail(self, keys: list[str], reason: str) -> None:
        """Requests a batch did not answer go into the next round, up to `max_attempts` submissions each."""
        for key in keys:
            future = self._futures.get(key)
            request = self._requests.get(key)
            if future is None:
                continue
            if request is None:  # left by an earlier process, not asked for yet: submitted afresh when it is
                self._futures.pop(key)
                continue
            attempts = self._attempts[key] = self._attempts.get(key, 0) + 1
            if attempts < self.max_attempts:
                self._enqueue(key, request)
                continue
            self._futures.pop(key)
            self._requests.pop(key)
            if not future.done():
                future.set_exception(ModelCallError(f"{self.name}: batch request failed {attempts} times ({reason})"))
                future.exception()  # mark retrieved: the waiter re-raises it

    def _fail_all(self, error: ModelCallError) -> None:
        """A permanent error (a rejected key, a malformed batch): every waiting call fails with it."""
        self._error = error
        self._queue.clear()
        for future in self._futures.values():
            if not future.done():
                future.set_exception(error)
                future.exception()
        self._futures.clear()
