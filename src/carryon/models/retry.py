"""Bounded retries with exponential backoff that honour Retry-After. Shared by the HTTP clients."""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from dataclasses import dataclass

from carryon.core.errors import ModelCallError

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})


class TransientError(Exception):
    """A failure worth retrying (overload, server error, dropped connection, unparseable body)."""

    def __init__(self, message: str, *, retry_after: float | None = None, overload: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.overload = overload


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(self.max_delay_s, max(0.0, retry_after))
        backoff: float = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        return backoff * (0.5 + random.random() / 2)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def check_status(status: int, retry_after: str | None, body: bytes, what: str) -> None:
    """Raise TransientError for a retryable status, ModelCallError(permanent) for a client error."""
    if status < 400:
        return
    snippet = body[:200].decode("utf-8", "replace").replace("\n", " ")
    if status in RETRYABLE_STATUS or status >= 500:
        raise TransientError(
            f"{what}: HTTP {status}",
            retry_after=parse_retry_after(retry_after),
            overload=status in (429, 529),
        )
    hint = {401: " (check the API key)", 403: " (access denied)", 404: " (unknown model or wrong base URL)"}
    raise ModelCallError(f"{what}: HTTP {status}{hint.get(status, '')}: {snippet}", permanent=True)


async def sleep_before_retry(policy: RetryPolicy, attempt: int, error: TransientError) -> None:
    await asyncio.sleep(policy.delay(attempt, error.retry_after))
