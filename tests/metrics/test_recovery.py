"""Recovery metrics and the item-bootstrap summary, against values computed by hand."""

from __future__ import annotations

import pytest

from carryon.judge.kinds import Merged
from carryon.metrics.recovery import recovery
from carryon.core.stats import summarize
from carryon.metrics.table import Response


def _conv(item: str, condition: str, utils: list[float | None], n: int = 0) -> list[Response]:
    conv_id = f"{item}/{'upfront' if condition == 'upfront' else f's{n:02d}'}"
    return [Response(conv_id, item, "cat", condition, n, (), idx, None if idx == 0 else "purpose", "", "", "done",
                     merged={"ben_util": Merged(u)}) for idx, u in enumerate(utils)]  # fmt: skip


CONVS = [
    _conv("a", "upfront", [0.8]),
    _conv("a", "multi_turn", [0.2, 0.5, 0.9], 0),  # reaches 0.8 at response 3; area (0.35 + 0.7) / 2 = 0.525
    _conv("a", "multi_turn", [0.2, 0.4], 1),  # never reaches it; area 0.3
    _conv("b", "upfront", [0.5]),
    _conv("b", "multi_turn", [0.0, 0.5], 0),  # reaches 0.5 at response 2; area 0.25
    _conv("b", "multi_turn", [1.0], 1),  # no follow-up: no recovery to measure; area 1.0
    _conv("c", "multi_turn", [0.0, 1.0], 0),  # no upfront baseline: left out of recovery; area 0.5
    _conv("d", "upfront", [0.6]),
    _conv("d", "multi_turn", [0.1, None], 0),  # undecided: neither recovered nor an area
]


def test_recovery_metrics_by_hand() -> None:
    r = recovery(CONVS)
    # final Ben-Util over items with an upfront baseline, item-averaged: a (0.9 + 0.4) / 2, b (0.5 + 1.0) / 2;
    # d's final is unscored, so d drops out; upfront a 0.8, b 0.5
    assert r["recovery_ratio"] == pytest.approx(((0.65 + 0.75) / 2) / ((0.8 + 0.5) / 2))
    assert r["recovered_share"]["mean"] == pytest.approx((0.5 + 1.0) / 2)  # items a [1, 0], b [1]
    assert r["recovered_share"]["n"] == 3
    assert r["mean_turns_to_recover"]["mean"] == pytest.approx((3 + 2) / 2)
    assert r["mean_turns_to_recover"]["n"] == 2
    assert r["auc"]["mean"] == pytest.approx(((0.525 + 0.3) / 2 + (0.25 + 1.0) / 2 + 0.5) / 3)
    assert r["auc"]["n"] == 5


def test_recovery_with_a_zero_upfront_baseline_has_no_ratio() -> None:
    r = recovery([_conv("a", "upfront", [0.0]), _conv("a", "multi_turn", [0.0, 0.5])])
    assert r["recovery_ratio"] is None
    assert r["recovered_share"]["mean"] == 1.0 and r["mean_turns_to_recover"]["mean"] == 2.0


def test_summarize_averages_items_equally_and_resamples_items() -> None:
    s = summarize([("a", 1.0), ("a", 0.0), ("a", 0.5), ("b", 1.0), ("c", None)])
    assert s["mean"] == pytest.approx(0.75)  # items a 0.5 and b 1.0, not the 5-response mean 0.625
    assert (s["n"], s["unscored"]) == (4, 1)
    assert (s["ci_low"], s["ci_high"]) == (0.5, 1.0)  # resampling two items: a a, a b, b b
    one = summarize([("a", 0.2), ("a", 0.4)])
    assert one["mean"] == one["ci_low"] == one["ci_high"] == pytest.approx(0.3)
    assert summarize([("a", None)]) == {"mean": None, "ci_low": None, "ci_high": None, "n": 0, "unscored": 1}
    assert summarize([]) == {"mean": None, "ci_low": None, "ci_high": None, "n": 0, "unscored": 0}
    wide = summarize([(str(i), float(i % 2)) for i in range(40)])
    low, high = wide["ci_low"], wide["ci_high"]
    assert low is not None and high is not None and low < 0.5 < high and high - low < 0.4
