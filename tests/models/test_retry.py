"""Retry-After parsing and the circuit breaker, without a server (issue 13)."""

from __future__ import annotations

import email.utils

import pytest

from carryon.models.retry import RETRY_AFTER_CAP_S, CircuitBreaker, RetryPolicy, parse_retry_after


@pytest.mark.parametrize("value", ["soon-ish", "", "nan", "inf", "-5", "1e999", "Mon, 99 Foo 2024 00:00:00",
                                   "Tue, 15 Nov 1994 08:12:31", "x" * 500, "\x00"])  # fmt: skip
def test_unparseable_or_absurd_retry_after_is_absent(value: str) -> None:
    assert parse_retry_after(value) is None


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    policy = RetryPolicy()
    assert parse_retry_after("2.5") == 2.5
    assert policy.delay(1, parse_retry_after("2.5")) == 2.5
    assert policy.delay(1, parse_retry_after("999999")) == RETRY_AFTER_CAP_S
    date = email.utils.formatdate(1_000_030.0, usegmt=True)
    assert parse_retry_after(date, now=1_000_000.0) == pytest.approx(30.0)
    assert parse_retry_after(email.utils.formatdate(999_000.0, usegmt=True), now=1_000_000.0) == 0.0


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_breaker_trips_after_the_window_of_failure_without_a_success() -> None:
    clock = Clock()
    breaker = CircuitBreaker(120.0, clock)
    assert not breaker.tripped and breaker.time_left() is None
    breaker.on_failure(0.0, "HTTP 500")
    clock.t = 60.0
    assert not breaker.tripped and breaker.time_left() == 60.0
    clock.t = 119.9
    assert not breaker.tripped
    clock.t = 120.0
    assert breaker.tripped and breaker.last_error == "HTTP 500"


def test_a_success_resets_the_breaker_and_older_attempts_do_not_reopen_the_window() -> None:
    clock = Clock()
    breaker = CircuitBreaker(120.0, clock)
    breaker.on_failure(0.0, "HTTP 500")
    clock.t = 100.0
    breaker.on_success()
    assert breaker.time_left() is None
    clock.t = 150.0
    breaker.on_failure(10.0, "timeout")  # started before the success: failing only since the success
    assert breaker.time_left() == pytest.approx(70.0)
    clock.t = 221.0
    assert breaker.tripped
