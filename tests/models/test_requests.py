"""The call-cache key: equal requests share it, anything that shapes the output changes it."""

from __future__ import annotations

from carryon.core.chat import ChatRequest, msgs


def test_cache_key_is_stable_and_separates_every_part() -> None:
    base = ChatRequest(messages=msgs(("system", "s"), ("user", "ab"), ("assistant", "c")), max_tokens=64)
    assert base.cache_key("m") == ChatRequest(messages=msgs(("system", "s"), ("user", "ab"), ("assistant", "c")),
                                              max_tokens=64).cache_key("m")  # fmt: skip
    variants = [
        base.model_copy(update={"messages": msgs(("system", "s"), ("user", "a"), ("assistant", "bc"))}),  # shifted
        base.model_copy(update={"messages": msgs(("system", "s"), ("assistant", "ab"), ("assistant", "c"))}),
        base.model_copy(update={"messages": msgs(("system", "s"), ("user", "ab"))}),
        base.model_copy(update={"max_tokens": 65}),
        base.model_copy(update={"temperature": 0.7}),
        base.model_copy(update={"seed": 1}),
        base.model_copy(update={"json_schema": {"type": "object"}}),
    ]
    keys = {base.cache_key("m"), base.cache_key("m2"), *(v.cache_key("m") for v in variants)}
    assert len(keys) == 2 + len(variants)
