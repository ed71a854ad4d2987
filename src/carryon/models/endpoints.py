"""One model served at several endpoints (`--target-base-url URL1,URL2,…`): vLLM data-parallel replicas, SGLang
workers, one llama.cpp per GPU. The router keeps a conversation's calls on one endpoint, because that endpoint holds
its prefix in the KV cache (prefix caching makes turns 2+ cheap); new conversations go to the least-loaded healthy
endpoint; an endpoint that keeps failing is taken out and probed back after a growing pause.

Two kinds of pin send a call to the endpoint that holds its prefix:
- **the prefix itself**: a call that continues a conversation (it holds an earlier assistant turn) goes where that
  earlier turn's whole context was computed — found by hashing the messages before its last one. This also covers
  turns CarryOn answered from its own cache: an item's sequences share their first turn, computed once somewhere;
- **an affinity key** set by the caller's task (the engine sets the conversation id, the judges the response's id):
  the judge calls of one response share the judge system prompt and the response block, not whole messages. A
  context variable, so it reaches the router through the call cache without changing any signature.

Each endpoint's client keeps its own circuit breaker (`--give-up-after`): one that trips takes only its endpoint out
(probed back later with a fresh window); the run stops only when every endpoint has failed, without one success
anywhere, for that long.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from carryon.core.errors import ModelCallError
from carryon.core.chat import ChatClient, ChatRequest, ChatResult, Message
from carryon.models.retry import GIVE_UP_AFTER_S, EndpointDown, RetryPolicy

affinity: ContextVar[str | None] = ContextVar("carryon_affinity", default=None)


@contextmanager
def affinity_key(key: str) -> Iterator[None]:
    """Calls made inside belong to `key` (a conversation, a judged response): they go to one endpoint."""
    token = affinity.set(key)
    try:
        yield
    finally:
        affinity.reset(token)


FAILURES_TO_EJECT = 3
PROBE_FIRST_S = 1.0
PROBE_MAX_S = 30.0
PINS = 200_000  # pins remembered (least recently used forgotten first)
LOAD_SLACK = 1.25  # a pin is followed while its endpoint has at most this × the mean load (+1) in flight


@dataclass
class Endpoint:
    url: str
    client: ChatClient
    in_flight: int = 0
    failures: int = 0
    """Consecutive failed calls."""
    down_until: float = 0.0
    """While in the future the endpoint is out; after it, one call probes it."""
    pause_s: float = PROBE_FIRST_S
    probing: bool = False
    served: int = 0
    assigned: int = 0
    """Calls sent here without a pin (or against one): the tie-break that spreads new conversations evenly."""
    ejections: int = 0

    def healthy(self, now: float) -> bool:
        return self.failures < FAILURES_TO_EJECT or (now >= self.down_until and not self.probing)


def _context_hash(messages: tuple[Message, ...] | list[Message]) -> bytes:
    digest = hashlib.sha256(b"context")
    for m in messages:
        for part in (m.role, m.content):
            data = part.encode()
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)
    return digest.digest()


def continued_context(request: ChatRequest) -> bytes | None:
    """The pin of the context a call continues (its messages before the last), if it holds an assistant turn."""
    if not any(m.role == "assistant" for m in request.messages):
        return None
    return _context_hash(request.messages[:-1])


def served_context(request: ChatRequest, reply: str) -> bytes:
    """The pin of the context after a call: its messages and the reply (what the next turn continues)."""
    return _context_hash([*request.messages, Message(role="assistant", content=reply)])


@dataclass
class RouterStats:
    hits: int = 0
    """Calls of a known conversation served by the endpoint that served it before."""
    moves: int = 0
    """Calls of a known conversation sent elsewhere because its endpoint was out."""
    new: int = 0
    by_endpoint: dict[str, int] = field(default_factory=dict)

    @property
    def hit_rate(self) -> float | None:
        total = self.hits + self.moves
        return self.hits / total if total else None


class RoutedClient:
    """A ChatClient over several endpoints of one model. Each endpoint's own client makes a single attempt per call
    (its adaptive limiter still applies); the retry loop runs here, so a retry can go to another endpoint."""

    def __init__(self, name: str, endpoints: list[tuple[str, ChatClient]], *, retry: RetryPolicy | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        if not endpoints:
            raise ValueError("RoutedClient needs at least one endpoint")
        self.name = name
        self.endpoints = [Endpoint(url, client) for url, client in endpoints]
        self.retry = retry or RetryPolicy()
        self.stats = RouterStats()
        self.give_up_after_s = min(getattr(getattr(client, "breaker", None), "window", GIVE_UP_AFTER_S)
                                   for _, client in endpoints)  # fmt: skip
        self._failing_since: float | None = None  # first failure after the last success on any endpoint
        self._pins: OrderedDict[str | bytes, Endpoint] = OrderedDict()
        self._clock = clock

    # -- routing ------------------------------------------------------------------------------------------------
    def _least_loaded(self, now: float, avoid: Endpoint | None = None) -> Endpoint:
        healthy = [e for e in self.endpoints if e.healthy(now) and e is not avoid]
        if not healthy:  # every endpoint is out: the one back soonest
            healthy = [min((e for e in self.endpoints if e is not avoid), key=lambda e: e.down_until,
                           default=self.endpoints[0])]  # fmt: skip
        chosen = min(healthy, key=lambda e: (e.in_flight, e.assigned))
        chosen.assigned += 1
        return chosen

    def _light_enough(self, endpoint: Endpoint, now: float) -> bool:
        """Bounded-load affinity: an item's sequences share their first turn, so prefix pins alone would pile all of
        them onto one endpoint; a pin is followed only while its endpoint is not much busier than the average."""
        loads = [e.in_flight for e in self.endpoints if e.healthy(now)]
        return endpoint.in_flight <= LOAD_SLACK * sum(loads) / max(1, len(loads)) + 1

    def _pin(self, key: str | bytes, endpoint: Endpoint) -> None:
        self._pins[key] = endpoint
        self._pins.move_to_end(key)
        if len(self._pins) > PINS:
            self._pins.popitem(last=False)

    def pick(self, keys: list[str | bytes], avoid: Endpoint | None = None) -> Endpoint:
        """The endpoint for a call pinned by `keys` (in order of preference): its pinned endpoint while healthy,
        else the least-loaded healthy one (which becomes the pin)."""
        now = self._clock()
        pinned = next((p for p in (self._pins.get(k) for k in keys) if p is not None), None)
        if pinned is not None and pinned.healthy(now):
            if pinned is avoid or not self._light_enough(pinned, now):  # a retry after a failure, or a busy pin
                self.stats.moves += 1
                return self._least_loaded(now, avoid)
            self.stats.hits += 1
            return pinned
        chosen = self._least_loaded(now, avoid)
        if keys:
            if pinned is None:
                self.stats.new += 1
            else:
                self.stats.moves += 1
        return chosen

    def _give_up_if_all_down(self, error: ModelCallError) -> None:
        """Stop the run (EndpointDown) once every endpoint is out and none has answered for `give_up_after_s`."""
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        if now - self._failing_since >= self.give_up_after_s and all(e.failures for e in self.endpoints):
            raise EndpointDown(f"{self.name}: all {len(self.endpoints)} endpoints failing, no successful call for "
                               f"{now - self._failing_since:.0f}s; last error: {error}")  # fmt: skip

    def _failed(self, endpoint: Endpoint, down: bool = False) -> None:
        """A failed call; `down`: its circuit breaker tripped, so the endpoint is taken out at once."""
        endpoint.failures = max(endpoint.failures + 1, FAILURES_TO_EJECT if down else 0)
        if endpoint.probing or endpoint.failures == FAILURES_TO_EJECT or down:
            if endpoint.probing:
                endpoint.pause_s = min(PROBE_MAX_S, endpoint.pause_s * 2)
            endpoint.down_until = self._clock() + endpoint.pause_s
            endpoint.ejections += 1
        endpoint.probing = False

    @staticmethod
    def _succeeded(endpoint: Endpoint) -> None:
        endpoint.failures = 0
        endpoint.probing = False
        endpoint.pause_s = PROBE_FIRST_S
        endpoint.served += 1

    # -- calls --------------------------------------------------------------------------------------------------
    async def complete(self, request: ChatRequest) -> ChatResult:
        key = affinity.get()
        context = continued_context(request)
        keys: list[str | bytes] = [k for k in (context, key) if k is not None]
        last: ModelCallError | None = None
        avoid: Endpoint | None = None
        for attempt in range(1, self.retry.max_attempts + 1):
            endpoint = self.pick(keys, avoid)
            if endpoint.failures >= FAILURES_TO_EJECT:
                endpoint.probing = True  # out, and its pause is over: this call probes it
                breaker = getattr(endpoint.client, "breaker", None)
                if breaker is not None and breaker.tripped:
                    breaker.on_success()  # a fresh window for the probe: the endpoint was out, not failing
            endpoint.in_flight += 1
            try:
                result = await endpoint.client.complete(request)
            except ModelCallError as error:
                if error.permanent and not isinstance(error, EndpointDown):
                    raise
                last = error
                self._failed(endpoint, down=isinstance(error, EndpointDown))
                self._give_up_if_all_down(error)
            else:
                self._succeeded(endpoint)
                self._failing_since = None
                self.stats.by_endpoint[endpoint.url] = self.stats.by_endpoint.get(endpoint.url, 0) + 1
                if key is not None:
                    self._pin(key, endpoint)
                if request.json_schema is None:  # free text (a conversation turn) may be continued; verdicts not
                    self._pin(served_context(request, result.text), endpoint)
                result.endpoint = endpoint.url
                return result
            finally:
                endpoint.in_flight -= 1
            # Retry at once on another healthy endpoint; back off when there is none.
            now = self._clock()
            others = [e for e in self.endpoints if e is not endpoint and e.healthy(now)]
            avoid = endpoint if others else None
            if not others and attempt < self.retry.max_attempts:
                await asyncio.sleep(self.retry.delay(attempt, None))
        reason = str(last).removesuffix(" (gave up after 1 attempts)")
        raise ModelCallError(f"{reason} (gave up after {self.retry.max_attempts} attempts over "
                             f"{len(self.endpoints)} endpoints)")  # fmt: skip

    async def aclose(self) -> None:
        for endpoint in self.endpoints:
            await endpoint.client.aclose()
