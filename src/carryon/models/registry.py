"""The model pool of a run: one client per (role, model) from its provider (models/providers.py), one local server per
GGUF, one adaptive limiter per endpoint; all closed on exit. The pool carries the run's bounds to every client: the
circuit breaker's window (`give_up_after_s`), the response size cap (`max_response_bytes`) and the retry hook."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import replace
from typing import TYPE_CHECKING

from carryon.core.chat import ChatClient
from carryon.core.redact import plain, redact_url
from carryon.models.limits import EndpointLimiters
from carryon.models.local import LocalServer, resolve_weights
from carryon.models.names import ModelSpec
from carryon.models.providers import get
from carryon.models.retry import GIVE_UP_AFTER_S
from carryon.models.textcap import MAX_RESPONSE_BYTES

if TYPE_CHECKING:
    from carryon.models.http import RetryHook


class ModelPool:
    """Opens one client per (role, model) and one local server per GGUF; closes them all on exit. Clients that call
    the same endpoint share one adaptive limiter (`limiters`)."""

    def __init__(self, *, concurrency: int = 8, timeout_s: float = 120.0, n_ctx: int = 4096,
                 give_up_after_s: float = GIVE_UP_AFTER_S, max_response_bytes: int = MAX_RESPONSE_BYTES,
                 on_retry: RetryHook | None = None) -> None:  # fmt: skip
        self.concurrency, self.timeout_s, self.n_ctx = concurrency, timeout_s, n_ctx
        self.give_up_after_s, self.max_response_bytes, self.on_retry = give_up_after_s, max_response_bytes, on_retry
        self._stack = AsyncExitStack()
        self._servers: dict[str, LocalServer] = {}
        self.clients: dict[str, ChatClient] = {}
        self.limiters = EndpointLimiters()

    async def __aenter__(self) -> ModelPool:
        await self._stack.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.__aexit__(None, None, None)

    def client(self, role: str, spec: ModelSpec) -> ChatClient:
        key = f"{role}:{spec.name}:{spec.base_url}"
        if key not in self.clients:
            urls = spec.base_urls
            if len(urls) > 1:  # one model at several endpoints: route with conversation affinity
                from carryon.models.endpoints import RoutedClient
                from carryon.models.http import HttpChatClient

                subs = [self._single_try(spec, u, role) for u in urls]
                # each endpoint is named by its base URL without credentials: the name goes to the call log
                labels = [sub.base_url if isinstance(sub, HttpChatClient) else plain(redact_url(u))
                          for sub, u in zip(subs, urls, strict=True)]  # fmt: skip
                client: ChatClient = RoutedClient(spec.name, list(zip(labels, subs, strict=True)))
            else:
                client = open_client(spec, self, role=role)
            self._stack.push_async_callback(client.aclose)
            self.clients[key] = client
        return self.clients[key]

    def _single_try(self, spec: ModelSpec, url: str, role: str) -> ChatClient:
        """One endpoint's client, making one attempt per call: the router retries, on another endpoint if need be.
        Each endpoint's client has its own adaptive limiter (`limiters`, keyed by its base URL), shared with any other
        role calling the same URL."""
        from carryon.models.http import HttpChatClient
        from carryon.models.retry import RetryPolicy

        client = open_client(replace(spec, base_url=url), self, role=role)
        if isinstance(client, HttpChatClient):
            client.retry = RetryPolicy(max_attempts=1)
        return client

    def local_server(self, model: str) -> LocalServer:
        if model not in self._servers:
            gguf, alias = resolve_weights(model)
            server = LocalServer(gguf, alias, n_ctx=self.n_ctx)
            server.start()
            self._stack.callback(server.stop)
            self._servers[model] = server
        return self._servers[model]


def open_client(spec: ModelSpec, pool: ModelPool, *, role: str = "model") -> ChatClient:
    """A client for `spec` from its provider (models/providers.py)."""
    return get(spec.provider).open(spec, pool)
