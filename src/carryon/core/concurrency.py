"""Concurrency, in one place: the event loop the async stages run on, and bounded concurrency over a work list.

- `run(coro)`: on uvloop (libuv, written in C) where installed — Linux and macOS — else asyncio's own loop.
  CarryOn's promise is to add almost nothing per model call, and the event loop is part of that cost
  (docs/performance.md).
- `run_workers(work, handle, n)`: `n` workers share one iterator, so memory holds only the work in flight however
  long the list (10,000 conversations, 40,000 responses to judge); the first error cancels the rest.
- `map_bounded(work, fn, n)`: the same, keeping each result in the order of `work`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # Windows: uvloop does not build there
        return asyncio.run(coro)
    return uvloop.run(coro)


async def run_workers(work: Iterable[T], handle: Callable[[T], Awaitable[None]], workers: int) -> None:
    """Run `handle` over `work` with `workers` concurrent workers sharing one iterator (no task per item up front);
    the first error cancels the rest."""
    queue = iter(work)

    async def worker() -> None:
        for unit in queue:
            await handle(unit)

    async with asyncio.TaskGroup() as group:
        for _ in range(max(1, workers)):
            group.create_task(worker())


async def map_bounded(work: Iterable[T], fn: Callable[[T], Awaitable[R]], workers: int) -> list[R]:
    """`[await fn(x) for x in work]` with at most `workers` at once, results in the order of `work`."""
    results: dict[int, R] = {}

    async def one(unit: tuple[int, T]) -> None:
        results[unit[0]] = await fn(unit[1])

    await run_workers(enumerate(work), one, workers)
    return [results[i] for i in range(len(results))]
