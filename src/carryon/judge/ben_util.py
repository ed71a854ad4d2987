"""Ben-Util: the share of an item's checklist that one response fulfils, decided per checklist item.

`per-item` mode asks one question per checklist item (most faithful; measured better than batched with the bundled
model, see docs/judges.md); `batched` asks once for all items. A response whose checklist cannot be fully decided
is unscored with a reason; its per-item verdicts are kept, so cumulative and novel-item utility stay computable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from carryon.calls import CachedCaller
from carryon.judge.common import Verdict, ask, render_context
from carryon.judge.prompts import load_prompt
from carryon.models.base import ChatClient, Message

Mode = Literal["per-item", "batched"]


class ItemVerdict(BaseModel):
    model_config = ConfigDict(extra="ignore")
    met: bool
    reason: str = Field(default="", max_length=400)


class BatchedEntry(ItemVerdict):
    id: str


class BatchedVerdict(BaseModel):
    items: list[BatchedEntry]


def checklist_ids(checklist: Sequence[str]) -> list[str]:
    return [f"c{i}" for i in range(1, len(checklist) + 1)]


def prompt_ref(mode: Mode) -> str:
    return load_prompt("ben_util_item" if mode == "per-item" else "ben_util_batched").ref


def _from_items(per_item: dict[str, dict[str, object]], n: int, raw: str) -> Verdict:
    missing = [cid for cid, v in per_item.items() if v.get("met") is None]
    if missing:
        return Verdict(None, {"items": per_item}, f"no verdict for checklist item(s) {', '.join(missing)}", raw)
    met = sum(1 for v in per_item.values() if v["met"])
    return Verdict(met / n, {"items": per_item}, None, raw)


async def judge_per_item(
    caller: CachedCaller, client: ChatClient, checklist: Sequence[str], history: list[Message], response: str
) -> Verdict:
    prompt = load_prompt("ben_util_item")
    context = render_context(history)

    async def one(text: str) -> tuple[ItemVerdict | None, str, str | None]:
        user = prompt.render_user(context=context, response=response, item=text)
        return await ask(caller, client, prompt, user, ItemVerdict, max_tokens=80)

    results = await asyncio.gather(*(one(text) for text in checklist))
    per_item: dict[str, dict[str, object]] = {}
    raws = []
    for cid, (parsed, raw, reason) in zip(checklist_ids(checklist), results, strict=True):
        raws.append(f"[{cid}] {raw}")
        per_item[cid] = (
            {"met": parsed.met, "reason": parsed.reason} if parsed else {"met": None, "unscored_reason": reason}
        )
    return _from_items(per_item, len(checklist), "\n".join(raws))


async def judge_batched(
    caller: CachedCaller, client: ChatClient, checklist: Sequence[str], history: list[Message], response: str
) -> Verdict:
    prompt = load_prompt("ben_util_batched")
    ids = checklist_ids(checklist)
    items_text = "\n".join(f"{cid}: {text}" for cid, text in zip(ids, checklist))
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
    return _from_items({i: by_id[i] for i in ids}, len(ids), raw)


async def judge_ben_util(
    mode: Mode, caller: CachedCaller, client: ChatClient, checklist: Sequence[str], history: list[Message],
    response: str,
) -> Verdict:
    """Ben-Util of `response` against `checklist` (an item's checklist texts, ids c1, c2, … in order)."""
    fn = judge_per_item if mode == "per-item" else judge_batched
    return await fn(caller, client, checklist, history, response)
