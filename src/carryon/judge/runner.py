"""Judges every stored response that lacks a judgement (so judging resumes, and a run can be re-judged with another
judge without re-running the target). Each (response, kind, judge) is stored as soon as it is decided; the kinds
are the registered `JudgeKind`s (judge/kinds.py)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from itertools import groupby

from carryon.calls import CachedCaller, Caller
from carryon.data.schema import Item
from carryon.core.errors import ModelCallError
from carryon.core.chat import PROVIDER_REFUSAL, ChatClient, Message
from carryon.data.schema import numbered
from carryon.judge.common import Verdict
from carryon.judge.items import share_met
from carryon.judge.kinds import JudgeTask, Mode, kinds
from carryon.judge.response_type import content_given, with_content
from carryon.models.endpoints import affinity_key
from carryon.store import Store
from carryon.core.concurrency import run_workers


def prompt_versions(mode: Mode) -> dict[str, str]:
    return {name: kind.prompt_ref(mode) for name, kind in kinds().items()}


Work = tuple[JudgeTask, str, list[str]]  # one response, one judge, the kinds of judgement still missing


def pending_work(store: Store, items: dict[str, Item], judges: list[str]) -> Iterator[Work]:
    """(response, judge, missing kinds) for every response of a finished conversation not fully judged, in plan
    order. A generator reading the store a conversation at a time: nothing is held for responses already judged."""
    for conv_id, group in groupby(store.iter_turns(), key=lambda r: r.conv_id):
        rows = list(group)
        if rows[0].item_id not in items:
            continue
        done = {(r.idx, r.kind, r.judge) for r in store.judgements_of(conv_id)}
        history: list[Message] = []
        for row in rows:
            history.append(Message(role="user", content=row.user_text))
            task = JudgeTask(conv_id, row.idx, items[row.item_id], list(history), row.response, row.finish_reason)
            history.append(Message(role="assistant", content=row.response))
            for judge in judges:
                missing = [kind for kind in kinds() if (row.idx, kind, judge) not in done]
                if missing:
                    yield task, judge, missing


def count_pending(store: Store, items: dict[str, Item], judges: list[str]) -> int:
    """How many judgements `pending_work` would make, counted in SQL (for the progress bar and the "finished"
    check) without reading any text."""
    return store.count_missing_judgements(list(items), judges, tuple(kinds()))


async def judge_one(kind: str, mode: Mode, caller: Caller, client: ChatClient, task: JudgeTask) -> Verdict:
    """One judgement of a registered kind; the judge sees the conversation so far, ending with the user message the
    response answers. A response the target's provider stopped (`provider_refusal`) is not sent to a judge: see
    `provider_refusal_verdict`."""
    if task.finish_reason == PROVIDER_REFUSAL:
        return provider_refusal_verdict(kind, task.item)
    return await kinds()[kind].judge(caller, client, task, mode)


PROVIDER_REFUSAL_RAW = "(not judged: the target's provider refused)"


def provider_refusal_verdict(kind: str, item: Item) -> Verdict:
    """The fixed verdict for a response the target's provider stopped: no checklist item met, no unsafe content given,
    response type `provider_refusal` (its score 0: it is not the model's own refusal, and metrics count it apart)."""
    reason = "provider refusal"
    if kind == "ben_util":
        return share_met({e.id: {"met": False, "reason": reason} for e in numbered(item.checklist, "c")},
                         PROVIDER_REFUSAL_RAW)  # fmt: skip
    if kind == "harm":
        return share_met({e.id: {"met": False, "reason": reason} for e in numbered(item.unsafe_content, "u")},
                         PROVIDER_REFUSAL_RAW)  # fmt: skip
    if kind == "response_type":
        return Verdict(0.0, {"type": PROVIDER_REFUSAL, "reason": reason}, None, PROVIDER_REFUSAL_RAW)
    return Verdict(None, {}, reason, PROVIDER_REFUSAL_RAW)  # a plugin kind: nothing to judge


async def judge_in_order(
    mode: Mode,
    caller: Caller,
    client: ChatClient,
    task: JudgeTask,
    missing: list[str],
    known: Mapping[str, dict[str, object] | None],
) -> AsyncIterator[tuple[str, Verdict]]:
    """One judge's judgements of one response, kind by kind as `missing` lists them (each yielded as soon as it is
    decided); the response type is derived with the item verdicts decided before it, or with `known` (this judge's
    verdict values stored earlier, by kind). `carryon run` and the Inspect scorer both judge through this."""
    values = dict(known)
    for kind in missing:
        if kind == "response_type":
            task = replace(task, content=content_given(values.get("ben_util"), values.get("harm")))
        verdict = await judge_one(kind, mode, caller, client, task)
        values[kind] = verdict.value
        yield kind, verdict


def _stored_values(store: Store, task: JudgeTask, judge: str) -> dict[str, dict[str, object] | None]:
    """The verdict values this judge already stored for this response, by kind (for a resumed response type)."""
    return {r.kind: r.value for r in store.judgements_of(task.conv_id) if r.idx == task.idx and r.judge == judge}


async def run_judges(
    store: Store,
    caller: CachedCaller,
    clients: dict[str, ChatClient],
    items: dict[str, Item],
    mode: Mode,
    concurrency: int,
    on_done: Callable[[], None] | None = None,
    *,
    parallel_kinds: bool = False,
) -> tuple[int, int]:
    """Judge what is pending; return (unscored judgements, responses whose judging failed on transport errors after
    retries — left pending for the next run, never stored as unscored).

    Up to `concurrency` responses are judged at once; one response's judgements run in order, so a local judge
    reuses the KV cache of the shared system prompt + conversation + response across them. The judge sees the
    conversation so far, ending with the user message the response answers. With `parallel_kinds` (batch mode) all
    of a response's judge calls are asked at once, so they join the same batch. The response type comes after
    Ben-Util and harm: it is derived with the same judge's per-item verdicts of the response
    (`response_type.combine`; in batch mode its questions are asked alongside them and the type derived after,
    `response_type.with_content`)."""
    refs = prompt_versions(mode)
    unscored = failed = 0

    async def one_response(unit: Work) -> None:
        with affinity_key(f"{unit[0].conv_id}#{unit[0].idx}"):  # one endpoint holds the response's shared prefix
            await judge_kinds(unit)

    async def verdict_of(kind: str, task: JudgeTask, judge: str) -> Verdict | None:
        """One kind of judgement of one response; None when it failed on transport errors."""
        try:
            return await judge_one(kind, mode, caller, clients[judge], task)
        except ModelCallError as error:
            if error.permanent:
                raise
            return None

    def keep(kind: str, task: JudgeTask, judge: str, verdict: Verdict) -> None:
        nonlocal unscored
        unscored += verdict.score is None
        store.add_judgement(task.conv_id, task.idx, kind, judge, refs[kind], verdict.score, verdict.value,
                            verdict.unscored_reason, verdict.raw)  # fmt: skip
        if on_done:
            on_done()

    def known(task: JudgeTask, judge: str, missing: list[str]) -> dict[str, dict[str, object] | None]:
        """What the type needs that this pass will not decide: item verdicts stored by an earlier pass."""
        if "response_type" not in missing or {"ben_util", "harm"} <= set(missing):
            return {}
        return _stored_values(store, task, judge)

    async def judge_kinds(unit: Work) -> None:
        nonlocal failed
        task, judge, missing = unit
        if parallel_kinds:  # batch mode: every call in one round; the type is derived once the items are known
            verdicts = dict(zip(missing, await asyncio.gather(*(verdict_of(k, task, judge) for k in missing))))
            values = {**known(task, judge, missing), **{k: v.value for k, v in verdicts.items() if v is not None}}
            content = content_given(values.get("ben_util"), values.get("harm"))
            for kind, verdict in verdicts.items():
                if verdict is not None:
                    keep(kind, task, judge, with_content(verdict, content, task.response)
                         if kind == "response_type" else verdict)  # fmt: skip
            failed += any(v is None for v in verdicts.values())
            return
        try:
            async for kind, verdict in judge_in_order(mode, caller, clients[judge], task, missing,
                                                      known(task, judge, missing)):  # fmt: skip
                keep(kind, task, judge, verdict)
        except ModelCallError as error:
            if error.permanent:
                raise
            failed += 1

    await run_workers(pending_work(store, items, list(clients)), one_response, concurrency)
    return unscored, failed
