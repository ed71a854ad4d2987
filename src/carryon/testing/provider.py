"""`testing/<name>`: the deterministic in-process models, registered as a provider like any other."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from carryon.models.providers import provider

if TYPE_CHECKING:
    from carryon.core.chat import ChatClient
    from carryon.models.names import ModelSpec
    from carryon.models.registry import ModelPool


def _names() -> Iterable[str]:
    from carryon.testing.models import MODELS

    return MODELS


def _know(items: list[Any]) -> None:
    from carryon.testing.models import register_items

    register_items(items)


@provider("testing", models=_names, on_dataset=_know)
def testing(spec: ModelSpec, pool: ModelPool) -> ChatClient:
    from carryon.testing.models import InProcessClient

    return InProcessClient(spec.model)
