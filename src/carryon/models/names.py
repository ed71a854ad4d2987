"""`provider/model` names, checked without importing any client: provider, model name shape, API key present,
base URL present and well formed. Kept light (no HTTP stack), so bad flags are rejected at once (docs/performance.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlparse

from carryon.core.errors import BadInput

DEFAULT_LOCAL = "local/qwen2.5-coder-1.5b"
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
    """Parse and check a `provider/model` name for `role` against the provider registry (models/providers.py);
    raises BadInput naming the flag and the problem."""
    from carryon.models.providers import get

    provider, sep, model = name.partition("/")
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
    if base_url is not None and spec.base_url != "ignored":
        parsed = urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise BadInput(f"--base-url {base_url!r} (for --{role}): not an http(s) URL")
    if spec.key_env and not os.environ.get(spec.key_env):
        raise BadInput(f"--{role} {name!r}: environment variable {spec.key_env} is not set")
    return ModelSpec(provider=provider, model=model, base_url=base_url if spec.base_url != "ignored" else None)
