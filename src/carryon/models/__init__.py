"""Chat clients behind one small async protocol (`base.ChatClient`), resolved from `provider/model` names.

Light on purpose: importing `carryon.models.names` (to check a flag) must not load the HTTP stack, so this package
re-exports lazily."""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "ChatClient": "base", "ChatRequest": "base", "ChatResult": "base", "Message": "base", "Usage": "base",
    "ModelSpec": "names", "parse_model_name": "names", "open_client": "registry",
}  # fmt: skip
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"carryon.models.{_EXPORTS[name]}"), name)
    raise AttributeError(name)
