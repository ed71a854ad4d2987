"""The adaptive limiter: one cut per overload episode, a cooldown, climbing back, one limiter per endpoint."""

from __future__ import annotations

import asyncio

from carryon.models.limits import AdaptiveLimiter, EndpointLimiters
from carryon.models.names import ModelSpec
from carryon.models.registry import ModelPool


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_of_429s_is_one_episode_and_cuts_once() -> None:
    clock = Clock()
    limiter = AdaptiveLimiter(32, cooldown_s=2.0, clock=clock)
    sent = clock()  # five requests in flight when the server starts refusing
    clock.now += 0.1
    cuts = [limiter.on_overload(sent) for _ in range(5)]
    assert cuts == [True, False, False, False, False] and limiter.limit == 16
    clock.now += 0.5  # a request sent after the cut, still within the cooldown: same episode
    assert limiter.on_overload(clock()) is False and limiter.limit == 16
    clock.now += 2.0  # past the cooldown, a request sent under the new limit is refused: a new episode
    assert limiter.on_overload(clock()) is True and limiter.limit == 8
    stale = clock.now - 1.0  # sent before that cut: part of the episode it already answered
    clock.now += 5.0
    assert limiter.on_overload(stale) is False and limiter.limit == 8
    assert [v for _, v in limiter.history] == [32, 16, 8]


def test_the_limit_climbs_back_to_its_ceiling() -> None:
    clock = Clock()
    limiter = AdaptiveLimiter(32, clock=clock)
    limiter.on_overload()
    assert limiter.limit == 16
    successes = 0
    while limiter.limit < 32:
        limiter.on_success()
        successes += 1
        assert successes <= 376, limiter.limit
    assert successes == sum(range(16, 32))  # one more slot per window of `limit` successes
    values = [v for _, v in limiter.history]
    assert values[:2] == [32, 16] and values[2:] == list(range(17, 33))
    for _ in range(100):
        limiter.on_success()
    assert limiter.limit == 32  # never above the ceiling


def test_the_limit_bounds_requests_in_flight() -> None:
    limiter = AdaptiveLimiter(4)
    limiter.on_overload()
    peak = in_flight = 0

    async def one() -> None:
        nonlocal peak, in_flight
        async with limiter.slot():
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.001)
            in_flight -= 1

    async def main() -> None:
        await asyncio.gather(*(one() for _ in range(20)))

    asyncio.run(main())
    assert peak == 2


def test_roles_on_one_endpoint_share_one_limiter() -> None:
    limiters = EndpointLimiters()
    assert limiters.get("http://h:1/v1/", 8) is limiters.get("http://h:1/v1", 8)
    assert limiters.get("http://h:1/v1", 8) is not limiters.get("http://h:2/v1", 8)
    pool = ModelPool(concurrency=8)
    target = pool.client("target", ModelSpec("openai-api", "ideal", "http://127.0.0.1:9/v1"))
    judge = pool.client("judge", ModelSpec("openai-api", "judge", "http://127.0.0.1:9/v1"))
    other = pool.client("user", ModelSpec("openai-api", "user", "http://127.0.0.1:10/v1"))
    assert target.limiter is judge.limiter and target.limiter is not other.limiter  # type: ignore[attr-defined]
    judge.limiter.on_overload()  # type: ignore[attr-defined]
    assert target.limiter.limit == 4  # type: ignore[attr-defined]
