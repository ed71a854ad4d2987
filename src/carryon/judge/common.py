"""What the three judges share: the verdict record, JSON extraction (the final verdict, not the first) and the
ask-parse-retry-once loop that turns unparseable output into an unscored verdict with a reason."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from carryon.calls import Caller
from carryon.core.chat import PROVIDER_REFUSAL, ChatClient, ChatRequest, Message, msgs
from carryon.judge.prompts import Prompt

T = TypeVar("T", bound=BaseModel)

STRICTER = "\nYour previous answer could not be parsed. Reply with ONLY the JSON object, nothing else."
CONTEXT_CHARS = 400
SHARED_END = "</response>\n"  # where the block every task template starts with ends (judge/prompts)
REASON_CHARS = 60  # asked of schema-constrained judges: a short rationale keeps local judging fast
BRIEF_PROVIDERS = ("local/",)
"""Judges that answer decision-only: their reply is cut right after the verdict's decision (the first key of the
JSON object, which the grammar makes them write first), and the reason is not generated. Greedy decoding makes the
decision the same as in the full reply; only the reason's ~20 tokens are saved — at ~14 tokens/s on 2 cores, most
of a local judge call (docs/judges.md). API judges still write their reasons."""


@dataclass
class Verdict:
    """One judgement of one response: a score in [0, 1] or None (unscored, with a reason)."""

    score: float | None
    value: dict[str, Any] = field(default_factory=dict)
    unscored_reason: str | None = None
    raw: str = ""


def json_objects(text: str) -> list[Any]:
    """Every top-level JSON object embedded in `text`, in order. Raw control characters inside strings are accepted
    (`strict=False`): llama.cpp's JSON grammar lets a model put a bare newline in a "reason", which strict JSON
    rejects — it made 2 of 30 judgements of the bundled-model demo unscored."""
    decoder = json.JSONDecoder(strict=False)
    found, pos = [], 0
    while (start := text.find("{", pos)) != -1:
        try:
            obj, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            pos = start + 1
            continue
        found.append(obj)
        pos = end
    return found


def parse_final(text: str, model: type[T]) -> T:
    """The last JSON object in `text` that validates as `model` (a judge's final verdict wins over a draft)."""
    errors: list[str] = []
    for obj in reversed(json_objects(text)):
        try:
            return model.model_validate(obj)
        except ValidationError as error:
            errors.append(error.errors()[0]["msg"])
    raise ValueError(errors[0] if errors else "no JSON object in output")


_PAIR = re.compile(r'"([A-Za-z_]+)"\s*:\s*(true|false|"(?:[^"\\\n]|\\.)*")')


def parse_brief(text: str, model: type[T]) -> T:
    """As `parse_final`, and also a reply cut off after its decision (`{"met": true` or `{"type": "redirection"`):
    the key-value pairs complete so far, validated as `model` (whose other fields must have defaults)."""
    try:
        return parse_final(text, model)
    except ValueError as error:
        start = text.rfind("{")
        pairs = {k: json.loads(v) for k, v in _PAIR.findall(text[start:])} if start != -1 else {}
        if not pairs:
            raise error from None
        try:
            return model.model_validate(pairs)
        except ValidationError as invalid:
            raise ValueError(invalid.errors()[0]["msg"]) from None


def is_brief(client: ChatClient) -> bool:
    return client.name.startswith(BRIEF_PROVIDERS)


def render_context(history: list[Message]) -> str:
    """What the judged response answers: the original request and, later in a conversation, the latest user message
    (each clipped). Earlier assistant replies are left out: every judgement is about this response alone, and a short
    prefix keeps local judging fast."""
    users = [m.content for m in history if m.role == "user"]
    picked = users[:1] + users[-1:] if len(users) > 1 else users
    labels = ["[original request]", "[latest user message]"]
    lines = [f"{label} {text if len(text) <= CONTEXT_CHARS else text[:CONTEXT_CHARS] + ' […]'}"
             for label, text in zip(labels, picked)]  # fmt: skip
    return "\n".join(lines) or "(none)"


@functools.cache
def request_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema sent to schema-capable servers: the parse model's, with rationales capped in length.
    Built once per model (treat the result as read-only)."""
    schema = model.model_json_schema()

    def cap(node: Any) -> None:
        if isinstance(node, dict):
            if "reason" in node.get("properties", {}):
                node["properties"]["reason"]["maxLength"] = REASON_CHARS
            for value in node.values():
                cap(value)
        elif isinstance(node, list):
            for value in node:
                cap(value)

    cap(schema)
    return schema


async def ask(
    caller: Caller,
    client: ChatClient,
    prompt: Prompt,
    user: str,
    model: type[T],
    *,
    max_tokens: int,
    check: Callable[[T], None] | None = None,
    brief_tokens: int | None = None,
) -> tuple[T | None, str, str | None]:
    """Ask, parse; on failure ask once more with a stricter instruction. Returns (parsed or None, raw, reason).

    `brief_tokens`: for a judge that answers decision-only (`is_brief`), the first try stops after that many
    tokens — enough for the decision, not the reason; the stricter retry gets `max_tokens`."""
    raws: list[str] = []
    reason = None
    # The conversation + response block every judgement of this response repeats: a prompt-cache prefix.
    shared = user.rfind(SHARED_END)
    shared = shared + len(SHARED_END) if shared >= 0 else 0
    brief = brief_tokens is not None and is_brief(client)
    for attempt in range(2):
        system = prompt.system + (STRICTER if attempt else "")
        request = ChatRequest(
            messages=msgs(("system", system), ("user", user)),
            max_tokens=brief_tokens if brief and not attempt and brief_tokens else max_tokens,
            temperature=0.0,
            json_schema=request_schema(model),
            cache_prefix=True,
            cache_shared_chars=shared,
        )
        result = await caller.call("judge", client, request)
        raws.append(result.text)
        if result.finish_reason == PROVIDER_REFUSAL:  # asking again gets the same filter
            return None, "\n---retry---\n".join(raws), "the judge's provider refused to answer (content filter)"
        try:
            parsed = parse_brief(result.text, model) if brief else parse_final(result.text, model)
            if check:
                check(parsed)
            return parsed, "\n---retry---\n".join(raws), None
        except ValueError as error:
            reason = f"unparseable judge output: {error}"
    return None, "\n---retry---\n".join(raws), reason
