"""Open clients for checked `provider/model` names (models/names.py): openai, openai-api (+ base URL), anthropic,
local, testing."""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from typing import Any

from carryon.errors import BadInput
from carryon.models.anthropic import AnthropicClient
from carryon.models.base import ChatClient
from carryon.models.limits import EndpointLimiters
from carryon.models.local import LocalServer, resolve_weights
from carryon.models.names import KEY_ENV, ModelSpec
from carryon.models.openai_compat import OpenAICompatClient

class ModelPool:
    """Opens one client per (role, model) and one local server per GGUF; closes them all on exit. Clients that call
    the same endpoint share one adaptive limiter (`limiters`)."""

    def __init__(self, *, concurrency: int = 8, timeout_s: float = 120.0, n_ctx: int = 4096) -> None:
        self.concurrency, self.timeout_s, self.n_ctx = concurrency, timeout_s, n_ctx
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
            client = open_client(spec, self, role=role)
            self._stack.push_async_callback(client.aclose)
            self.clients[key] = client
        return self.clients[key]

    def local_server(self, model: str) -> LocalServer:
        if model not in self._servers:
            gguf, alias = resolve_weights(model)
            server = LocalServer(gguf, alias, n_ctx=self.n_ctx)
            server.start()
            self._stack.callback(server.stop)
            self._servers[model] = server
        return self._servers[model]


def open_client(spec: ModelSpec, pool: ModelPool, *, role: str = "model") -> ChatClient:
    def common(base: str) -> dict[str, Any]:
        limiter = pool.limiters.get(base, pool.concurrency)
        return {"concurrency": pool.concurrency, "timeout_s": pool.timeout_s, "limiter": limiter}

    if spec.provider == "testing":
        from carryon.testing.models import InProcessClient

        return InProcessClient(spec.model)
    if spec.provider == "local":
        server = pool.local_server(spec.model)
        # llama.cpp serves one request at a time; more in flight only queue up and evict the KV cache.
        return OpenAICompatClient(spec.name, server.alias, server.base_url, schema_style="llama-cpp", concurrency=1,
                                  timeout_s=600.0, limiter=pool.limiters.get(server.base_url, 1))  # fmt: skip
    if spec.provider == "openai-api":
        assert spec.base_url is not None
        key = os.environ.get("CARRYON_API_KEY") or os.environ.get("OPENAI_API_KEY") or "none"
        return OpenAICompatClient(
            spec.name, spec.model, spec.base_url, headers={"Authorization": f"Bearer {key}"}, **common(spec.base_url)
        )
    if spec.provider == "openai":
        key = os.environ[KEY_ENV["openai"]]
        base = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1")
        return OpenAICompatClient(spec.name, spec.model, base, headers={"Authorization": f"Bearer {key}"}, **common(base))
    if spec.provider == "anthropic":
        key = os.environ[KEY_ENV["anthropic"]]
        base = os.environ.get("ANTHROPIC_BASE_URL", "https://api.anthropic.com")
        headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
        return AnthropicClient(spec.name, spec.model, base, headers=headers, **common(base))
    raise BadInput(f"unknown provider {spec.provider!r}")
