"""Concurrency that adapts to the server: additive increase, multiplicative decrease (AIMD), one limiter per endpoint.

Hand-written because it is small and specific: it must back off on 429s, grow back on successes, and keep a history
the run store records.

- **One cut per overload episode.** A burst of 429s is one signal, not five: the answers to requests that were already
  in flight when the limit was cut were sent under the old limit, so they are not news. An overload cuts the limit in
  half only if its request started after the last cut *and* `cooldown_s` has passed since; the rest of the burst is
  the same episode. (Halving on every 429 took one burst of five from 32 to 1.)
- **Climbing back**: one more slot after a full window of successes (`limit` of them in a row), as TCP does per round
  trip; from 16 back to 32 that is 376 successes.
- **Shared per endpoint**: every role that calls the same server (target and judge on one vLLM, say) waits on the same
  limiter, so a 429 caused by the judge slows the target too. `EndpointLimiters` hands out one per base URL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

COOLDOWN_S = 2.0


class AdaptiveLimiter:
    """An async limiter whose limit halves once per overload episode and grows by one after `limit` successes."""

    def __init__(self, limit: int, *, floor: int = 1, cooldown_s: float = COOLDOWN_S,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.ceiling = max(1, limit)
        self.limit = self.ceiling
        self.floor = floor
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._in_flight = 0
        self._successes = 0
        self._last_cut = float("-inf")
        self._cond = asyncio.Condition()
        self.history: list[tuple[float, int]] = [(time.time(), self.limit)]

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[float]:
        """Hold one slot; yields the (clock) time the request starts, to hand back to `on_overload`."""
        async with self._cond:
            await self._cond.wait_for(lambda: self._in_flight < self.limit)
            self._in_flight += 1
        try:
            yield self._clock()
        finally:
            async with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    def raise_ceiling(self, limit: int) -> None:
        """A second role on the same endpoint asked for more concurrency: allow it."""
        if limit > self.ceiling:
            self.ceiling = limit
            self._set(limit)

    def _set(self, value: int) -> None:
        value = min(self.ceiling, max(self.floor, value))
        if value != self.limit:
            self.limit = value
            self.history.append((time.time(), value))

    def on_overload(self, started: float | None = None) -> bool:
        """The server said it is overloaded (429/529) to a request that started at `started` (clock time; None: now).
        Cuts the limit in half when this opens a new episode; returns whether it did."""
        now = self._clock()
        started = now if started is None else started
        if started < self._last_cut or now - self._last_cut < self.cooldown_s:
            return False  # the same episode: sent under the old limit, or within the cooldown
        self._last_cut = now
        self._successes = 0
        self._set(self.limit // 2)
        return True

    def on_success(self) -> None:
        self._successes += 1
        if self._successes >= self.limit:
            self._successes = 0
            self._set(self.limit + 1)


class EndpointLimiters:
    """One AdaptiveLimiter per endpoint (base URL), shared by every client that calls it."""

    def __init__(self) -> None:
        self._by_endpoint: dict[str, AdaptiveLimiter] = {}

    def get(self, endpoint: str, limit: int) -> AdaptiveLimiter:
        key = endpoint.rstrip("/")
        limiter = self._by_endpoint.get(key)
        if limiter is None:
            limiter = self._by_endpoint[key] = AdaptiveLimiter(limit)
        else:
            limiter.raise_ceiling(limit)
        return limiter

    def items(self) -> Iterator[tuple[str, AdaptiveLimiter]]:
        return iter(self._by_endpoint.items())
