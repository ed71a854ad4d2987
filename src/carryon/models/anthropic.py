"""Anthropic's Messages API (system prompt as a top-level field; JSON judged from free text)."""

from __future__ import annotations

from typing import Any

from carryon.core.chat import ChatRequest, ChatResult, Usage
from carryon.models.http import HttpChatClient

ANTHROPIC_VERSION = "2023-06-01"


class AnthropicClient(HttpChatClient):
    path = "/v1/messages"

    def build_payload(self, request: ChatRequest) -> dict[str, Any]:
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        payload: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages if m.role != "system"],
        }
        if system:
            payload["system"] = system
        return payload

    def parse_body(self, body: dict[str, Any]) -> ChatResult:
        text = "".join(block.get("text", "") for block in body["content"] if block.get("type") == "text")
        usage = body.get("usage") or {}
        return ChatResult(
            text=text,
            finish_reason={"end_turn": "stop", "max_tokens": "length"}.get(body.get("stop_reason") or "", "stop"),
            usage=Usage(
                prompt_tokens=int(usage.get("input_tokens") or 0),
                completion_tokens=int(usage.get("output_tokens") or 0),
            ),
        )
