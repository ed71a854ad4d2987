"""The retry/limit loop shared by the HTTP chat clients; subclasses only build and parse payloads.

aiohttp carries the calls: measured against the fake server on this machine kind, it spends 0.3 ms of client CPU per
request where httpx spends 0.95 ms (benchmarks/harness_overhead.py), and the harness's own cost is what CarryOn
promises to keep near zero.

Everything a server sends is untrusted: the body is read up to a limit, the text is cut to `max_response_bytes` and
made storable (models/textcap.py), and error bodies reach messages only as short redacted snippets. A circuit
breaker (models/retry.py) stops the run when the endpoint fails for `give_up_after_s` without a success.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from carryon.errors import ModelCallError
from carryon.models.base import PROVIDER_REFUSAL, ChatRequest, ChatResult
from carryon.models.limits import AdaptiveLimiter
from carryon.models.retry import (
    GIVE_UP_AFTER_S, CircuitBreaker, EndpointDown, RetryPolicy, TransientError, check_status,
)  # fmt: skip
from carryon.models.textcap import MAX_RESPONSE_BYTES, bound_text
from carryon.redact import error_line, split_url

_JSON = {"Content-Type": "application/json"}
BODY_LIMIT_BASE = 64 * 1024 * 1024  # a response body is read up to this plus 16 x the text cap, then refused
BIG_BODY = 4 * 1024 * 1024  # bodies larger than this are read and parsed one at a time per client (bounded memory)

RetryHook = Callable[[str], None]  # told a one-line reason each time a call is retried


class HttpChatClient:
    """Posts a JSON payload per request with bounded retries, a circuit breaker and an adaptive concurrency limit."""

    path: str = "/chat/completions"

    def __init__(
        self,
        name: str,
        model: str,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        concurrency: int = 8,
        timeout_s: float = 120.0,
        retry: RetryPolicy | None = None,
        health: Callable[[], str | None] | None = None,
        give_up_after_s: float = GIVE_UP_AFTER_S,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        on_retry: RetryHook | None = None,
    ) -> None:
        self.name = name
        self.model = model
        self.url = split_url(base_url)
        self.base_url = self.url.base
        self.retry = retry or RetryPolicy()
        self.limiter = AdaptiveLimiter(concurrency)
        self.breaker = CircuitBreaker(give_up_after_s)
        self.retries = 0
        self.health = health
        """Asked when a connection fails: a reason the server is gone for good (a local server that died), or None."""
        self.max_response_bytes = max_response_bytes
        self.on_retry = on_retry
        self._headers = dict(headers or {})
        if self.url.basic_auth:  # credentials in the URL are the more specific: they replace a configured key
            self._headers = {k: v for k, v in self._headers.items() if k.lower() != "authorization"}
            self._headers["Authorization"] = self.url.basic_auth
        self._timeout_s = timeout_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(10.0, timeout_s))
        self._max_connections = max(concurrency, 1) * 2
        self._session: aiohttp.ClientSession | None = None
        self._big_body = asyncio.Lock()

    @property
    def display(self) -> str:
        """`name at URL` with the URL's credentials masked."""
        return f"{self.name} at {self.url.display}"

    def _http(self) -> aiohttp.ClientSession:
        """The session, made on first use (it must be created inside the running event loop)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=self._max_connections),
            )
        return self._session

    def build_payload(self, request: ChatRequest) -> dict[str, Any]:
        raise NotImplementedError

    def parse_body(self, body: dict[str, Any]) -> ChatResult:
        raise NotImplementedError

    def _attempt_timeout(self) -> aiohttp.ClientTimeout:
        """The client timeout, cut to the breaker's time left while the endpoint is failing."""
        left = self.breaker.time_left()
        if left is None or left >= self._timeout_s:
            return self._timeout
        total = max(0.05, left)
        return aiohttp.ClientTimeout(total=total, connect=min(10.0, total))

    def _trip(self) -> EndpointDown:
        return EndpointDown(error_line(
            f"{self.display}: no successful call for {self.breaker.failing_for():.0f}s (--give-up-after "
            f"{self.breaker.window:g}); last error: {self.breaker.last_error}. Stopped; finished work is kept: "
            "re-run the same command to resume"
        ))  # fmt: skip

    async def _read_into(self, body: bytearray, response: aiohttp.ClientResponse, upto: int, what: str) -> bool:
        """Read the body into `body` until it holds `upto` bytes (False: more remains) or it ends (True); a body
        over the limit is refused, unread."""
        limit = BODY_LIMIT_BASE + 16 * self.max_response_bytes
        while len(body) <= upto:
            chunk = await response.content.read(1 << 16)
            if not chunk:
                return True
            body += chunk
            if len(body) > limit:
                raise TransientError(f"{what}: response body over {limit} bytes (not read further)")
        return False

    async def _receive(self, response: aiohttp.ClientResponse, what: str) -> ChatResult:
        """The response read, checked and parsed. A body past BIG_BODY waits for the client's one big-body slot, so
        a server answering in tens of megabytes costs the memory of one such answer at a time, not one per call."""
        body = bytearray()
        if await self._read_into(body, response, BIG_BODY, what):
            check_status(response.status, response.headers.get("retry-after"), bytes(body[:1000]), what)
            return self._parse(body, what)
        async with self._big_body:
            await self._read_into(body, response, 1 << 62, what)
            check_status(response.status, response.headers.get("retry-after"), bytes(body[:1000]), what)
            return self._parse(body, what)

    async def complete(self, request: ChatRequest) -> ChatResult:
        body = json.dumps(self.build_payload(request)).encode()
        url = self.base_url + self.path
        what = self.display
        last: TransientError | None = None
        for attempt in range(1, self.retry.max_attempts + 1):
            cut_short = False
            if self.breaker.tripped:
                raise self._trip()
            async with self.limiter.slot():
                if self.breaker.tripped:
                    raise self._trip()
                started = self.breaker.now()
                clock = time.perf_counter()
                timeout = self._attempt_timeout()
                try:
                    async with self._http().post(url, data=body, headers=_JSON, params=self.url.params or None,
                                                 timeout=timeout) as response:  # fmt: skip
                        result = await self._receive(response, what)
                except TransientError as error:
                    last = error
                except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
                    dead = self.health() if self.health else None
                    if dead:
                        raise ModelCallError(dead, permanent=True) from None
                    last = TransientError(f"{what}: {type(error).__name__}")
                    cut_short = isinstance(error, asyncio.TimeoutError) and timeout is not self._timeout
                else:
                    self.breaker.on_success()
                    self.limiter.on_success()
                    result.latency_s = time.perf_counter() - clock
                    return result
            # a timeout the breaker itself cut short says less than the error that started the failing streak
            self.breaker.on_failure(started, str(last).removeprefix(f"{what}: "), keep_last=cut_short)
            if last.overload:
                self.limiter.on_overload()
            self.retries += 1
            if self.breaker.tripped:
                raise self._trip()
            if attempt < self.retry.max_attempts:
                if self.on_retry:
                    self.on_retry(str(last))
                wait = self.retry.delay(attempt, last.retry_after)
                left = self.breaker.time_left()
                await asyncio.sleep(wait if left is None else min(wait, left))
        if self.breaker.tripped:
            raise self._trip()
        raise ModelCallError(error_line(f"{last} (gave up after {self.retry.max_attempts} attempts)"))

    def _parse(self, raw: bytes | bytearray, what: str) -> ChatResult:
        try:
            result = self.parse_body(json.loads(raw))
        except (json.JSONDecodeError, KeyError, IndexError, TypeError, ValueError, RecursionError) as error:
            raise TransientError(f"{what}: malformed response ({type(error).__name__})") from None
        if not result.text.strip() and result.finish_reason != PROVIDER_REFUSAL:
            # An empty answer is never stored as one: with finish_reason=length the token limit cut it before any
            # visible text (raise --max-tokens); otherwise the server misbehaved. Either way: retry, never cache.
            # (A provider refusal may come with no text: it is an answer, recorded as such.)
            cut = " cut off at the token limit (finish_reason=length; raise --max-tokens)"
            raise TransientError(f"{what}: empty completion{cut if result.finish_reason == 'length' else ''}")
        result.text, result.truncated_from, result.replaced = bound_text(result.text, self.max_response_bytes)
        return result

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
