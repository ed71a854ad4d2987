"""Prompt caching: the judges' shared prefix is marked for Anthropic, cached input tokens are read from both providers'
usage, and metrics.json counts tokens per role (calls answered from CarryOn's own cache count none)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from carryon.calls import CachedCaller
from carryon.judge.ben_util import judge_per_item
from carryon.judge.response_type import judge_response_type
from carryon.metrics.summary import usage
from carryon.models.anthropic import AnthropicClient
from carryon.core.chat import ChatRequest, ChatResult, Message, Usage, msgs
from carryon.models.openai_compat import OpenAICompatClient
from carryon.store import Store


class Recorder:
    name = "testing/recorder"

    def __init__(self) -> None:
        self.requests: list[ChatRequest] = []

    async def complete(self, request: ChatRequest) -> ChatResult:
        self.requests.append(request)
        text = '{"met": true, "reason": "ok"}' if "TASK A" in request.messages[-1].content else \
            '{"type": "full_compliance", "reason": "ok"}'  # fmt: skip
        return ChatResult(text=text)

    async def aclose(self) -> None:
        return None


def test_judge_calls_of_one_response_share_a_marked_prefix(tmp_path: Path) -> None:
    recorder = Recorder()
    history = [Message(role="user", content="How do locks fail?")]

    async def go() -> None:
        with Store(tmp_path) as store:
            caller = CachedCaller(store)
            await judge_per_item(caller, recorder, ["States one", "States two"], history, "A response.")
            await judge_response_type(caller, recorder, history, "A response.")

    asyncio.run(go())
    assert len(recorder.requests) == 4  # two items; the response type: "does it decline?" + the classifier
    assert all(r.cache_prefix for r in recorder.requests)  # the judge system prompt, shared by every judge call
    prefixes = {r.messages[-1].content[: r.cache_shared_chars] for r in recorder.requests}
    assert len(prefixes) == 1  # the same conversation + response block in every judgement of the response
    shared = prefixes.pop()
    assert shared.endswith("</response>\n") and "A response." in shared and "TASK" not in shared
    assert all("TASK" in r.messages[-1].content[r.cache_shared_chars :] for r in recorder.requests)


def test_anthropic_payload_marks_the_shared_prefix_and_only_there() -> None:
    client = AnthropicClient("anthropic/m", "m", "http://127.0.0.1:1")
    user = "<response>\nR\n</response>\nTASK A. item"
    shared = user.index("TASK")
    judge = client.build_payload(ChatRequest(messages=msgs(("system", "S"), ("user", user)), cache_prefix=True,
                                             cache_shared_chars=shared))  # fmt: skip
    assert judge["system"] == [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}]
    assert judge["messages"][-1]["content"] == [
        {"type": "text", "text": user[:shared], "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": user[shared:]},
    ]
    target = client.build_payload(ChatRequest(messages=msgs(("system", "S"), ("user", "hi"))))
    assert target["system"] == "S" and target["messages"] == [{"role": "user", "content": "hi"}]


def test_cached_input_tokens_are_read_from_both_providers() -> None:
    openai = OpenAICompatClient("openai/m", "m", "http://127.0.0.1:1").parse_body({
        "choices": [{"message": {"content": "x"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 1024}},
    })  # fmt: skip
    assert openai.usage == Usage(prompt_tokens=1200, completion_tokens=5, cached_tokens=1024)
    anthropic = AnthropicClient("anthropic/m", "m", "http://127.0.0.1:1").parse_body({
        "content": [{"type": "text", "text": "x"}], "stop_reason": "end_turn",
        "usage": {"input_tokens": 50, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 1000,
                  "output_tokens": 7},
    })  # fmt: skip
    # Anthropic's input_tokens leave out the cache: the total input is all three
    assert anthropic.usage == Usage(prompt_tokens=1150, completion_tokens=7, cached_tokens=1000)


def test_usage_counts_tokens_of_calls_made_only(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        made = ChatResult(text="a", usage=Usage(prompt_tokens=100, completion_tokens=10, cached_tokens=60))
        store.add_call("k1", "judge", "openai/j", made, "http://a/v1")
        store.add_call("k2", "judge", "openai/j", made.model_copy(update={"batch_id": "b1"}), "http://b/v1")
        store.log_cache_hit("k1", "judge", "openai/j")
        store.add_call("k3", "target", "openai/t", ChatResult(text="t", usage=Usage(prompt_tokens=40)), "http://a/v1")
        got = usage(store)
    assert got["roles"]["judge"] == {
        "calls_made": 2, "calls_from_cache": 1, "calls_batched": 1, "input_tokens": 200, "cached_input_tokens": 120,
        "cached_share": 0.6, "output_tokens": 20}  # fmt: skip
    assert got["roles"]["target"]["cached_share"] == 0.0
    assert got["endpoints"] == {"judge": {"http://a/v1": 1, "http://b/v1": 1}, "target": {"http://a/v1": 1}}
    assert got["total"]["calls_made"] == 3 and got["total"]["input_tokens"] == 240
