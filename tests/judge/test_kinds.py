"""A kind of judgement is one module: registered with @judge_kind, it is judged, merged, counted and exported."""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import Any

import pytest

from carryon.calls import CachedCaller
from carryon.config import RunConfig
from carryon.judge import kinds as registry
from carryon.judge.common import Verdict
from carryon.judge.kinds import JudgeTask, Merged, Mode, judge_kind, majority
from carryon.core.chat import ChatClient
from carryon.pipeline import run
from carryon.store import JudgementRow


class Length:
    """A model-free kind: is the response longer than 80 characters?"""

    name = "length"
    agreement = "alpha_length"

    def prompt_ref(self, mode: Mode) -> str:
        return "length@1"

    async def judge(self, caller: CachedCaller, client: ChatClient, task: JudgeTask, mode: Mode) -> Verdict:
        long = len(task.response) > 80 if client.name == "testing/judge" else None
        return Verdict(None if long is None else float(long), {"long": long}, None if long is not None else "no",
                       "")  # fmt: skip

    def merge(self, rows: list[JudgementRow]) -> Merged:
        decided = majority([row.value.get("long") for row in rows])
        return Merged(None if decided is None else float(decided), unscored=None if decided is not None else "tie")

    def units(self, values: list[Any]) -> list[list[Hashable | None]]:
        return [[(value or {}).get("long") for value in values]]


@pytest.fixture
def length_kind() -> Iterator[None]:
    judge_kind(Length)
    registry.kinds.cache_clear()
    yield
    del registry._registered["length"]
    registry.kinds.cache_clear()


def test_a_registered_kind_is_judged_merged_counted_and_exported(length_kind: None, small_dataset: Path,
                                                                  tmp_path: Path) -> None:  # fmt: skip
    assert list(registry.kinds()) == ["ben_util", "harm", "response_type", "length"]
    run(RunConfig(target="testing/ideal", judge=["testing/judge", "testing/judge-broken"], dataset=str(small_dataset),
                  limit=1, sequences=2, out=tmp_path))  # fmt: skip
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    model = metrics["models"]["testing/ideal"]
    assert metrics["judge_prompt_versions"]["length"] == "length@1"
    assert model["unscored"]["length"] == 0  # one judge decided, the other abstained: no tie
    assert "alpha_length" in model["judge_agreement"]
    record = json.loads((tmp_path / "conversations.jsonl").read_text().splitlines()[0])
    turn = record["turns"][0]
    assert turn["judgements"]["testing/judge"]["length"]["value"] == {"long": True}
    assert turn["judgements"]["testing/judge-broken"]["length"]["unscored"] == "no"
