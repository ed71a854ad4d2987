"""Check a request body against an official SDK's request TypedDict: validated by pydantic, and walked by hand for
what pydantic lets through — keys the SDK does not declare at any level, and values inside `Iterable[...]` fields
(which pydantic validates only lazily)."""

from __future__ import annotations

import collections.abc
import types
import typing
from typing import Any, Literal, Union

import typing_extensions
from pydantic import TypeAdapter
from typing_extensions import get_args, get_origin, get_type_hints, is_typeddict  # the SDKs use these TypedDicts

_WRAPPERS = {typing.Annotated, typing.Required, typing.NotRequired, typing_extensions.Required,
             typing_extensions.NotRequired, typing_extensions.ReadOnly}  # fmt: skip


def _unwrap(tp: Any) -> Any:
    while get_origin(tp) in _WRAPPERS:
        tp = get_args(tp)[0]
    return tp


def problems(value: Any, tp: Any, path: str = "") -> list[str]:
    """Where `value` does not fit the type `tp`: keys the SDK does not declare, required keys missing, literals and
    scalar types that do not match (pydantic validates `Iterable[...]` fields lazily, so it misses those)."""
    tp = _unwrap(tp)
    origin = get_origin(tp)
    if tp is Any:
        return []
    if is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{path}: expected an object"]
        hints = get_type_hints(tp)
        found = [f"{path}.{key}: required" for key in sorted(getattr(tp, "__required_keys__", ())) if key not in value]
        for key, inner in value.items():
            found.extend([f"{path}.{key}: not declared"] if key not in hints else problems(inner, hints[key], f"{path}.{key}"))
        return found
    if origin in (Union, types.UnionType):
        results = [problems(value, member, path) for member in get_args(tp)]
        return [] if any(not r for r in results) else min(results, key=len)
    if origin is Literal:
        return [] if value in get_args(tp) else [f"{path}: {value!r} not one of {get_args(tp)}"]
    if origin in (list, tuple, collections.abc.Iterable, collections.abc.Sequence):
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        (inner,) = get_args(tp)[:1] or (Any,)
        return [p for n, item in enumerate(value) for p in problems(item, inner, f"{path}[{n}]")]
    if origin in (dict, collections.abc.Mapping) or tp is dict:
        return [] if isinstance(value, dict) else [f"{path}: expected an object"]
    if tp is type(None):
        return [] if value is None else [f"{path}: expected null"]
    if tp in (str, bool) or (tp in (int, float) and not isinstance(value, bool)):
        ok = isinstance(value, (int, float)) if tp is float else isinstance(value, tp)
        return [] if ok else [f"{path}: expected {tp.__name__}"]
    return []


def check_request(params_type: Any, body: dict[str, Any]) -> None:
    """Raise AssertionError unless `body` is a valid `params_type` with no key the SDK does not know."""
    TypeAdapter(params_type).validate_python(body)
    found = problems(body, params_type)
    assert not found, f"not a valid SDK request: {found}"
