"""Anthropic's Messages API: the system prompt as a top-level field, `max_tokens` required, the `anthropic-version`
header (set where the client is opened, models/builtin.py), JSON judged from free text.

- API version 2026-10-21 (the one the official SDK 2.x sends) rejects sampling parameters on every model: no
  `temperature` is sent, so `--temperature` does not reach Anthropic models (they sample as the API decides).

- A request whose system prompt is a prefix many calls share (`ChatRequest.cache_prefix`: the judges') sends it as a
  text block marked `cache_control: {"type": "ephemeral"}`, so the provider caches it; a prompt shorter than the
  model's minimum cacheable length is simply not cached. `ChatRequest.cache_shared_chars` adds a second breakpoint
  inside the last message, after the part the request shares with its siblings (a judged response's conversation +
  response block): the judge system prompt alone (~700 tokens) is under most models' minimum, the two together
  usually are not.
- Stop reasons: `end_turn` and `stop_sequence` → `stop`, `max_tokens` and `model_context_window_exceeded` →
  `length`, `refusal` (the provider's safety layer stopped the reply) → `provider_refusal`; any other is kept.
- Usage: `prompt_tokens` counts every input token (`input_tokens` + cache reads + cache writes); cache reads are
  also recorded as `cached_tokens`, `output_tokens_details.thinking_tokens` as `reasoning_tokens`.
- The API requires the first message to be the user's: a conversation that opens with an assistant turn (the LLM
  user's role-flipped view) gets a one-line user turn in front.
"""

from __future__ import annotations

from typing import Any

from carryon.core.chat import PROVIDER_REFUSAL, ChatRequest, ChatResult, Usage
from carryon.models.http import HttpChatClient

ANTHROPIC_VERSION = "2026-10-21"
OPENING = "(The conversation begins.)"
_STOP = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "model_context_window_exceeded": "length",
         "refusal": PROVIDER_REFUSAL}  # fmt: skip
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
        messages: list[dict[str, Any]] = [{"role": m.role, "content": m.content} for m in request.messages
                                          if m.role != "system"]  # fmt: skip
        if messages and messages[0]["role"] == "assistant":
            messages.insert(0, {"role": "user", "content": OPENING})
        payload: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "messages": messages,
        }
        if request.cache_shared_chars > 0 and isinstance(messages[-1]["content"], str):
            # a second breakpoint after the block the request shares with its siblings (a response's judgements
            # repeat the conversation + response after the judge system prompt, which alone is often too short)
            last = messages[-1]
            last["content"] = cached_blocks(last["content"], min(request.cache_shared_chars, len(last["content"])))
        if system and request.cache_prefix:
            payload["system"] = [{"type": "text", "text": system, "cache_control": CACHE}]
        elif system:
            payload["system"] = system
        return payload

    def parse_body(self, body: dict[str, Any]) -> ChatResult:
        text = "".join(block.get("text", "") for block in body["content"] if block.get("type") == "text")
        usage = body.get("usage") or {}
        cache_read = int(usage.get("cache_read_input_tokens") or 0)
        cache_write = int(usage.get("cache_creation_input_tokens") or 0)
        stop = body.get("stop_reason") or "end_turn"
        return ChatResult(
            text=text,
            finish_reason=_STOP.get(stop, stop),
            usage=Usage(
                prompt_tokens=int(usage.get("input_tokens") or 0) + cache_read + cache_write,
                completion_tokens=int(usage.get("output_tokens") or 0),
                cached_tokens=cache_read,
                reasoning_tokens=int((usage.get("output_tokens_details") or {}).get("thinking_tokens") or 0),
            ),
        )
