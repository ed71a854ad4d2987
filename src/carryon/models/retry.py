"""Bounded retries with exponential backoff that honour Retry-After (up to a cap), and the circuit breaker that stops
calling an endpoint which has failed for too long without a single success. Shared by the HTTP clients."""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from carryon.errors import ModelCallError
from carryon.redact import snippet

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
GIVE_UP_AFTER_S = 120.0
RETRY_AFTER_CAP_S = 60.0


class TransientError(Exception):
    """A failure worth retrying (overload, server error, dropped connection, unparseable body)."""

    def __init__(self, message: str, *, retry_after: float | None = None, overload: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.overload = overload


class EndpointDown(ModelCallError):
    """The circuit breaker tripped: the endpoint failed for `give_up_after_s` without a success. Stops the run."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    retry_after_cap_s: float = RETRY_AFTER_CAP_S

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(self.retry_after_cap_s, retry_after)
        backoff: float = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        return backoff * (0.5 + random.random() / 2)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None for anything unparseable,
    negative or not finite (treated as absent: the usual backoff applies)."""
    if not value or len(value) > 100:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if parsed.tzinfo is None:
            return None
        seconds = parsed.timestamp() - (time.time() if now is None else now)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def check_status(status: int, retry_after: str | None, body: bytes, what: str) -> None:
    """Raise TransientError for a retryable status, ModelCallError(permanent) for a client error. The body is
    untrusted: only a short, redacted, control-character-free snippet of it reaches a message."""
    if status < 400:
        return
    text = snippet(body)
    if status in RETRYABLE_STATUS or status >= 500:
        raise TransientError(
            f"{what}: HTTP {status}: {text}" if text else f"{what}: HTTP {status}",
            retry_after=parse_retry_after(retry_after),
            overload=status in (429, 529),
        )
    hint = {401: " (check the API key)", 403: " (access denied)", 404: " (unknown model or wrong base URL)"}
    raise ModelCallError(f"{what}: HTTP {status}{hint.get(status, '')}: {text}", permanent=True)


class CircuitBreaker:
    """Trips when an endpoint has failed, without one success, for `give_up_after_s` seconds (measured from the start
    of the first failed attempt after the last success). While it is failing, waits and attempt timeouts are cut to
    the time left, so a dead, hanging or always-429 endpoint stops the run within max(give_up_after_s, timeout)."""

    def __init__(self, give_up_after_s: float = GIVE_UP_AFTER_S, clock: Callable[[], float] | None = None) -> None:
        self.window = give_up_after_s
        self._clock = clock or time.monotonic
        self._last_success = -math.inf
        self._failing_since: float | None = None
        self.last_error = ""

    def now(self) -> float:
        return self._clock()

    def on_success(self) -> None:
        self._last_success = self.now()
        self._failing_since = None

    def on_failure(self, started: float, error: str, *, keep_last: bool = False) -> None:
        """An attempt that started at `started` failed with `error` (a one-line, redacted message); `keep_last` keeps
        the error already recorded, if any (for a timeout the breaker itself cut short)."""
        since = max(started, self._last_success)
        if self._failing_since is None or since < self._failing_since:
            self._failing_since = since
        if not (keep_last and self.last_error):
            self.last_error = error

    def failing_for(self) -> float:
        return 0.0 if self._failing_since is None else self.now() - self._failing_since

    def time_left(self) -> float | None:
        """Seconds before the breaker trips, while the endpoint is failing; None while it is healthy."""
        return None if self._failing_since is None else max(0.0, self.window - self.failing_for())

    @property
    def tripped(self) -> bool:
        return self._failing_since is not None and self.failing_for() >= self.window


