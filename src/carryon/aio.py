"""Run a coroutine on the fastest event loop available: uvloop (libuv, written in C) where it is installed, which
it is on Linux and macOS, else asyncio's own. CarryOn's promise is to add almost nothing per model call, and the event
loop is part of that cost (docs/performance.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # Windows: uvloop does not build there
        return asyncio.run(coro)
    return uvloop.run(coro)
