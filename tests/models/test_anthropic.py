"""The Anthropic client against a local fake of the Messages API: the request it sends and how it reads the answer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web

from carryon.core.chat import ChatRequest, msgs
from carryon.models.anthropic import ANTHROPIC_VERSION
from carryon.models.names import parse_model_name
from carryon.models.registry import ModelPool

ANSWER = {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
    "content": [{"type": "text", "text": "Hello, "}, {"type": "tool_use", "id": "t", "name": "x", "input": {}},
                {"type": "text", "text": "world."}],
    "stop_reason": "max_tokens", "usage": {"input_tokens": 12, "output_tokens": 3},
}  # fmt: skip


async def _exchange(request: ChatRequest, answers: list[tuple[int, dict[str, Any]]]) -> tuple[Any, list[Any]]:
    seen: list[Any] = []

    async def messages(http: web.Request) -> web.Response:
        seen.append((http.path, dict(http.headers), await http.json()))
        status, body = answers[min(len(seen), len(answers)) - 1]
        return web.json_response(body, status=status, headers={"Retry-After": "0"} if status == 529 else None)

    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
            env.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{port}")
            spec = parse_model_name("anthropic/claude-test", role="target")
            async with ModelPool(concurrency=2) as pool:
                result = await pool.client("target", spec).complete(request)
    finally:
        await runner.cleanup()
    return result, seen


def test_request_body_and_headers_follow_the_messages_api() -> None:
    request = ChatRequest(messages=msgs(("system", "Be brief."), ("system", "No lists."), ("user", "Hi"),
                                        ("assistant", "Hello"), ("user", "Again")),
                          max_tokens=50, temperature=0.3, seed=4, json_schema={"type": "object"})  # fmt: skip
    result, seen = asyncio.run(_exchange(request, [(200, ANSWER)]))
    [(path, headers, body)] = seen
    assert path == "/v1/messages"
    assert headers["x-api-key"] == "sk-ant-test" and headers["anthropic-version"] == ANTHROPIC_VERSION == "2026-10-21"
    assert body == {  # this API version takes no sampling parameters: no temperature
        "model": "claude-test", "max_tokens": 50, "system": "Be brief.\n\nNo lists.",
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                     {"role": "user", "content": "Again"}],
    }  # fmt: skip
    assert result.text == "Hello, world."  # text blocks joined, other blocks ignored
    assert result.finish_reason == "length"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (12, 3)


def test_end_turn_is_stop_no_system_field_and_overload_is_retried() -> None:
    answer = {**ANSWER, "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "usage": {}}
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    request = ChatRequest(messages=msgs(("user", "Hi")), max_tokens=20)
    result, seen = asyncio.run(_exchange(request, [(529, overloaded), (200, answer)]))
    assert len(seen) == 2 and "system" not in seen[1][2]
    assert (result.text, result.finish_reason, result.usage.prompt_tokens) == ("ok", "stop", 0)
