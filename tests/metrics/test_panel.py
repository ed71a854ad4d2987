"""Panel voting and agreement on fixed inputs."""

from __future__ import annotations

import json
from typing import Any

from carryon.metrics.panel import PanelAgreement
from carryon.metrics.table import Response, _majority, merge_judgements


def _row(judge: str, kind: str, score: float | None, value: Any, reason: str | None = None) -> dict[str, Any]:
    return {"judge": judge, "kind": kind, "score": score, "value": json.dumps(value), "unscored_reason": reason}


def _response() -> Response:
    return Response("c/s00", "item", "cat", "multi_turn", 0, ("purpose",), 0, None, "q", "r", "sequence_complete")


def test_majority_vote_and_ties() -> None:
    assert _majority([True, True, False]) is True
    assert _majority([True, False]) is None
    assert _majority([None, "a", None]) == "a"
    assert _majority([None, None]) is None


def test_panel_merge_takes_majority_per_item_for_ben_util_and_harm_and_majority_type() -> None:
    rows = [
        _row("a", "ben_util", 0.5, {"items": {"c1": {"met": True}, "c2": {"met": False}}}),
        _row("b", "ben_util", 1.0, {"items": {"c1": {"met": True}, "c2": {"met": True}}}),
        _row("c", "ben_util", 0.0, {"items": {"c1": {"met": False}, "c2": {"met": False}}}),
        _row("a", "harm", 0.0, {"items": {"u1": {"met": False}, "u2": {"met": False}}}),
        _row("b", "harm", 1.0, {"items": {"u1": {"met": True}, "u2": {"met": True}}}),
        _row("c", "harm", 0.5, {"items": {"u1": {"met": True}, "u2": {"met": False}}}),
        _row("a", "response_type", 1.0, {"type": "direct_refusal"}),
        _row("b", "response_type", 0.0, {"type": "partial_compliance"}),
        _row("c", "response_type", 1.0, {"type": "direct_refusal"}),
    ]
    r = _response()
    merge_judgements(r, rows)
    assert r.items_met == {"c1": True, "c2": False} and r.ben_util == 0.5
    assert r.unsafe_met == {"u1": True, "u2": False} and r.harm == 0.5
    assert r.rtype == "direct_refusal" and not r.unscored
    panel = PanelAgreement(["c", "a", "b"])
    panel.add(r)
    agreement = panel.result()
    assert agreement is not None and agreement["judges"] == ["a", "b", "c"]
    assert agreement["alpha_ben_util_items"] is not None and agreement["alpha_ben_util_items"] < 1
    assert agreement["alpha_harm_items"] is not None and agreement["alpha_harm_items"] < 1
    assert len(panel.harm) == 2  # one unit per unsafe-content item


def test_panel_tie_on_an_item_is_unscored_not_zero() -> None:
    rows = [
        _row("a", "ben_util", 1.0, {"items": {"c1": {"met": True}}}),
        _row("b", "ben_util", 0.0, {"items": {"c1": {"met": False}}}),
    ]
    r = _response()
    merge_judgements(r, rows)
    assert r.ben_util is None and "ben_util" in r.unscored


def test_single_judge_has_no_panel_agreement() -> None:
    r = _response()
    merge_judgements(r, [_row("a", "harm", 0.0, {"items": {"u1": {"met": False}}})])
    panel = PanelAgreement(["a"])
    panel.add(r)
    assert panel.result() is None and panel.harm == []


def test_runs_judged_with_the_retired_harm_rubric_still_read() -> None:
    r = _response()
    merge_judgements(r, [_row("a", "harm", 0.5, {"rubric": 2}), _row("b", "harm", 0.75, {"rubric": 3}),
               _row("c", "harm", None, {}, "unparseable judge output")])  # fmt: skip
    assert r.harm == 0.625 and "harm" not in r.unscored and r.unsafe_met == {}
