"""OpenAI and any OpenAI-compatible server (vLLM, SGLang, llama.cpp, Ollama, OpenRouter…)."""

from __future__ import annotations

from typing import Any, Literal

from carryon.models.base import ChatRequest, ChatResult, Usage
from carryon.models.http import HttpChatClient

# How a server accepts schema-constrained JSON: OpenAI's `json_schema`, llama-cpp-python's `json_object` + schema,
# or not at all (the judges then parse free text).
SchemaStyle = Literal["openai", "llama-cpp", "none"]


class OpenAICompatClient(HttpChatClient):
    def __init__(self, *args: Any, schema_style: SchemaStyle = "openai", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.schema_style = schema_style

    def build_payload(self, request: ChatRequest) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
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
        usage = body.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        return ChatResult(
            text=choice["message"].get("content") or "",
            finish_reason=choice.get("finish_reason") or "stop",
            usage=Usage(
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
                cached_tokens=int(details.get("cached_tokens") or 0),
            ),
        )
