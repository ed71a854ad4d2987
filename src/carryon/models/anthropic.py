"""Anthropic's Messages API (system prompt as a top-level field; JSON judged from free text)."""

from __future__ import annotations

from typing import Any

from carryon.models.base import ChatRequest, ChatResult, Usage
from carryon.models.http import HttpChatClient

ANTHROPIC_VERSION = "2023-06-01"
CACHE = {"type": "ephemeral"}


def cached_blocks(text: str, shared: int) -> list[dict[str, Any]]:
    """`text` as content blocks with a prompt-cache breakpoint after its first `shared` characters."""
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text[:shared], "cache_control": CACHE}]
    if text[shared:]:
        blocks.append({"type": "text", "text": text[shared:]})
    return blocks


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
        if request.cache_prefix > 0:
            # Prompt caching: the shared prefix (the judge system prompt, then the conversation + response block that
            # every judgement of one response repeats) is marked, so the siblings read it from Anthropic's cache.
            last = payload["messages"][-1]
            last["content"] = cached_blocks(last["content"], min(request.cache_prefix, len(last["content"])))
            if system:
                payload["system"] = [{"type": "text", "text": system, "cache_control": CACHE}]
        elif system:
            payload["system"] = system
        return payload

    def parse_body(self, body: dict[str, Any]) -> ChatResult:
        text = "".join(block.get("text", "") for block in body["content"] if block.get("type") == "text")
        usage = body.get("usage") or {}
        fresh = int(usage.get("input_tokens") or 0)
        written = int(usage.get("cache_creation_input_tokens") or 0)
        read = int(usage.get("cache_read_input_tokens") or 0)
        return ChatResult(
            text=text,
            finish_reason={"end_turn": "stop", "max_tokens": "length"}.get(body.get("stop_reason") or "", "stop"),
            usage=Usage(
                prompt_tokens=fresh + written + read,  # Anthropic's input_tokens leave out cache writes and reads
                completion_tokens=int(usage.get("output_tokens") or 0),
                cached_tokens=read,
            ),
        )
