"""Plugins: a registry's own modules, then the modules installed packages expose in its entry-point group. Importing
a module registers what it defines (its decorators run: `@provider`, `@judge_kind`); a plugin that fails to import is
named in one clear error, not a traceback."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from importlib.metadata import entry_points

from carryon.core.errors import BadInput


def load_plugins(group: str, builtin: Sequence[str], what: str) -> None:
    """Import `builtin` (in order), then every entry point of `group` that is not one of them. `what` names the
    plugin kind in the error (`provider`, `judge kind`)."""
    for module in builtin:
        importlib.import_module(module)
    for entry in entry_points(group=group):
        if entry.value in builtin:
            continue
        try:
            entry.load()
        except Exception as error:  # noqa: BLE001 - a broken plugin is named, not a traceback
            raise BadInput(f"{what} plugin {entry.name} ({entry.value}) failed to load: "
                           f"{type(error).__name__}: {error}") from None  # fmt: skip
