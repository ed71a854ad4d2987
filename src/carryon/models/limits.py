"""Per-role concurrency that adapts to the server: additive increase, multiplicative decrease (AIMD).

Hand-written because it is small and specific: it must back off on 429s, grow back on successes,
and keep a history the run store records.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator


class AdaptiveLimiter:
    """An async limiter whose limit halves on overload and grows by one after `limit` successes."""

    def __init__(self, limit: int, *, floor: int = 1) -> None:
        self.ceiling = max(1, limit)
        self.limit = self.ceiling
        self.floor = floor
        self._in_flight = 0
        self._successes = 0
        self._cond = asyncio.Condition()
        self.history: list[tuple[float, int]] = [(time.time(), self.limit)]

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._cond:
            await self._cond.wait_for(lambda: self._in_flight < self.limit)
            self._in_flight += 1
        try:
            yield
        finally:
            async with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    def _set(self, value: int) -> None:
        value = min(self.ceiling, max(self.floor, value))
        if value != self.limit:
            self.limit = value
            self.history.append((time.time(), value))

    def on_overload(self) -> None:
        self._successes = 0
        self._set(self.limit // 2)

    def on_success(self) -> None:
        self._successes += 1
        if self._successes >= self.limit:
            self._successes = 0
            self._set(self.limit + 1)
