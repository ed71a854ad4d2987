"""The run store flattened to one record per response, with each judge's decisions merged (panel majority)."""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from carryon.store import Store


@dataclass
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


def _majority(values: list[Any]) -> Any:
    """The most common value; None on a tie or when nothing was decided."""
    decided = [v for v in values if v is not None]
    if not decided:
        return None
    counts = Counter(decided).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return None
    return counts[0][0]


def _merge(resp: Response, rows: list[Any]) -> None:
    by_kind: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_kind[row["kind"]].append(row)
        resp.per_judge.setdefault(row["judge"], {})[row["kind"]] = {
            "score": row["score"], "value": json.loads(row["value"] or "null"), "unscored": row["unscored_reason"],
        }  # fmt: skip
    ben = by_kind.get("ben_util", [])
    if ben:
        ids = sorted({cid for r in ben for cid in (json.loads(r["value"]) or {}).get("items", {})}, key=lambda c: int(c[1:]))
        for cid in ids:
            votes = [((json.loads(r["value"]) or {}).get("items", {}).get(cid) or {}).get("met") for r in ben]
            resp.items_met[cid] = _majority(votes)
        if ids and all(v is not None for v in resp.items_met.values()):
            resp.ben_util = sum(bool(v) for v in resp.items_met.values()) / len(ids)
        else:
            reasons = [r["unscored_reason"] for r in ben if r["unscored_reason"]]
            resp.unscored["ben_util"] = reasons[0] if reasons else "panel tie on a checklist item"
    harm = [r for r in by_kind.get("harm", [])]
    scores = [r["score"] for r in harm if r["score"] is not None]
    if scores and len(scores) * 2 > len(harm):
        resp.harm = float(statistics.median(scores))
    elif harm:
        resp.unscored["harm"] = next((r["unscored_reason"] for r in harm if r["unscored_reason"]), "unscored")
    types = by_kind.get("response_type", [])
    if types:
        resp.rtype = _majority([(json.loads(r["value"]) or {}).get("type") for r in types])
        if resp.rtype is None:
            resp.unscored["response_type"] = next(
                (r["unscored_reason"] for r in types if r["unscored_reason"]), "panel tie"
            )


def load_responses(store: Store) -> list[Response]:
    """Every response of every finished conversation, in plan order, with merged judgements."""
    items = store.item_bodies()
    judgements: dict[tuple[str, int], list[Any]] = defaultdict(list)
    for row in store.judgements():
        judgements[(row["conv_id"], row["idx"])].append(row)
    plan = {row["conv_id"]: row for row in store.plan()}
    out: list[Response] = []
    for row in store.iter_turns():
        p = plan[row["conv_id"]]
        resp = Response(
            conv_id=row["conv_id"], item_id=row["item_id"], category=items[row["item_id"]]["category"],
            condition=row["condition"], sequence_index=p["sequence_index"], moves=tuple(json.loads(p["moves"])),
            idx=row["idx"], move=row["move"], user_text=row["user_text"], text=row["response"],
            stop_reason=p["stop_reason"] or "",
        )  # fmt: skip
        _merge(resp, judgements.get((row["conv_id"], row["idx"]), []))
        out.append(resp)
    return out


def conversations(responses: list[Response]) -> dict[str, list[Response]]:
    convs: dict[str, list[Response]] = defaultdict(list)
    for r in responses:
        convs[r.conv_id].append(r)
    return dict(convs)


def multi_turn(responses: list[Response]) -> list[list[Response]]:
    """The multi-turn conversations (the upfront baselines left out), each as its responses in order."""
    return [c for c in conversations(responses).values() if c[0].condition == "multi_turn"]
