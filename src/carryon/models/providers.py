"""The provider registry: every `provider/` prefix is a `Provider` registered with `@provider`, built-in or not.

A third-party package adds one by exposing a module in the entry-point group `carryon.providers`; importing the
module registers its providers (Inspect AI's `@modelapi`, simonw/llm's plugin hooks). CarryOn's own providers —
`openai`, `openai-api`, `anthropic`, `local` (models/builtin.py) and `testing` (testing/provider.py) — register the
same way; their modules are listed in `BUILTIN` (and declared as entry points in pyproject.toml, which a source
checkout run through PYTHONPATH does not have installed).

Provider modules must import fast (client classes inside `open`): the registry loads them to check a `--target`
name before anything heavy is imported.

    from carryon.models.providers import provider

    @provider("acme", key_env="ACME_API_KEY")
    def acme(spec: ModelSpec, pool: ModelPool) -> ChatClient:
        from acme_sdk_client import AcmeClient  # heavy imports here
        return AcmeClient(spec.name, spec.model, limiter=pool.limiters.get("https://api.acme.example", pool.concurrency))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from carryon.core.errors import BadInput
from carryon.core.plugins import load_plugins

if TYPE_CHECKING:
    from carryon.core.chat import ChatClient
    from carryon.models.names import ModelSpec
    from carryon.models.registry import ModelPool

ENTRY_POINT_GROUP = "carryon.providers"
BUILTIN = ("carryon.models.builtin", "carryon.testing.provider")

Opener = Callable[["ModelSpec", "ModelPool"], "ChatClient"]


@dataclass(frozen=True)
class Provider:
    """How to check and open `name/<model>`.

    - `key_env`: an environment variable that must be set (checked before any call);
    - `base_url`: `required` (`--base-url` or the role's own), `optional` (passed on when given) or `ignored`;
    - `models`: the model names it knows, when it knows them all (checked at once: `testing/idael` is a typo);
    - `serial`: serves one request at a time (llama.cpp): conversations and judgements run one after another;
    - `preflight`: a check before any paid call (the server is reachable and serves the model), raising BadInput;
    - `on_dataset`: told the run's items before the run (the testing models answer by recognising them);
    - `options`: checks one model option (`provider/model?key=value`, models/names.py): why `key=value` is not
      valid, or None; without it the provider's models take no options.
    """

    name: str
    open: Opener
    key_env: str | None = None
    base_url: Literal["required", "optional", "ignored"] = "ignored"
    models: Callable[[], Iterable[str]] | None = None
    serial: bool = False
    preflight: Callable[[ModelSpec], None] | None = None
    on_dataset: Callable[[list[Any]], None] | None = None
    options: Callable[[str, str], str | None] | None = None


_registered: dict[str, Provider] = {}


def provider(name: str, *, key_env: str | None = None, base_url: Literal["required", "optional", "ignored"] = "ignored",
             models: Callable[[], Iterable[str]] | None = None, serial: bool = False,
             preflight: Callable[[ModelSpec], None] | None = None,
             on_dataset: Callable[[list[Any]], None] | None = None,
             options: Callable[[str, str], str | None] | None = None) -> Callable[[Opener], Opener]:  # fmt: skip
    """Register the decorated `open(spec, pool) -> ChatClient` as provider `name`."""

    def register(open_client: Opener) -> Opener:
        if "/" in name or not name:
            raise ValueError(f"provider name {name!r}: no slash, not empty")
        known = _registered.get(name)
        if known is not None and known.open is not open_client:
            raise ValueError(f"provider {name!r} is registered twice ({known.open.__module__}, {open_client.__module__})")
        _registered[name] = Provider(name, open_client, key_env, base_url, models, serial, preflight, on_dataset,
                                     options)  # fmt: skip
        return open_client

    return register


@cache
def providers() -> dict[str, Provider]:
    """Every provider: CarryOn's own, then those of installed packages (entry-point group `carryon.providers`)."""
    load_plugins(ENTRY_POINT_GROUP, BUILTIN, "provider")
    return dict(_registered)


def get(name: str) -> Provider:
    found = providers().get(name)
    if found is None:
        raise BadInput(f"unknown provider {name!r}; known: {', '.join(providers())}")
    return found
