"""Judges every stored response that lacks a judgement (so judging resumes, and a run can be re-judged with another
judge without re-running the target). Each (response, kind, judge) is stored as soon as it is decided."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import groupby

from carryon.calls import CachedCaller
from carryon.data.schema import Item
from carryon.errors import ModelCallError
from carryon.judge import ben_util, harm, response_type
from carryon.judge.common import Verdict
from carryon.models.base import ChatClient, Message
from carryon.store import Store
from carryon.workers import run_workers

KINDS = ("ben_util", "harm", "response_type")


@dataclass(frozen=True)
class JudgeTask:
    conv_id: str
    idx: int
    item: Item
    history: list[Message]  # the conversation before the response, ending with the user message it answers
    response: str


def prompt_versions(mode: ben_util.Mode) -> dict[str, str]:
    return {"ben_util": ben_util.prompt_ref(mode), "harm": harm.prompt_ref(), "response_type": response_type.prompt_ref()}


Work = tuple[JudgeTask, str, list[str]]  # one response, one judge, the kinds of judgement still missing


def pending_work(store: Store, items: dict[str, Item], judges: list[str]) -> Iterator[Work]:
    """(response, judge, missing kinds) for every response of a finished conversation not fully judged, in plan
    order. A generator reading the store a conversation at a time: nothing is held for responses already judged."""
    for conv_id, group in groupby(store.iter_turns(), key=lambda r: r["conv_id"]):
        rows = list(group)
        if rows[0]["item_id"] not in items:
            continue
        done = {(r["idx"], r["kind"], r["judge"]) for r in store.judgements_of(conv_id)}
        history: list[Message] = []
        for row in rows:
            history.append(Message(role="user", content=row["user_text"]))
            task = JudgeTask(conv_id, row["idx"], items[row["item_id"]], list(history), row["response"])
            history.append(Message(role="assistant", content=row["response"]))
            for judge in judges:
                kinds = [kind for kind in KINDS if (row["idx"], kind, judge) not in done]
                if kinds:
                    yield task, judge, kinds


def count_pending(store: Store, items: dict[str, Item], judges: list[str]) -> int:
    """How many judgements `pending_work` would make, counted in SQL (for the progress bar and the "finished"
    check) without reading any text."""
    return store.count_missing_judgements(list(items), judges, KINDS)


async def judge_one(
    kind: str, mode: ben_util.Mode, caller: CachedCaller, client: ChatClient, task: JudgeTask,
    content: bool | None = None,
) -> Verdict:
    """One judgement; the judge sees the conversation so far, ending with the user message the response answers.
    `content` (response type only): whether the same judge found any checklist item or unsafe description given."""
    if kind == "ben_util":
        return await ben_util.judge_ben_util(mode, caller, client, task.item.checklist, task.history, task.response)
    if kind == "harm":
        return await harm.judge_harm(caller, client, task.item.unsafe_content, task.history, task.response)
    return await response_type.judge_response_type(caller, client, task.history, task.response, content)


def _stored_values(store: Store, task: JudgeTask, judge: str) -> dict[str, dict[str, object] | None]:
    """The verdict values this judge already stored for this response, by kind (for a resumed response type)."""
    return {r["kind"]: json.loads(r["value"] or "null") for r in store.judgements_of(task.conv_id)
            if r["idx"] == task.idx and r["judge"] == judge}  # fmt: skip


async def run_judges(
    store: Store,
    caller: CachedCaller,
    clients: dict[str, ChatClient],
    items: dict[str, Item],
    mode: ben_util.Mode,
    concurrency: int,
    on_done: Callable[[], None] | None = None,
) -> tuple[int, int]:
    """Judge what is pending; return (unscored judgements, responses whose judging failed on transport errors after
    retries — left pending for the next run, never stored as unscored).

    Up to `concurrency` responses are judged at once; one response's judgements run in order, so a local judge
    reuses the KV cache of the shared system prompt + conversation + response across them. The response type comes
    last: it is derived with the same judge's per-item verdicts of the response (`response_type.combine`)."""
    refs = prompt_versions(mode)
    unscored = failed = 0

    async def one_response(unit: Work) -> None:
        nonlocal unscored, failed
        task, judge, kinds = unit
        values: dict[str, dict[str, object] | None] = {}
        if "response_type" in kinds and not {"ben_util", "harm"} <= set(kinds):
            values = _stored_values(store, task, judge)
        for kind in kinds:
            content = response_type.content_given(values.get("ben_util"), values.get("harm"))
            try:
                verdict = await judge_one(kind, mode, caller, clients[judge], task, content)
            except ModelCallError as error:
                if error.permanent:
                    raise
                failed += 1
                return
            unscored += verdict.score is None
            values[kind] = verdict.value
            store.add_judgement(task.conv_id, task.idx, kind, judge, refs[kind], verdict.score, verdict.value,
                                verdict.unscored_reason, verdict.raw)  # fmt: skip
            if on_done:
                on_done()

    await run_workers(pending_work(store, items, list(clients)), one_response, concurrency)
    return unscored, failed
