"""Bounded concurrency without a task per work item: a few workers share one iterator, so memory holds only the work
in flight however long the list (10,000 conversations, 40,000 responses to judge)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


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
