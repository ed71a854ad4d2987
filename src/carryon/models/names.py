"""`provider/model` names, checked without importing any client: provider, model name shape, API key present,
base URL present and well formed, model options known. Kept light (no HTTP stack), so bad flags are rejected at once
(docs/performance.md).

Model options follow the name after `?`, `&`-separated: `openai/o3-mini?reasoning_effort=high`,
`openai-api/my-o3?reasoning=true`. They are part of the model's name everywhere (run identity, call cache, reports),
so two settings of one model are two models. Which options a provider takes is its own (`Provider.options`); CarryOn's
OpenAI and OpenAI-compatible providers take `reasoning=true|false` (override the name rule,
`openai_compat.is_reasoning_model`), `reasoning_effort=…` (passed through) and `reasoning_budget=N` (tokens added for
hidden reasoning, default 4096) (models/builtin.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from carryon.core.errors import BadInput
from carryon.core.redact import plain, redact_url, register_env_keys, split_url

if TYPE_CHECKING:
    from carryon.models.providers import Provider

DEFAULT_LOCAL = "local/qwen2.5-coder-1.5b"
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


def split_urls(value: str | None) -> list[str]:
    """The endpoints of a `--base-url` value: one URL, or several comma-separated."""
    return [u.strip().rstrip("/") for u in (value or "").split(",") if u.strip()]


def parse_model_name(name: str, *, role: str = "model", base_url: str | None = None,
                     url_flag: str = "--base-url", require_key: bool = True) -> ModelSpec:  # fmt: skip
    """Parse and check a `provider/model` name for `role` against the provider registry (models/providers.py);
    raises BadInput naming the flag (`url_flag`: the one that gave `base_url`) and the problem. Credentials in the URL
    are registered for redaction (core/redact.py). `base_url` may list several endpoints, comma-separated
    (models/endpoints.py). `require_key=False` (a dry run) lets a missing API key pass."""
    from carryon.models.providers import get

    register_env_keys()
    bare, _, query = name.partition("?")
    provider, sep, model = bare.partition("/")
    if not sep or not model.strip():
        raise BadInput(f"--{role} {name!r}: expected provider/model, e.g. openai/gpt-4o-mini or local/qwen2.5-coder-1.5b")
    try:
        spec = get(provider)
    except BadInput as error:
        raise BadInput(f"--{role} {name!r}: {error}") from None
    if spec.models is not None and model not in set(spec.models()):
        raise BadInput(f"--{role} {name!r}: unknown {provider} model; known: {', '.join(sorted(spec.models()))}")
    if spec.base_url == "required" and not base_url:
        raise BadInput(f"--{role} {name!r}: {provider} models need a server: pass --base-url")
    if base_url is not None:  # a malformed URL is refused even where the provider would not use it
        urls = split_urls(base_url)
        for url in urls or [base_url]:
            _check_url(url, role, url_flag)
        if len(set(urls)) != len(urls):
            raise BadInput(f"{url_flag} {plain(redact_url(base_url))!r} (for --{role}): an endpoint is listed twice")
        base_url = ",".join(urls)
    if require_key and spec.key_env and not os.environ.get(spec.key_env):
        raise BadInput(f"--{role} {name!r}: environment variable {spec.key_env} is not set")
    options = _parse_options(name, role, spec, query) if query else ()
    return ModelSpec(provider=provider, model=model, base_url=base_url if spec.base_url != "ignored" else None,
                     options=options)  # fmt: skip


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


def _parse_options(name: str, role: str, spec: Provider, query: str) -> tuple[tuple[str, str], ...]:
    """`key=value&…` checked by the provider's own option check; sorted, so one setting has one name."""
    if spec.options is None:
        raise BadInput(f"--{role} {name!r}: {spec.name} models take no options")
    options: dict[str, str] = {}
    for part in query.split("&"):
        key, sep, value = part.partition("=")
        problem = "expected key=value" if not sep else spec.options(key, value)
        if problem:
            raise BadInput(f"--{role} {name!r}: model option {part!r}: {problem}")
        options[key] = value
    return tuple(sorted(options.items()))
