"""The simulator audit: a judge reads every follow-up message the simulated user wrote and checks it against the
plan. Three verdicts per user message (stored in the run store's `audits` table, so the audit resumes):

- `user_move` — the move the message actually makes (task E: reveals_intent / pushback / disengage / rephrase /
  other), compared with the planned move's family (the four intent-revealing moves are one family, `intent`);
  score 1 if it matches;
- `user_reveals` — whether the message reveals a purpose, situation or intended use (task F); on a non-intent move
  (pushback, disengage, rephrase) a yes means the user told the model what the plan says it must not;
- `user_leak` — the Ben-Util question asked of the user's own text, per checklist item (`ben_util_item`): a user
  message that states the checklist makes the target look helpful for free. Score = share of items stated.

Role confusion and fallbacks need no judge: the LLM user's guard counts them as it writes (`turns.user_rejected`,
`turns.user_fallback`). The metrics (`metrics/simulator.py`) turn these into rates with CIs by item.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from itertools import groupby
from typing import Literal

from pydantic import BaseModel, ConfigDict

from carryon.calls import Caller
from carryon.core.chat import ChatClient, Message
from carryon.core.concurrency import run_workers
from carryon.core.errors import ModelCallError
from carryon.core.moves import Move
from carryon.data.schema import Item
from carryon.judge.common import CONTEXT_CHARS, Verdict, ask
from carryon.judge.items import PROMPT as ITEM_PROMPT
from carryon.judge.items import judge_items
from carryon.judge.prompts import load_prompt
from carryon.store import Store, TurnRow

AUDIT_KINDS = ("user_move", "user_reveals", "user_leak")
REPLY_CHARS = 600
"""The assistant reply the user message answers, clipped: enough to tell an echo or an answer from a follow-up."""
JudgedMove = Literal["reveals_intent", "pushback", "disengage", "rephrase", "other"]
FAMILY_OF_LABEL = {"reveals_intent": "intent", "pushback": "pushback", "disengage": "disengage",
                   "rephrase": "rephrase", "other": "other"}  # fmt: skip


class MoveVerdict(BaseModel):
    model_config = ConfigDict(extra="ignore")
    move: JudgedMove


class RevealVerdict(BaseModel):
    model_config = ConfigDict(extra="ignore")
    reveals: bool


@dataclass(frozen=True)
class AuditTask:
    conv_id: str
    idx: int
    item: Item
    planned: Move
    request: str  # the conversation's first user message
    reply: str  # the assistant reply this user message follows
    message: str  # the user message audited


def prompt_versions() -> dict[str, str]:
    return {"user_move": load_prompt("user_move").ref, "user_reveals": load_prompt("user_reveals").ref,
            "user_leak": load_prompt(ITEM_PROMPT).ref}  # fmt: skip


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " […]"


def _render(name: str, task: AuditTask) -> str:
    return load_prompt(name).render_user(request=_clip(task.request, CONTEXT_CHARS), reply=_clip(task.reply, REPLY_CHARS),
                                         message=task.message)  # fmt: skip


async def judge_user_move(caller: Caller, client: ChatClient, task: AuditTask) -> Verdict:
    prompt = load_prompt("user_move")
    parsed, raw, reason = await ask(caller, client, prompt, _render("user_move", task), MoveVerdict, max_tokens=30,
                                    brief_tokens=12)  # fmt: skip
    if parsed is None:
        return Verdict(None, {"planned": task.planned.value}, reason, raw)
    family = FAMILY_OF_LABEL[parsed.move]
    adheres = family == task.planned.family
    value = {"move": parsed.move, "family": family, "planned": task.planned.value, "adheres": adheres}
    return Verdict(float(adheres), value, None, raw)


async def judge_user_reveals(caller: Caller, client: ChatClient, task: AuditTask) -> Verdict:
    prompt = load_prompt("user_reveals")
    parsed, raw, reason = await ask(caller, client, prompt, _render("user_reveals", task), RevealVerdict,
                                    max_tokens=30, brief_tokens=6)  # fmt: skip
    if parsed is None:
        return Verdict(None, {}, reason, raw)
    return Verdict(float(parsed.reveals), {"reveals": parsed.reveals}, None, raw)


async def judge_user_leak(caller: Caller, client: ChatClient, task: AuditTask) -> Verdict:
    """The Ben-Util item question asked of the user's message, per checklist item."""
    return await judge_items(caller, client, task.item.checklist, "c", [Message(role="user", content=task.request)],
                             task.message)  # fmt: skip


JUDGES: dict[str, Callable[[Caller, ChatClient, AuditTask], Awaitable[Verdict]]] = {
    "user_move": judge_user_move, "user_reveals": judge_user_reveals, "user_leak": judge_user_leak,
}  # fmt: skip

Work = tuple[AuditTask, list[str]]


def pending_audits(store: Store, items: dict[str, Item], judge: str) -> Iterator[Work]:
    """(user message, audit kinds still missing) for every follow-up message of a finished conversation, in plan
    order; a generator reading the store a conversation at a time."""
    for conv_id, group in groupby(store.iter_turns(), key=lambda r: r.conv_id):
        rows: list[TurnRow] = list(group)
        if rows[0].item_id not in items:
            continue
        done = {(r.idx, r.kind) for r in store.audits_of(conv_id, judge)}
        item = items[rows[0].item_id]
        for before, row in zip(rows, rows[1:]):
            if row.move is None:
                continue
            kinds = [k for k in AUDIT_KINDS if (row.idx, k) not in done]
            if kinds:
                task = AuditTask(conv_id, row.idx, item, Move(row.move), rows[0].user_text, before.response,
                                 row.user_text)  # fmt: skip
                yield task, kinds


def count_pending_audits(store: Store, items: dict[str, Item], judge: str) -> int:
    return store.count_missing_audits(list(items), judge, AUDIT_KINDS)


async def run_audit(store: Store, caller: Caller, client: ChatClient, items: dict[str, Item],
                    concurrency: int, on_done: Callable[[], None] | None = None) -> tuple[int, int]:  # fmt: skip
    """Audit every user message not yet audited by `client`; return (unscored verdicts, messages whose audit failed
    on transport errors after retries — left pending for the next run). One message's verdicts run in order, so a
    local judge reuses the KV cache of their shared prefix."""
    refs = prompt_versions()
    store.set_meta("audit", {"judge": client.name, "prompt_versions": refs})
    unscored = failed = 0

    async def one(unit: Work) -> None:
        nonlocal unscored, failed
        task, kinds = unit
        for kind in kinds:
            try:
                verdict = await JUDGES[kind](caller, client, task)
            except ModelCallError as error:
                if error.permanent:
                    raise
                failed += 1
                return
            unscored += verdict.score is None
            store.add_audit(task.conv_id, task.idx, kind, client.name, refs[kind], verdict.score, verdict.value,
                            verdict.unscored_reason, verdict.raw)  # fmt: skip
            if on_done:
                on_done()

    await run_workers(pending_audits(store, items, client.name), one, concurrency)
    return unscored, failed

