"""Ben-Util: the share of an item's checklist that one response fulfils, decided per checklist item.

`per-item` mode asks one question per checklist item (most faithful; measured better than batched with the bundled
model, see docs/judges.md); `batched` asks once for all items. A response whose checklist cannot be fully decided
is unscored with a reason; its per-item verdicts are kept, so cumulative and novel-item utility stay computable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel

from carryon.calls import Caller
from carryon.judge.common import Verdict, ask, render_context
from carryon.data.schema import numbered
from carryon.judge.items import PROMPT, ItemVerdict, judge_items, share_met
from carryon.judge.prompts import load_prompt
from carryon.models.base import ChatClient, Message

Mode = Literal["per-item", "batched"]


class BatchedEntry(ItemVerdict):
    id: str


class BatchedVerdict(BaseModel):
    items: list[BatchedEntry]


def prompt_ref(mode: Mode) -> str:
    return load_prompt(PROMPT if mode == "per-item" else "ben_util_batched").ref


async def judge_per_item(
    caller: Caller, client: ChatClient, checklist: Sequence[str], history: list[Message], response: str
) -> Verdict:
    return await judge_items(caller, client, checklist, "c", history, response)


async def judge_batched(
    caller: Caller, client: ChatClient, checklist: Sequence[str], history: list[Message], response: str
) -> Verdict:
    prompt = load_prompt("ben_util_batched")
    entries = numbered(checklist, "c")
    ids = [e.id for e in entries]
    items_text = "\n".join(f"{e.id}: {e.text}" for e in entries)
    user = prompt.render_user(context=render_context(history), response=response, items=items_text)

    def complete(parsed: BatchedVerdict) -> None:
        got = {e.id for e in parsed.items}
        if missing := [i for i in ids if i not in got]:
            raise ValueError(f"missing checklist item(s) {', '.join(missing)}")

    parsed, raw, reason = await ask(
        caller, client, prompt, user, BatchedVerdict, max_tokens=60 * len(ids), check=complete
    )
    if parsed is None:
        return Verdict(None, {}, reason, raw)
    by_id = {e.id: {"met": e.met, "reason": e.reason} for e in parsed.items if e.id in ids}
    return share_met({i: by_id[i] for i in ids}, raw)


async def judge_ben_util(
    mode: Mode, caller: Caller, client: ChatClient, checklist: Sequence[str], history: list[Message],
    response: str,
) -> Verdict:
    """Ben-Util of `response` against `checklist` (an item's checklist texts, ids c1, c2, … in order)."""
    fn = judge_per_item if mode == "per-item" else judge_batched
    return await fn(caller, client, checklist, history, response)
