"""CarryOn's own providers, registered as any plugin's are (`@provider`): openai, openai-api, anthropic, local.
Clients are imported inside each opener, so checking a name stays fast."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from carryon.models.providers import provider

if TYPE_CHECKING:
    from carryon.core.chat import ChatClient
    from carryon.models.names import ModelSpec
    from carryon.models.registry import ModelPool


def _bounds(pool: ModelPool) -> dict[str, Any]:
    """The run's bounds every HTTP client takes: circuit breaker window, response size cap, retry hook."""
    return {"give_up_after_s": pool.give_up_after_s, "max_response_bytes": pool.max_response_bytes,
            "on_retry": pool.on_retry}  # fmt: skip


def _common(pool: ModelPool, base: str) -> dict[str, Any]:
    """Client settings; the endpoint's limiter is keyed by the base URL without its credentials (the key is stored
    in the run's `limits` table)."""
    from carryon.core.redact import split_url

    return {"concurrency": pool.concurrency, "timeout_s": pool.timeout_s,
            "limiter": pool.limiters.get(split_url(base).base, pool.concurrency), **_bounds(pool)}  # fmt: skip


def _reasoning_option(key: str, value: str) -> str | None:
    """Why `key=value` is not a valid option of an OpenAI(-compatible) model, or None."""
    if key == "reasoning":
        return None if value in ("true", "false") else "reasoning takes true or false"
    if key == "reasoning_effort":
        from carryon.models.openai_compat import REASONING_EFFORTS

        return None if value in REASONING_EFFORTS else f"reasoning_effort takes one of {', '.join(REASONING_EFFORTS)}"
    if key == "reasoning_budget":
        return None if value.isdigit() and int(value) <= 200_000 else "reasoning_budget takes a token count"
    return f"unknown option {key!r}; known: reasoning, reasoning_effort, reasoning_budget"


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


def _openai_preflight(spec: ModelSpec) -> None:
    from carryon.models.preflight import serves_model

    serves_model(spec)


@provider("openai", key_env="OPENAI_API_KEY", options=_reasoning_option)
def openai(spec: ModelSpec, pool: ModelPool) -> ChatClient:
    from carryon.models.openai_compat import OpenAICompatClient

    key = os.environ["OPENAI_API_KEY"]
    base = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1")
    return OpenAICompatClient(spec.name, spec.model, base, headers={"Authorization": f"Bearer {key}"},
                              **_common(pool, base), **reasoning_settings(spec))  # fmt: skip


@provider("openai-api", base_url="required", preflight=_openai_preflight, options=_reasoning_option)
def openai_api(spec: ModelSpec, pool: ModelPool) -> ChatClient:
    from carryon.models.openai_compat import OpenAICompatClient

    assert spec.base_url is not None
    key = os.environ.get("CARRYON_API_KEY") or os.environ.get("OPENAI_API_KEY") or "none"
    return OpenAICompatClient(spec.name, spec.model, spec.base_url, headers={"Authorization": f"Bearer {key}"},
                              **_common(pool, spec.base_url), **reasoning_settings(spec))  # fmt: skip


@provider("anthropic", key_env="ANTHROPIC_API_KEY")
def anthropic(spec: ModelSpec, pool: ModelPool) -> ChatClient:
    from carryon.models.anthropic import ANTHROPIC_VERSION, AnthropicClient

    base = os.environ.get("ANTHROPIC_BASE_URL", "https://api.anthropic.com")
    headers = {"x-api-key": os.environ["ANTHROPIC_API_KEY"], "anthropic-version": ANTHROPIC_VERSION}
    return AnthropicClient(spec.name, spec.model, base, headers=headers, **_common(pool, base))


@provider("local", serial=True)
def local(spec: ModelSpec, pool: ModelPool) -> ChatClient:
    """A bundled model or a GGUF, served by llama.cpp on loopback; one request at a time (more only queue up and
    evict the KV cache). A connection error while the server reports its death (`LocalServer.death`: exit status and
    log tail) stops the run at once instead of retrying into a dead socket."""
    from carryon.models.openai_compat import OpenAICompatClient

    server = pool.local_server(spec.model)
    return OpenAICompatClient(spec.name, server.alias, server.base_url, schema_style="llama-cpp", concurrency=1,
                              timeout_s=600.0, limiter=pool.limiters.get(server.base_url, 1),
                              health=server.death, **_bounds(pool))  # fmt: skip
