"""Every model call goes through here: the call cache in the run store, in-flight de-duplication and counts.

A call whose exact request was answered before (same model, messages and settings) is served from the store, so a
resumed or finished run repeats no call, and identical first turns of an item's conversations cost one call.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from carryon.core.chat import ChatClient, ChatRequest, ChatResult
from carryon.store import Store


class Caller(Protocol):
    """How the simulated user, the engine and the judges call a model: `CachedCaller` (the run store's call cache), or
    `DirectCaller` where something else caches (Inspect AI, carryon/inspect_task.py)."""

    async def call(self, role: str, client: ChatClient, request: ChatRequest) -> ChatResult: ...


class DirectCaller:
    """Calls the model every time, counting the calls; no store."""

    def __init__(self) -> None:
        self.made = 0

    async def call(self, role: str, client: ChatClient, request: ChatRequest) -> ChatResult:
        self.made += 1
        return await client.complete(request)


class CachedCaller:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.made = 0
        self.from_cache = 0
        self._in_flight: dict[str, asyncio.Future[ChatResult]] = {}

    async def call(self, role: str, client: ChatClient, request: ChatRequest) -> ChatResult:
        key = request.cache_key(client.name)
        cached = self.store.cached_call(key)
        if cached is not None:
            self.from_cache += 1
            self.store.log_cache_hit(key, role, client.name)
            return cached
        pending = self._in_flight.get(key)
        if pending is not None:
            self.from_cache += 1
            result = await asyncio.shield(pending)
            self.store.log_cache_hit(key, role, client.name)
            return result
        future: asyncio.Future[ChatResult] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            result = await client.complete(request)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            self._in_flight.pop(key, None)
        self.made += 1
        self.store.add_call(key, role, client.name, result, getattr(client, "base_url", None))
        future.set_result(result)
        return result

