"""The one protocol every chat client satisfies: messages + generation config in; text, finish reason,
token usage and latency out."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant"]

PROVIDER_REFUSAL = "provider_refusal"
"""The finish reason (and, for a target response, the response type) of a reply the provider's own safety layer
stopped: OpenAI's `message.refusal` or `finish_reason: "content_filter"`, Anthropic's `stop_reason: "refusal"`.
Recorded apart from the model's own refusals (which the response-type judge finds in the text)."""


class Message(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Role
    content: str


class ChatRequest(BaseModel):
    """What a caller asks of a model. `json_schema` asks for schema-constrained JSON where the server can."""

    model_config = ConfigDict(frozen=True)

    messages: tuple[Message, ...]
    max_tokens: int = 512
    temperature: float = 0.0
    seed: int | None = None
    json_schema: dict[str, Any] | None = None
    cache_prefix: bool = False
    """The system prompt is a prefix many calls share (the judges'): providers with explicit prompt caching
    (Anthropic's `cache_control`) mark it. It does not shape the output, so it is not part of the cache key."""
    cache_shared_chars: int = 0
    """How many characters at the start of the last message this request shares with its siblings as well (the judge
    calls of one response repeat the conversation + response block after the shared system prompt): providers with
    explicit prompt caching mark a second breakpoint there. Not part of the cache key either."""

    def cache_key(self, model: str) -> str:
        """A stable key for the call cache: the model name plus everything that shapes the output. Each part is
        hashed length-prefixed (unambiguous, and no JSON encoding of the whole conversation on every call)."""
        digest = hashlib.sha256(b"carryon-call-v2")
        settings = json.dumps([self.max_tokens, self.temperature, self.seed, self.json_schema], sort_keys=True)
        for part in (model, *(text for m in self.messages for text in (m.role, m.content)), settings):
            data = part.encode()
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)
        return digest.hexdigest()


class Usage(BaseModel):
    prompt_tokens: int = 0
    """Input tokens, cached ones included."""
    completion_tokens: int = 0
    """Output tokens, reasoning ones included."""
    cached_tokens: int = 0
    """Input tokens read from the provider's prompt cache (OpenAI `prompt_tokens_details.cached_tokens`, Anthropic
    `cache_read_input_tokens`)."""
    reasoning_tokens: int = 0
    """Output tokens a reasoning model spent thinking (OpenAI `completion_tokens_details.reasoning_tokens`)."""


class ChatResult(BaseModel):
    text: str
    finish_reason: str = "stop"
    usage: Usage = Field(default_factory=Usage)
    latency_s: float = 0.0
    endpoint: str | None = None
    """The base URL that served the call, where a role has several (recorded in the call log)."""
    batch_id: str | None = None
    """The provider batch the call was answered in (`--batch`)."""
    truncated_from: int | None = None  # the response's size in bytes when it was cut to the cap (models/textcap.py)
    replaced: int = 0  # characters replaced by U+FFFD (lone surrogates)


@runtime_checkable
class ChatClient(Protocol):
    """A chat model. `name` is the full `provider/model` name it was opened with."""

    name: str

    async def complete(self, request: ChatRequest) -> ChatResult: ...

    async def aclose(self) -> None: ...


def msgs(*pairs: tuple[Role, str]) -> tuple[Message, ...]:
    """Shorthand to build a message tuple: msgs(("system", s), ("user", u))."""
    return tuple(Message(role=r, content=c) for r, c in pairs)
