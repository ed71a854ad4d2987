"""Bounded, storable text from a server: at most `cap` UTF-8 bytes, lone surrogates replaced (and both counted), so a
hostile or broken server can neither blow up memory and every later request nor make the store refuse a text."""

from __future__ import annotations

import re

MAX_RESPONSE_BYTES = 64 * 1024
_SURROGATE = re.compile("[\ud800-\udfff]")


def bound_text(text: str, cap: int = MAX_RESPONSE_BYTES) -> tuple[str, int | None, int]:
    """(text fit to store and forward, its original size in bytes if it was cut to `cap`, characters replaced by
    U+FFFD because they were lone surrogates, which UTF-8 cannot hold)."""
    replaced = 0
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        text, replaced = _SURROGATE.subn("\ufffd", text)
        data = text.encode("utf-8")
    if len(data) <= cap:
        return text, None, replaced
    return data[:cap].decode("utf-8", "ignore"), len(data), replaced
