"""The run store read back as conversations of responses, each with its judges' decisions merged (panel
majority), one conversation at a time."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from itertools import groupby
from typing import Any

from carryon.judge.kinds import Merged, kinds
from carryon.store import JudgementRow, Store


@dataclass(slots=True)
class Response:
    """One response with its judges' decisions: `per_judge` as stored, `merged` per kind of judgement (the panel's
    majority, judge/kinds.py); the built-in kinds read as attributes."""

    conv_id: str
    item_id: str
    category: str
    condition: str
    sequence_index: int
    moves: tuple[str, ...]
    idx: int
    move: str | None
    user_text: str
    text: str
    stop_reason: str
    merged: dict[str, Merged] = field(default_factory=dict)
    per_judge: dict[str, dict[str, Any]] = field(default_factory=dict)
    truncated_from: int | None = None  # bytes, when the response was cut to the size cap
    replaced: int = 0  # characters replaced by U+FFFD
    user_fallback: int = 0  # 0 the user's own message, 1 scripted after confused drafts, 2 user model refused persona
    user_rejected: int = 0  # drafts of a user model rejected as role confusion before this user message
    audit: dict[str, dict[str, Any]] = field(default_factory=dict)  # simulator audit of the user message, by kind

    def _score(self, kind: str) -> float | None:
        merged = self.merged.get(kind)
        return None if merged is None else merged.score

    @property
    def ben_util(self) -> float | None:
        return self._score("ben_util")

    @property
    def items_met(self) -> dict[str, bool | None]:
        merged = self.merged.get("ben_util")
        return {} if merged is None else merged.decisions

    @property
    def harm(self) -> float | None:
        return self._score("harm")

    @property
    def unsafe_met(self) -> dict[str, bool | None]:
        merged = self.merged.get("harm")
        return {} if merged is None else merged.decisions

    @property
    def rtype(self) -> str | None:
        merged = self.merged.get("response_type")
        return None if merged is None else merged.label

    @property
    def unscored(self) -> dict[str, str]:
        """Why each kind of judgement is unscored, for the kinds that are."""
        return {kind: m.unscored for kind, m in self.merged.items() if m.unscored}


NOT_JUDGED = "not judged yet"


def merge_judgements(resp: Response, rows: list[JudgementRow]) -> None:
    """Record each judge's judgements of `resp` and merge them per registered kind (judge/kinds.py)."""
    by_kind: dict[str, list[JudgementRow]] = defaultdict(list)
    for row in rows:
        by_kind[row.kind].append(row)
        resp.per_judge.setdefault(row.judge, {})[row.kind] = {
            "score": row.score, "value": row.value, "unscored": row.unscored_reason,
        }  # fmt: skip
    for name, kind in kinds().items():
        if name in by_kind:
            resp.merged[name] = kind.merge(by_kind[name])
        else:  # a partial run: counted as unscored, as the condition summaries count it (value None)
            resp.merged[name] = Merged(None, unscored=NOT_JUDGED)


def iter_conversations(store: Store, condition: str | None = None,
                       items: frozenset[str] | None = None,
                       audit_judge: str | None = None) -> Iterator[list[Response]]:  # fmt: skip
    """Every finished conversation (of one `condition`, or all; of the `items` in scope, or all) in plan order, as
    its responses with merged judgements (and, with `audit_judge`, that judge's audit of each user message). A
    generator over the store: memory holds one conversation (and one read chunk) at a time."""
    category = {item_id: body["category"] for item_id, body in store.item_bodies().items()}
    for conv_id, group in groupby(store.iter_turns(condition), key=lambda r: r.conv_id):
        rows = list(group)
        first = rows[0]
        if items is not None and first.item_id not in items:
            continue
        judgements: dict[int, list[JudgementRow]] = defaultdict(list)
        for judgement in store.judgements_of(conv_id):
            judgements[judgement.idx].append(judgement)
        audits: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
        for audit in store.audits_of(conv_id, audit_judge) if audit_judge else ():
            audits[audit.idx][audit.kind] = {"score": audit.score, "value": audit.value,
                                             "unscored": audit.unscored_reason}  # fmt: skip
        conv = []
        for row in rows:
            resp = Response(
                conv_id=conv_id, item_id=first.item_id, category=category[first.item_id],
                condition=first.condition, sequence_index=first.sequence_index, moves=first.moves, idx=row.idx,
                move=row.move, user_text=row.user_text, text=row.response, stop_reason=first.stop_reason or "",
                truncated_from=row.truncated_from, replaced=row.replaced, user_fallback=row.user_fallback,
                user_rejected=row.user_rejected, audit=audits.get(row.idx, {}),
            )  # fmt: skip
            merge_judgements(resp, judgements.get(row.idx, []))
            conv.append(resp)
        yield conv


def slim(conv: list[Response]) -> list[Response]:
    """The conversation without its texts and per-judge verdicts: what the aggregates need, kept for the whole run
    once the texts have gone to the exports."""
    return [replace(r, user_text="", text="", per_judge={}, audit={}) for r in conv]


def multi_turn(convs: Iterable[list[Response]]) -> list[list[Response]]:
    """The multi-turn conversations (the upfront baselines left out)."""
    return [c for c in convs if c[0].condition == "multi_turn"]
