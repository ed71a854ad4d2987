"""OpenAI and any OpenAI-compatible server (vLLM, SGLang, llama.cpp, Ollama, OpenRouter…).

Reasoning families (o1, o3, o4, gpt-5) take `max_completion_tokens` — which also pays for the hidden reasoning, so
CarryOn adds `reasoning_budget` tokens to the visible budget — and refuse a `temperature`; `reasoning_effort` is
passed through when set. Which models are reasoning models: `is_reasoning_model` (the documented name rule), or the
explicit model option `?reasoning=true|false` (models/registry.py).

A reply the provider's safety layer stopped — `message.refusal`, a `refusal` content part, or
`finish_reason: "content_filter"` — comes back with finish reason `provider_refusal`, never as an ordinary stop.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from carryon.models.base import PROVIDER_REFUSAL, ChatRequest, ChatResult, Usage
from carryon.models.http import HttpChatClient

# How a server accepts schema-constrained JSON: OpenAI's `json_schema`, llama-cpp-python's `json_object` + schema,
# or not at all (the judges then parse free text).
SchemaStyle = Literal["openai", "llama-cpp", "none"]

REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
DEFAULT_REASONING_BUDGET = 4096
"""Tokens added to a request's `max_tokens` for a reasoning model's hidden reasoning (`max_completion_tokens` counts
both): without it a judge asked for 80 tokens would spend them all thinking and answer nothing."""

_REASONING_NAME = re.compile(r"^(?:o1|o3|o4)(?:$|[-_.])|^gpt-5(?!.*-chat)")


def is_reasoning_model(model: str) -> bool:
    """The documented rule: a model whose name (the part after any `org/`) starts with `o1`, `o3`, `o4` or `gpt-5`
    is a reasoning model — except `gpt-5…-chat…` variants. Override per model with `?reasoning=true|false`."""
    return bool(_REASONING_NAME.search(model.rsplit("/", 1)[-1].lower()))


_FINISH = {"stop": "stop", "length": "length", "content_filter": PROVIDER_REFUSAL}


class OpenAICompatClient(HttpChatClient):
    def __init__(
        self,
        *args: Any,
        schema_style: SchemaStyle = "openai",
        reasoning: bool | None = None,
        reasoning_effort: str | None = None,
        reasoning_budget: int = DEFAULT_REASONING_BUDGET,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.schema_style = schema_style
        self.reasoning = is_reasoning_model(self.model) if reasoning is None else reasoning
        self.reasoning_effort = reasoning_effort
        self.reasoning_budget = reasoning_budget

    def build_payload(self, request: ChatRequest) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
        if self.reasoning:
            payload["max_completion_tokens"] = request.max_tokens + self.reasoning_budget
            if self.reasoning_effort is not None:
                payload["reasoning_effort"] = self.reasoning_effort
        else:
            payload["max_tokens"] = request.max_tokens
            payload["temperature"] = request.temperature
        if request.seed is not None:
            payload["seed"] = request.seed
        if request.json_schema is not None:
            if self.schema_style == "openai":
                payload["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "verdict", "schema": request.json_schema},
                }
            elif self.schema_style == "llama-cpp":
                payload["response_format"] = {"type": "json_object", "schema": request.json_schema}
        return payload

    def parse_body(self, body: dict[str, Any]) -> ChatResult:
        choice = body["choices"][0]
        message = choice.get("message") or {}
        text, refused = message_text(message)
        finish = _FINISH.get(choice.get("finish_reason") or "stop", choice.get("finish_reason"))
        if refused:
            finish = PROVIDER_REFUSAL
        usage = body.get("usage") or {}
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        return ChatResult(
            text=text,
            finish_reason=finish,
            usage=Usage(
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
                cached_tokens=int(prompt_details.get("cached_tokens") or 0),
                reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
            ),
        )


def message_text(message: dict[str, Any]) -> tuple[str, bool]:
    """(the text of an assistant message, whether the provider refused). `content` is a string, null, or a list of
    parts (some servers): text parts are joined, a `refusal` part or a `refusal` field means the provider refused,
    and its explanation is the text when there is no other."""
    content = message.get("content")
    refusals = [str(message["refusal"])] if message.get("refusal") else []
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") in ("text", "output_text"):
                texts.append(str(part.get("text") or ""))
            elif part.get("type") == "refusal":
                refusals.append(str(part.get("refusal") or ""))
        text = "".join(texts)
    else:
        text = content or ""
    return (text or "\n".join(refusals)), bool(refusals)
