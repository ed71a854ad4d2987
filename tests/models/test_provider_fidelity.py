"""The provider clients against the official SDKs' types (`openai`, `anthropic`: dev dependencies only): request bodies
validate as the SDKs' request params, responses built with the SDKs' response models parse — chat and reasoning
families, provider refusals and content filters, multi-part content, cached and reasoning tokens — and the clients
send the right path and headers over real HTTP."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

openai_types = pytest.importorskip("openai.types.chat")
anthropic_types = pytest.importorskip("anthropic.types")

from anthropic.types import Message as AnthropicMessage  # noqa: E402
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming  # noqa: E402
from openai.types.chat import ChatCompletion  # noqa: E402
from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming  # noqa: E402
from sdk_types import check_request  # noqa: E402

from carryon.errors import BadInput  # noqa: E402
from carryon.judge.common import ask  # noqa: E402
from carryon.judge.response_type import TypeVerdict  # noqa: E402
from carryon.judge.prompts import load_prompt  # noqa: E402
from carryon.models.anthropic import ANTHROPIC_VERSION, OPENING, AnthropicClient  # noqa: E402
from carryon.models.base import PROVIDER_REFUSAL, ChatRequest, ChatResult, msgs  # noqa: E402
from carryon.models.openai_compat import OpenAICompatClient, is_reasoning_model  # noqa: E402
from carryon.models.registry import ModelPool, open_client, parse_model_name  # noqa: E402

REQUEST = ChatRequest(messages=msgs(("system", "be brief"), ("user", "hi"), ("assistant", "hello"), ("user", "more")),
                      max_tokens=64, temperature=0.0, seed=3)  # fmt: skip
JUDGE_REQUEST = ChatRequest(messages=msgs(("system", "judge system"), ("user", "the task")), max_tokens=80,
                            json_schema={"type": "object", "properties": {"met": {"type": "boolean"}}},
                            cache_prefix=True)  # fmt: skip


def openai_client(model: str, **kwargs: Any) -> OpenAICompatClient:
    return OpenAICompatClient(f"openai/{model}", model, "http://127.0.0.1:9", **kwargs)


def anthropic_client(model: str = "claude-sonnet-4-5") -> AnthropicClient:
    return AnthropicClient(f"anthropic/{model}", model, "http://127.0.0.1:9")


# -- OpenAI: requests ---------------------------------------------------------------------------------------------
def test_chat_model_request_is_a_valid_sdk_request() -> None:
    body = openai_client("gpt-4o-mini").build_payload(REQUEST)
    check_request(CompletionCreateParamsNonStreaming, body)
    assert body["max_tokens"] == 64 and body["temperature"] == 0.0 and body["seed"] == 3
    assert "max_completion_tokens" not in body
    judge = openai_client("gpt-4o-mini").build_payload(JUDGE_REQUEST)
    check_request(CompletionCreateParamsNonStreaming, judge)
    assert judge["response_format"]["type"] == "json_schema"


def test_reasoning_families_take_max_completion_tokens_and_no_temperature() -> None:
    for model in ("o1", "o1-mini", "o3", "o3-mini", "o4-mini", "gpt-5", "gpt-5-mini", "gpt-5.1", "openai/o3-pro"):
        assert is_reasoning_model(model), model
    for model in ("gpt-4o", "gpt-4.1-mini", "gpt-5-chat-latest", "omni-moderation", "o2-clone", "llama-3-o1"):
        assert not is_reasoning_model(model), model
    client = openai_client("o3-mini")
    body = client.build_payload(REQUEST)
    check_request(CompletionCreateParamsNonStreaming, body)
    assert "max_tokens" not in body and "temperature" not in body and "reasoning_effort" not in body
    assert body["max_completion_tokens"] == 64 + client.reasoning_budget  # room for the hidden reasoning
    effort = openai_client("gpt-5", reasoning_effort="minimal", reasoning_budget=0).build_payload(JUDGE_REQUEST)
    check_request(CompletionCreateParamsNonStreaming, effort)
    assert effort["reasoning_effort"] == "minimal" and effort["max_completion_tokens"] == 80


def test_reasoning_is_a_model_option_that_overrides_the_name_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    spec = parse_model_name("openai-api/my-deployment?reasoning_effort=high&reasoning=true", role="target",
                            base_url="http://127.0.0.1:9/v1")  # fmt: skip
    assert spec.name == "openai-api/my-deployment?reasoning=true&reasoning_effort=high"
    client = open_client(spec, ModelPool())
    assert isinstance(client, OpenAICompatClient) and client.name == spec.name
    body = client.build_payload(REQUEST)
    assert body["reasoning_effort"] == "high" and "temperature" not in body
    off = open_client(parse_model_name("openai/o3-mini?reasoning=false"), ModelPool())
    assert isinstance(off, OpenAICompatClient) and "temperature" in off.build_payload(REQUEST)
    for bad in ("openai/o3?reasoning_effort=extreme", "openai/o3?colour=blue", "openai/o3?reasoning",
                "local/qwen2.5-coder-1.5b?reasoning=true"):  # fmt: skip
        with pytest.raises(BadInput, match="option"):
            parse_model_name(bad, role="target")


# -- OpenAI: responses --------------------------------------------------------------------------------------------
def completion(message: dict[str, Any], finish_reason: str = "stop", usage: dict[str, Any] | None = None) -> dict[str, Any]:
    """A response body as the SDK's own model serialises it (validated on the way)."""
    model = ChatCompletion.model_validate({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "finish_reason": finish_reason, "message": {"role": "assistant", **message}}],
        "usage": usage or {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    })  # fmt: skip
    return model.model_dump(mode="json")


def test_chat_response_with_cached_and_reasoning_tokens() -> None:
    usage = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
             "prompt_tokens_details": {"cached_tokens": 1024},
             "completion_tokens_details": {"reasoning_tokens": 256}}  # fmt: skip
    result = openai_client("o3").parse_body(completion({"content": "Here you go.", "refusal": None}, usage=usage))
    assert result.text == "Here you go." and result.finish_reason == "stop"
    assert result.usage.model_dump() == {"prompt_tokens": 1200, "completion_tokens": 300, "cached_tokens": 1024,
                                         "reasoning_tokens": 256}  # fmt: skip
    cut = openai_client("gpt-4o").parse_body(completion({"content": "Here"}, finish_reason="length"))
    assert cut.finish_reason == "length"


def test_refusals_and_content_filters_are_provider_refusals() -> None:
    refusal = openai_client("gpt-4o").parse_body(completion({"content": None, "refusal": "I can't help with that."}))
    assert refusal.finish_reason == PROVIDER_REFUSAL and refusal.text == "I can't help with that."
    filtered = openai_client("gpt-4o").parse_body(completion({"content": None}, finish_reason="content_filter"))
    assert filtered.finish_reason == PROVIDER_REFUSAL and filtered.text == ""
    plain = openai_client("gpt-4o").parse_body(completion({"content": "I'm sorry, but I can't help with that."}))
    assert plain.finish_reason == "stop"  # the model's own refusal is the judge's to find, not a provider refusal


def test_multi_part_content_is_joined_and_a_refusal_part_is_a_provider_refusal() -> None:
    client = openai_client("gpt-4o")
    body = completion({"content": "x"})
    body["choices"][0]["message"]["content"] = [{"type": "text", "text": "Part one. "}, {"type": "text", "text": "Two."}]
    assert client.parse_body(body).text == "Part one. Two."
    body["choices"][0]["message"]["content"] = [{"type": "refusal", "refusal": "No."}]
    result = client.parse_body(body)
    assert result.finish_reason == PROVIDER_REFUSAL and result.text == "No."


# -- Anthropic ----------------------------------------------------------------------------------------------------
def test_anthropic_request_is_a_valid_sdk_request() -> None:
    body = anthropic_client().build_payload(REQUEST)
    check_request(MessageCreateParamsNonStreaming, body)
    assert body["system"] == "be brief" and body["max_tokens"] == 64
    assert "temperature" not in body  # API version 2026-10-21 rejects sampling parameters
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    judge = anthropic_client().build_payload(JUDGE_REQUEST)
    check_request(MessageCreateParamsNonStreaming, judge)
    # the judges' shared prefix is marked for the provider's prompt cache
    assert judge["system"] == [{"type": "text", "text": "judge system", "cache_control": {"type": "ephemeral"}}]
    flipped = ChatRequest(messages=msgs(("system", "s"), ("assistant", "my question"), ("user", "a refusal")))
    first = anthropic_client().build_payload(flipped)["messages"]
    assert first[0] == {"role": "user", "content": OPENING} and first[1]["role"] == "assistant"


def anthropic_message(content: list[dict[str, Any]], stop_reason: str, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    model = AnthropicMessage.model_validate({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": content,
        "stop_reason": stop_reason, "stop_sequence": None,
        "usage": usage or {"input_tokens": 10, "output_tokens": 5},
    })  # fmt: skip
    return model.model_dump(mode="json")


def test_anthropic_responses_stop_reasons_and_cache_usage() -> None:
    client = anthropic_client()
    usage = {"input_tokens": 50, "output_tokens": 7, "cache_read_input_tokens": 2000, "cache_creation_input_tokens": 0,
             "output_tokens_details": {"thinking_tokens": 3}}  # fmt: skip
    content = [{"type": "thinking", "thinking": "hmm", "signature": "sig"}, {"type": "text", "text": "One. "},
               {"type": "text", "text": "Two."}]  # fmt: skip
    result = client.parse_body(anthropic_message(content, "end_turn", usage))
    assert result.text == "One. Two." and result.finish_reason == "stop"
    assert result.usage.model_dump() == {"prompt_tokens": 2050, "completion_tokens": 7, "cached_tokens": 2000,
                                         "reasoning_tokens": 3}  # fmt: skip
    text = [{"type": "text", "text": "x"}]
    assert client.parse_body(anthropic_message(text, "max_tokens")).finish_reason == "length"
    assert client.parse_body(anthropic_message(text, "stop_sequence")).finish_reason == "stop"
    assert client.parse_body(anthropic_message(text, "model_context_window_exceeded")).finish_reason == "length"
    refused = client.parse_body(anthropic_message([], "refusal"))
    assert refused.finish_reason == PROVIDER_REFUSAL and refused.text == ""


# -- over real HTTP: path, headers, body ---------------------------------------------------------------------------
class Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, reply: dict[str, Any]) -> None:
        super().__init__(("127.0.0.1", 0), _RecordingHandler)
        self.reply = reply
        self.seen: list[tuple[str, dict[str, str], dict[str, Any]]] = []


class _RecordingHandler(BaseHTTPRequestHandler):
    server: Recorder

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        data = json.dumps(self.server.reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def recorder(request: pytest.FixtureRequest) -> Iterator[Recorder]:
    server = Recorder(request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _complete(name: str, request: ChatRequest) -> ChatResult:
    async def go() -> ChatResult:
        async with ModelPool() as pool:
            return await pool.client("target", parse_model_name(name)).complete(request)

    return asyncio.run(go())


@pytest.mark.parametrize("recorder", [anthropic_message([{"type": "text", "text": "Hi."}], "end_turn")], indirect=True)
def test_anthropic_client_over_http_sends_version_header_and_key(recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{recorder.server_address[1]}")
    result = _complete("anthropic/claude-sonnet-4-5", JUDGE_REQUEST)
    assert result.text == "Hi."
    path, headers, body = recorder.seen[0]
    assert path == "/v1/messages"
    import anthropic

    sdk_version = anthropic.Anthropic(api_key="x").default_headers["anthropic-version"]
    assert headers["anthropic-version"] == ANTHROPIC_VERSION == sdk_version and headers["x-api-key"] == "sk-ant-test"
    check_request(MessageCreateParamsNonStreaming, body)
    assert body["model"] == "claude-sonnet-4-5"


@pytest.mark.parametrize("recorder", [completion({"content": None, "refusal": "No."})], indirect=True)
def test_openai_reasoning_client_over_http(recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{recorder.server_address[1]}/v1")
    result = _complete("openai/o4-mini?reasoning_effort=low", REQUEST)
    assert result.finish_reason == PROVIDER_REFUSAL and result.text == "No."  # an empty content is no error here
    path, headers, body = recorder.seen[0]
    assert path == "/v1/chat/completions" and headers["authorization"] == "Bearer sk-test"
    check_request(CompletionCreateParamsNonStreaming, body)
    assert body["reasoning_effort"] == "low" and "temperature" not in body and "max_tokens" not in body


def test_a_judge_whose_provider_refuses_is_unscored_with_that_reason() -> None:
    class Refusing:
        name = "testing/refusing"
        calls = 0

        async def complete(self, request: ChatRequest) -> ChatResult:
            Refusing.calls += 1
            assert request.cache_prefix  # judge requests mark their shared system prompt
            return ChatResult(text="", finish_reason=PROVIDER_REFUSAL)

        async def aclose(self) -> None:
            return None

    class Direct:
        async def call(self, role: str, client: Any, request: ChatRequest) -> ChatResult:
            result: ChatResult = await client.complete(request)
            return result

    parsed, _, reason = asyncio.run(ask(Direct(), Refusing(), load_prompt("response_type"), "u", TypeVerdict,  # type: ignore[arg-type]
                                        max_tokens=80))  # fmt: skip
    assert parsed is None and reason is not None and "provider refused" in reason
    assert Refusing.calls == 1  # asking again would meet the same filter
