"""Resolve `provider/model` names to clients: openai, openai-api (+ base URL), anthropic, local, testing.

Everything checkable without spending money is checked here, before any call: provider, model name shape,
API key present, base URL present and well formed, model options known.

Model options follow the name after `?`, `&`-separated: `openai/o3-mini?reasoning_effort=high`,
`openai-api/my-o3?reasoning=true`. They are part of the model's name everywhere (run identity, call cache, reports),
so two settings of one model are two models. Known options (OpenAI and OpenAI-compatible models only):
`reasoning=true|false` (override the name rule, `openai_compat.is_reasoning_model`), `reasoning_effort=…` (passed
through), `reasoning_budget=N` (tokens added for hidden reasoning, default 4096).
"""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import urlparse

from carryon.errors import BadInput
from carryon.models.anthropic import ANTHROPIC_VERSION, AnthropicClient
from carryon.models.base import ChatClient
from carryon.models.endpoints import RoutedClient
from carryon.models.http import HttpChatClient, RetryHook
from carryon.models.local import LocalServer, resolve_weights
from carryon.models.openai_compat import REASONING_EFFORTS, OpenAICompatClient
from carryon.models.retry import GIVE_UP_AFTER_S, RetryPolicy
from carryon.models.textcap import MAX_RESPONSE_BYTES
from carryon.redact import plain, redact_url, register_env_keys, split_url

Provider = Literal["openai", "openai-api", "anthropic", "local", "testing"]
PROVIDERS: tuple[str, ...] = Provider.__args__  # type: ignore[attr-defined]
KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model name plus where to reach it."""

    provider: str
    model: str
    base_url: str | None = None
    options: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in self.options)
        return f"{self.provider}/{self.model}" + (f"?{query}" if query else "")

    def option(self, key: str) -> str | None:
        return dict(self.options).get(key)

    @property
    def base_urls(self) -> list[str]:
        """The endpoints serving this model: `--base-url` may list several, comma-separated (models/endpoints.py)."""
        return split_urls(self.base_url)


OPTION_PROVIDERS = ("openai", "openai-api")


def _check_option(key: str, value: str) -> str | None:
    """Why `key=value` is not a valid model option, or None."""
    if key == "reasoning":
        return None if value in ("true", "false") else "reasoning takes true or false"
    if key == "reasoning_effort":
        return None if value in REASONING_EFFORTS else f"reasoning_effort takes one of {', '.join(REASONING_EFFORTS)}"
    if key == "reasoning_budget":
        return None if value.isdigit() and int(value) <= 200_000 else "reasoning_budget takes a token count"
    return f"unknown option {key!r}; known: reasoning, reasoning_effort, reasoning_budget"


def _parse_options(name: str, role: str, provider: str, query: str) -> tuple[tuple[str, str], ...]:
    if provider not in OPTION_PROVIDERS:
        raise BadInput(f"--{role} {name!r}: {provider} models take no options")
    options: dict[str, str] = {}
    for part in query.split("&"):
        key, sep, value = part.partition("=")
        problem = "expected key=value" if not sep else _check_option(key, value)
        if problem:
            raise BadInput(f"--{role} {name!r}: model option {part!r}: {problem}")
        options[key] = value
    return tuple(sorted(options.items()))


def split_urls(value: str | None) -> list[str]:
    """The endpoints of a `--base-url` value: one URL, or several comma-separated."""
    return [u.strip().rstrip("/") for u in (value or "").split(",") if u.strip()]


def parse_model_name(name: str, *, role: str = "model", base_url: str | None = None,
                     url_flag: str = "--base-url", require_key: bool = True) -> ModelSpec:  # fmt: skip
    """Parse and check a `provider/model` name for `role`; raises BadInput naming the flag (`url_flag`: the one that
    gave `base_url`) and the problem. Credentials in the URL are registered for redaction (carryon/redact.py).
    `base_url` may list several endpoints, comma-separated. `require_key=False` (a dry run) lets a missing API key
    pass."""
    register_env_keys()
    if base_url is not None:
        urls = split_urls(base_url)
        for url in urls or [base_url]:
            _check_url(url, role, url_flag)
        if len(set(urls)) != len(urls):
            raise BadInput(f"{url_flag} {plain(redact_url(base_url))!r} (for --{role}): an endpoint is listed twice")
        base_url = ",".join(urls)
    bare, _, query = name.partition("?")
    provider, sep, model = bare.partition("/")
    if not sep or not model.strip():
        raise BadInput(f"--{role} {name!r}: expected provider/model, e.g. openai/gpt-4o-mini or local/qwen2.5-coder-1.5b")
    if provider not in PROVIDERS:
        raise BadInput(f"--{role} {name!r}: unknown provider {provider!r}; known: {', '.join(PROVIDERS)}")
    if provider == "testing":
        from carryon.testing.models import MODELS

        if model not in MODELS:
            raise BadInput(f"--{role} {name!r}: unknown testing model; known: {', '.join(sorted(MODELS))}")
    if provider == "openai-api" and not base_url:
        raise BadInput(f"--{role} {name!r}: openai-api models need a server: pass --base-url")
    if require_key and provider in KEY_ENV and not os.environ.get(KEY_ENV[provider]):
        raise BadInput(f"--{role} {name!r}: environment variable {KEY_ENV[provider]} is not set")
    options = _parse_options(name, role, provider, query) if query else ()
    return ModelSpec(provider=provider, model=model, base_url=base_url if provider == "openai-api" else None,
                     options=options)  # fmt: skip


def reasoning_settings(spec: ModelSpec) -> dict[str, Any]:
    """The OpenAI client's reasoning arguments from a spec's options (none given: the name rule decides)."""
    settings: dict[str, Any] = {}
    if (flag := spec.option("reasoning")) is not None:
        settings["reasoning"] = flag == "true"
    if (effort := spec.option("reasoning_effort")) is not None:
        settings["reasoning_effort"] = effort
    if (budget := spec.option("reasoning_budget")) is not None:
        settings["reasoning_budget"] = int(budget)
    return settings


def _check_url(base_url: str, role: str, flag: str) -> None:
    shown = plain(redact_url(base_url))
    try:
        parsed = urlparse(base_url)
        parsed.port  # noqa: B018 - raises ValueError on a malformed port
        split_url(base_url)
    except ValueError as error:
        raise BadInput(f"{flag} {shown!r} (for --{role}): not a valid URL ({error})") from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise BadInput(f"{flag} {shown!r} (for --{role}): not an http(s) URL")


class ModelPool:
    """Opens one client per (role, model) and one local server per GGUF; closes them all on exit."""

    def __init__(self, *, concurrency: int = 8, timeout_s: float = 120.0, n_ctx: int = 4096,
                 give_up_after_s: float = GIVE_UP_AFTER_S, max_response_bytes: int = MAX_RESPONSE_BYTES,
                 on_retry: RetryHook | None = None) -> None:  # fmt: skip
        self.concurrency, self.timeout_s, self.n_ctx = concurrency, timeout_s, n_ctx
        self.give_up_after_s, self.max_response_bytes, self.on_retry = give_up_after_s, max_response_bytes, on_retry
        self._stack = AsyncExitStack()
        self._servers: dict[str, LocalServer] = {}
        self.clients: dict[str, ChatClient] = {}

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
        """One endpoint's client, making one attempt per call: the router retries, on another endpoint if need be."""
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
    common: dict[str, Any] = {"concurrency": pool.concurrency, "timeout_s": pool.timeout_s}
    bounds: dict[str, Any] = {"give_up_after_s": pool.give_up_after_s, "max_response_bytes": pool.max_response_bytes,
                              "on_retry": pool.on_retry}  # fmt: skip
    common.update(bounds)
    if spec.provider == "testing":
        from carryon.testing.models import InProcessClient

        return InProcessClient(spec.model)
    if spec.provider == "local":
        server = pool.local_server(spec.model)
        # llama.cpp serves one request at a time; more in flight only queue up and evict the KV cache.
        return OpenAICompatClient(
            spec.name, server.alias, server.base_url, schema_style="llama-cpp", concurrency=1, timeout_s=600.0,
            health=server.death,
            **bounds,
        )
    if spec.provider == "openai-api":
        assert spec.base_url is not None
        key = os.environ.get("CARRYON_API_KEY") or os.environ.get("OPENAI_API_KEY") or "none"
        return OpenAICompatClient(
            spec.name, spec.model, spec.base_url, headers={"Authorization": f"Bearer {key}"}, **common,
            **reasoning_settings(spec),
        )
    if spec.provider == "openai":
        key = os.environ[KEY_ENV["openai"]]
        base = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1")
        return OpenAICompatClient(spec.name, spec.model, base, headers={"Authorization": f"Bearer {key}"}, **common,
                                  **reasoning_settings(spec))  # fmt: skip
    if spec.provider == "anthropic":
        key = os.environ[KEY_ENV["anthropic"]]
        base = os.environ.get("ANTHROPIC_BASE_URL", "https://api.anthropic.com")
        headers = {"x-api-key": key, "anthropic-version": ANTHROPIC_VERSION}
        return AnthropicClient(spec.name, spec.model, base, headers=headers, **common)
    raise BadInput(f"unknown provider {spec.provider!r}")
