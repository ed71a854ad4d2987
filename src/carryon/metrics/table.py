"""The run store read back as conversations of responses, each with its judges' decisions merged (panel
majority), one conversation at a time."""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from itertools import groupby
from typing import Any

from carryon.store import Store


@dataclass(slots=True)
class Response:
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
    ben_util: float | None = None
    items_met: dict[str, bool | None] = field(default_factory=dict)
    harm: float | None = None
    rtype: str | None = None
    unscored: dict[str, str] = field(default_factory=dict)
    per_judge: dict[str, dict[str, Any]] = field(default_factory=dict)
    unsafe_met: dict[str, bool | None] = field(default_factory=dict)
    user_fallback: int = 0  # the user message is the scripted fallback (a user model's drafts were all rejected)
    user_rejected: int = 0  # drafts of a user model rejected as role confusion before this user message
    audit: dict[str, dict[str, Any]] = field(default_factory=dict)  # simulator audit of the user message, by kind


def _majority(values: list[Any]) -> Any:
    """The most common value; None on a tie or when nothing was decided."""
    decided = [v for v in values if v is not None]
    if not decided:
        return None
    counts = Counter(decided).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return None
    return counts[0][0]


def _merge_items(judged: list[tuple[Any, Any]], tie: str) -> tuple[dict[str, bool | None], float | None, str | None]:
    """Per-item verdicts of a panel (majority per item) → (verdict per item, share met, or why it is unscored)."""
    verdicts = [(value or {}).get("items", {}) for _, value in judged]
    ids = sorted({iid for items in verdicts for iid in items}, key=lambda i: int(i[1:]))
    met = {iid: _majority([(items.get(iid) or {}).get("met") for items in verdicts]) for iid in ids}
    if ids and all(v is not None for v in met.values()):
        return met, sum(bool(v) for v in met.values()) / len(ids), None
    reasons = [row["unscored_reason"] for row, _ in judged if row["unscored_reason"]]
    return met, None, reasons[0] if reasons else tie


def _merge(resp: Response, rows: list[Any]) -> None:
    by_kind: dict[str, list[tuple[Any, Any]]] = defaultdict(list)
    for row in rows:
        value = json.loads(row["value"] or "null")
        by_kind[row["kind"]].append((row, value))
        resp.per_judge.setdefault(row["judge"], {})[row["kind"]] = {
            "score": row["score"], "value": value, "unscored": row["unscored_reason"],
        }  # fmt: skip
    if ben := by_kind.get("ben_util"):
        resp.items_met, resp.ben_util, reason = _merge_items(ben, "panel tie on a checklist item")
        if reason:
            resp.unscored["ben_util"] = reason
    if harm := by_kind.get("harm"):
        if any("items" in (value or {}) for _, value in harm):
            resp.unsafe_met, resp.harm, reason = _merge_items(harm, "panel tie on an unsafe-content item")
        else:  # runs judged before judge_system@3 stored one 0-4 rubric score per judge (scaled to [0, 1])
            scores = [row["score"] for row, _ in harm if row["score"] is not None]
            resp.harm = float(statistics.median(scores)) if scores else None
            reasons = (r["unscored_reason"] for r, _ in harm if r["unscored_reason"])
            reason = None if scores else next(reasons, "unscored")
        if reason:
            resp.unscored["harm"] = reason
    if types := by_kind.get("response_type"):
        resp.rtype = _majority([(value or {}).get("type") for _, value in types])
        if resp.rtype is None:
            resp.unscored["response_type"] = next(
                (r["unscored_reason"] for r, _ in types if r["unscored_reason"]), "panel tie"
            )


def iter_conversations(store: Store, condition: str | None = None,
                       audit_judge: str | None = None) -> Iterator[list[Response]]:  # fmt: skip
    """Every finished conversation (of one `condition`, or all) in plan order, as its responses with merged
    judgements (and, with `audit_judge`, that judge's audit of each user message). A generator over the store:
    memory holds one conversation (and one read chunk) at a time."""
    category = {item_id: body["category"] for item_id, body in store.item_bodies().items()}
    for conv_id, group in groupby(store.iter_turns(condition), key=lambda r: r["conv_id"]):
        rows = list(group)
        first = rows[0]
        moves = tuple(json.loads(first["moves"]))
        judgements: dict[int, list[Any]] = defaultdict(list)
        for row in store.judgements_of(conv_id):
            judgements[row["idx"]].append(row)
        audits: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
        for row in store.audits_of(conv_id, audit_judge) if audit_judge else ():
            audits[row["idx"]][row["kind"]] = {"score": row["score"], "value": json.loads(row["value"] or "null"),
                                               "unscored": row["unscored_reason"]}  # fmt: skip
        conv = []
        for row in rows:
            resp = Response(
                conv_id=conv_id, item_id=first["item_id"], category=category[first["item_id"]],
                condition=first["condition"], sequence_index=first["sequence_index"], moves=moves, idx=row["idx"],
                move=row["move"], user_text=row["user_text"], text=row["response"],
                stop_reason=first["stop_reason"] or "", user_fallback=int(row["user_fallback"] or 0),
                user_rejected=int(row["user_rejected"] or 0), audit=audits.get(row["idx"], {}),
            )  # fmt: skip
            _merge(resp, judgements.get(row["idx"], []))
            conv.append(resp)
        yield conv


def slim(conv: list[Response]) -> list[Response]:
    """The conversation without its texts and per-judge verdicts: what the aggregates need, kept for the whole run
    once the texts have gone to the exports."""
    return [replace(r, user_text="", text="", per_judge={}, audit={}) for r in conv]


def multi_turn(convs: Iterable[list[Response]]) -> list[list[Response]]:
    """The multi-turn conversations (the upfront baselines left out)."""
    return [c for c in convs if c[0].condition == "multi_turn"]
