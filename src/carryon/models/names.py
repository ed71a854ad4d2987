"""`provider/model` names, checked without importing any client: provider, model name shape, API key present,
base URL present and well formed. Kept light (no HTTP stack), so bad flags are rejected at once (docs/performance.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlparse

from carryon.errors import BadInput

DEFAULT_LOCAL = "local/qwen2.5-coder-1.5b"
Provider = Literal["openai", "openai-api", "anthropic", "local", "testing"]
PROVIDERS: tuple[str, ...] = Provider.__args__  # type: ignore[attr-defined]
KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model name plus where to reach it."""

    provider: str
    model: str
    base_url: str | None = None

    @property
    def name(self) -> str:
        return f"{self.provider}/{self.model}"


def parse_model_name(name: str, *, role: str = "model", base_url: str | None = None) -> ModelSpec:
    """Parse and check a `provider/model` name for `role`; raises BadInput naming the flag and the problem."""
    provider, sep, model = name.partition("/")
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
    if base_url is not None:
        parsed = urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise BadInput(f"--base-url {base_url!r} (for --{role}): not an http(s) URL")
    if provider in KEY_ENV and not os.environ.get(KEY_ENV[provider]):
        raise BadInput(f"--{role} {name!r}: environment variable {KEY_ENV[provider]} is not set")
    return ModelSpec(provider=provider, model=model, base_url=base_url if provider == "openai-api" else None)
