"""Kinds of judgement as plugins: each is a `JudgeKind` registered with `@judge_kind`, and every part of CarryOn
that deals with judgements iterates over the registered kinds — the runner (what to judge, prompt versions), the
panel merge and agreement, the run's table, the summary's unscored counts and the exports. Adding a kind is one new
module (listed in `BUILTIN`, or exposed by a package in the entry-point group `carryon.judge_kinds`).

CarryOn's own kinds: `ben_util` (judge/ben_util.py), `harm` (judge/harm.py), `response_type`
(judge/response_type.py), in that order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from carryon.core.plugins import load_plugins

if TYPE_CHECKING:
    from carryon.calls import Caller
    from carryon.data.schema import Item
    from carryon.judge.common import Verdict
    from carryon.core.chat import ChatClient, Message
    from carryon.store import JudgementRow

ENTRY_POINT_GROUP = "carryon.judge_kinds"
BUILTIN = ("carryon.judge.ben_util", "carryon.judge.harm", "carryon.judge.response_type")
Mode = Literal["per-item", "batched"]


@dataclass(frozen=True)
class JudgeTask:
    conv_id: str
    idx: int
    item: Item
    history: list[Message]  # the conversation before the response, ending with the user message it answers
    response: str
    finish_reason: str = "stop"  # `provider_refusal`: not sent to a judge (judge/runner.py: judge_one)
    content: bool | None = None
    """response type only: whether the same judge found any checklist item or unsafe-content description given
    (`response_type.content_given`; None unknown). Set by the runner from the judge's Ben-Util and harm verdicts."""


@dataclass(frozen=True)
class Merged:
    """A panel's (or one judge's) merged judgement of one response, of one kind."""

    score: float | None
    decisions: dict[str, bool | None] = field(default_factory=dict)
    """per checklist / unsafe-content item, for kinds decided item by item"""
    label: str | None = None
    """for kinds that classify (response type)"""
    unscored: str | None = None
    """why `score` is None"""


class JudgeKind(Protocol):
    name: str
    """the store's `kind`, the key of metrics.json `unscored` and of `judge_prompt_versions`"""
    agreement: str
    """the key of its Krippendorff's α in metrics.json `judge_agreement`"""

    def prompt_ref(self, mode: Mode) -> str: ...

    async def judge(self, caller: Caller, client: ChatClient, task: JudgeTask, mode: Mode) -> Verdict: ...

    def merge(self, rows: list[JudgementRow]) -> Merged:
        """The judgements of one response by every judge of the panel (majority; a tie is unscored)."""
        ...

    def units(self, values: list[Any]) -> list[list[Hashable | None]]:
        """Agreement units from each judge's stored value for one response (None where a judge has none)."""
        ...


K = TypeVar("K", bound=type)
_registered: dict[str, JudgeKind] = {}


def judge_kind(cls: K) -> K:
    """Register a JudgeKind class (instantiated without arguments) under its `name`."""
    instance: JudgeKind = cls()
    _registered[instance.name] = instance
    return cls


@cache
def kinds() -> dict[str, JudgeKind]:
    """Every registered kind, CarryOn's own first, by name."""
    load_plugins(ENTRY_POINT_GROUP, BUILTIN, "judge kind")

    def order(name: str) -> int:
        module = type(_registered[name]).__module__
        return BUILTIN.index(module) if module in BUILTIN else len(BUILTIN)

    return {name: _registered[name] for name in sorted(_registered, key=order)}


def majority(values: list[Any]) -> Any:
    """The most common decided value; None on a tie or when nothing was decided."""
    decided = [v for v in values if v is not None]
    if not decided:
        return None
    counts = Counter(decided).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return None
    return counts[0][0]


def _item_order(iid: str) -> tuple[int, str]:
    digits = iid[1:]
    return (int(digits), iid) if digits.isdigit() else (10**9, iid)


def merge_items(rows: list[JudgementRow], tie: str) -> Merged:
    """Per-item verdicts of a panel (majority per item) → the share met, or why it is unscored."""
    verdicts = [(row.value or {}).get("items", {}) for row in rows]
    ids = sorted({iid for items in verdicts for iid in items}, key=_item_order)
    met = {iid: majority([(items.get(iid) or {}).get("met") for items in verdicts]) for iid in ids}
    if ids and all(v is not None for v in met.values()):
        return Merged(sum(bool(v) for v in met.values()) / len(ids), met)
    reasons = [row.unscored_reason for row in rows if row.unscored_reason]
    return Merged(None, met, unscored=reasons[0] if reasons else tie)


def item_units(values: list[Any]) -> list[list[Hashable | None]]:
    """One unit per item any judge decided: each judge's `met` for it."""
    per_judge = [(value or {}).get("items", {}) for value in values]
    ids = sorted({iid for items in per_judge for iid in items})
    return [[(items.get(iid) or {}).get("met") for items in per_judge] for iid in ids]


JudgeFn = Callable[..., Any]
