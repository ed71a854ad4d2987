"""Judges: final-verdict parsing, unscored-with-reason on bad output, and prompt versioning."""

from __future__ import annotations

import asyncio
import hashlib
import json
from importlib import resources
from pathlib import Path

import pytest

from carryon.calls import CachedCaller
from carryon.data.load import load_items
from carryon.judge.ben_util import judge_ben_util
from carryon.judge.items import ItemVerdict
from carryon.judge.common import Verdict, parse_final
from carryon.judge.harm import judge_harm
from carryon.judge.prompts import SYSTEM, load_prompt, prompt_files, read_prompt_file
from carryon.judge.response_type import judge_response_type
from carryon.core.chat import Message
from carryon.store import Store
from carryon.testing.models import REFUSAL, InProcessClient, full_answer, partial_answer

ITEM = load_items(limit=1)[0]
HISTORY = [Message(role="user", content=ITEM.query)]


def test_parse_final_takes_the_last_valid_verdict() -> None:
    text = 'Draft: {"met": true, "reason": "x"} ... on reflection: {"met": false, "reason": "y"}'
    assert parse_final(text, ItemVerdict).met is False
    assert parse_final('{"met": true} trailing {"other": 1}', ItemVerdict).met is True
    # a bare newline inside a string, as llama.cpp's grammar allows (seen in the bundled-model demo)
    assert parse_final('{"met": true, "reason": "explains how to\n" }', ItemVerdict).reason == "explains how to\n"
    with pytest.raises(ValueError):
        parse_final("no json here", ItemVerdict)


def _judge(tmp_path: Path, judge: str, kind: str, mode: str = "per-item",
           response: str | None = None) -> tuple[Verdict, int]:  # fmt: skip
    response = response if response is not None else partial_answer(ITEM, 2)
    with Store(tmp_path) as store:
        caller = CachedCaller(store)
        client = InProcessClient(judge)
        if kind == "ben_util":
            coro = judge_ben_util(mode, caller, client, ITEM.checklist, HISTORY, response)  # type: ignore[arg-type]
        elif kind == "harm":
            coro = judge_harm(caller, client, ITEM.unsafe_content, HISTORY, response)
        else:
            coro = judge_response_type(caller, client, HISTORY, response)
        return asyncio.run(coro), caller.made


@pytest.mark.parametrize("mode", ["per-item", "batched"])
def test_ben_util_scores_share_of_items_met(tmp_path: Path, mode: str) -> None:
    verdict, _ = _judge(tmp_path, "judge", "ben_util", mode)
    assert verdict.score == pytest.approx(2 / len(ITEM.checklist))
    assert [v["met"] for v in verdict.value["items"].values()] == [True, True] + [False] * (len(ITEM.checklist) - 2)
    full, _ = _judge(tmp_path, "judge", "ben_util", mode, full_answer(ITEM))
    assert full.score == 1.0


def test_harm_is_the_share_of_unsafe_content_handed_over(tmp_path: Path) -> None:
    refusal, _ = _judge(tmp_path, "judge", "harm", response=REFUSAL)
    assert refusal.score == 0.0 and set(refusal.value["items"]) == {f"u{i}" for i in range(1, len(ITEM.unsafe_content) + 1)}
    one, _ = _judge(tmp_path, "judge", "harm", response=f"{full_answer(ITEM)}\nUNSAFE DETAIL: {ITEM.unsafe_content[0]}")
    assert one.score == pytest.approx(1 / len(ITEM.unsafe_content)) and one.value["items"]["u1"]["met"] is True
    everything = "\n".join(f"UNSAFE DETAIL: {u}" for u in ITEM.unsafe_content)
    assert _judge(tmp_path, "judge", "harm", response=everything)[0].score == 1.0


@pytest.mark.parametrize("kind", ["ben_util", "harm", "response_type"])
def test_unparseable_output_is_unscored_with_reason_after_one_retry(tmp_path: Path, kind: str) -> None:
    verdict, made = _judge(tmp_path, "judge-broken", kind)
    assert verdict.score is None
    reason = verdict.unscored_reason or ""
    assert "unparseable" in reason or "no verdict" in reason, reason
    calls_per_decision = 2  # the first try and one stricter retry
    decisions = {"ben_util": len(ITEM.checklist), "harm": len(ITEM.unsafe_content)}.get(kind, 1)
    assert made == calls_per_decision * decisions
    assert "---retry---" in verdict.raw


@pytest.mark.parametrize("mode", ["per-item", "batched"])
def test_valid_json_with_a_missing_item_is_unscored(tmp_path: Path, mode: str) -> None:
    verdict, _ = _judge(tmp_path, "judge-missing", "ben_util", mode)
    assert verdict.score is None
    ids = [f"c{i}" for i in range(1, len(ITEM.checklist) + 1)]
    if mode == "per-item":  # every question answered without `met`: each item undecided, all named
        assert verdict.unscored_reason == f"no verdict for item(s) {', '.join(ids)}"
        assert all(v["met"] is None for v in verdict.value["items"].values())
    else:  # one answer for all items, the last one missing: named as the problem
        assert verdict.unscored_reason == f"unparseable judge output: missing checklist item(s) {ids[-1]}"


def test_prompt_versions_are_locked() -> None:
    """Editing a prompt without bumping its `version:` line fails here; a bump needs a new lock entry."""
    lock = json.loads(resources.files("carryon.judge.prompts").joinpath("versions.lock.json").read_text())
    assert set(prompt_files()) == set(lock)
    for name in prompt_files():
        prompt = read_prompt_file(name)
        assert prompt.version in lock[name], f"{name}: version {prompt.version} has no entry in versions.lock.json"
        assert lock[name][prompt.version] == prompt.body_sha256, f"{name} changed without a version bump"


def test_task_prompts_share_the_system_prompt_and_the_response_block() -> None:
    """The shared prefix is what lets a local judge reuse its KV cache across one response's judgements."""
    tasks = [load_prompt(n) for n in prompt_files() if n != SYSTEM]
    assert len(tasks) == 6 and len({t.system for t in tasks}) == 1
    # the tasks on one response share the response block; the simulator audit's tasks on one user message theirs
    response_tasks = [t for t in tasks if t.name not in ("user_move", "user_reveals")]
    heads = {t.user.split("</response>")[0] for t in response_tasks}
    assert len(heads) == 1 and heads.pop().startswith("<conversation_so_far>")
    audit_heads = {t.user.split("</user_message>")[0] for t in tasks if t.name in ("user_move", "user_reveals")}
    assert len(audit_heads) == 1 and audit_heads.pop().startswith("<original_request>")
    assert all(t.ref.endswith(f"+{SYSTEM}@{read_prompt_file(SYSTEM).version}") for t in tasks)


def test_prompt_hash_detects_an_edit(tmp_path: Path) -> None:
    text = resources.files("carryon.judge.prompts").joinpath("response_type.txt").read_text()
    head, body = text.split("\n", 1)
    assert hashlib.sha256(body.encode()).hexdigest() == read_prompt_file("response_type").body_sha256
    assert hashlib.sha256((body + " ").encode()).hexdigest() != read_prompt_file("response_type").body_sha256


def test_validation_samples_are_proportional_or_balanced() -> None:
    from carryon.judge.validate import Row, stratified_sample

    rows = [Row(f"r{i}", [], "", "refusal" if i % 10 else "compliance", {}) for i in range(200)]  # 20 compliance
    proportional = stratified_sample(rows, 40)
    assert sum(r.label == "compliance" for r in proportional) == 4
    balanced = stratified_sample(rows, 40, balanced=True)
    assert len(balanced) == 40 and sum(r.label == "compliance" for r in balanced) == 20
    assert stratified_sample(rows, 40, balanced=True) == balanced  # seeded
