from __future__ import annotations

import random
import time
from collections.abc import Hashable, Sequence
from itertools import combinations

import pytest

from carryon.core.agreement import accuracy, auroc, cohen_kappa, confusion, krippendorff_alpha, macro_f1


def test_classification_agreement_against_hand_computed_values() -> None:
    gold, pred = ["a", "a", "b", "b"], ["a", "b", "b", "b"]
    assert accuracy(gold, pred) == 0.75
    assert cohen_kappa(gold, pred) == pytest.approx(0.5)  # po = .75, pe = (2·1 + 2·3) / 16 = .5
    assert confusion(gold, pred, ["a", "b"]) == [[1, 1], [0, 2]]
    assert macro_f1(gold, pred, ["a", "b"]) == pytest.approx((2 / 3 + 0.8) / 2)
    assert cohen_kappa(["x", "y"], ["x", "y"]) == 1.0


def test_auroc() -> None:
    assert auroc([0.9, 0.8, 0.3, 0.1], [True, False, True, False]) == 0.75
    assert auroc([1, 1], [True, False]) == 0.5
    with pytest.raises(ValueError):
        auroc([1.0], [True])


def test_krippendorff_alpha() -> None:
    # 8 values; one disagreeing unit: Do = 2/8, De = 2·5·3 / (8·7)  →  α = 1 − .25 / .5357 = .5333
    assert krippendorff_alpha([[1, 1], [1, 1], [0, 0], [0, 1]]) == pytest.approx(1 - 0.25 / (30 / 56))
    assert krippendorff_alpha([["a", "a", "a"], ["b", "b", None]]) == 1.0
    assert krippendorff_alpha([[1, None], [None]]) is None
    assert (krippendorff_alpha([[0, 4], [4, 0]], level="interval") or 0) < 0


# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers, 12 units, nominal
# values 1-5 with missing ones. Published: α_nominal = 0.743, α_interval = 0.849; exactly 113/152 and 951/1120.
KRIPPENDORFF_2011: list[list[int | None]] = [
    [1, 1, None, 1], [2, 2, 3, 2], [3, 3, 3, 3], [3, 3, 3, 3], [2, 2, 2, 2], [1, 2, 3, 4],
    [4, 4, 4, 4], [1, 1, 2, 1], [2, 2, 2, 2], [None, 5, 5, 5], [None, None, 1, 1], [None, 3, None, None],
]


def test_krippendorff_alpha_matches_the_published_worked_example() -> None:
    assert krippendorff_alpha(KRIPPENDORFF_2011) == pytest.approx(113 / 152, abs=1e-9)
    assert round(krippendorff_alpha(KRIPPENDORFF_2011) or 0, 3) == 0.743
    assert krippendorff_alpha(KRIPPENDORFF_2011, level="interval") == pytest.approx(951 / 1120, abs=1e-9)


def _pairwise_alpha(units: Sequence[Sequence[Hashable | None]], level: str) -> float | None:
    """The definition, summed over every pair of values (quadratic): the reference the linear α must equal."""

    def delta(a: object, b: object) -> float:
        return (0.0 if a == b else 1.0) if level == "nominal" else (float(a) - float(b)) ** 2  # type: ignore[arg-type]

    values = [v for v in ([x for x in unit if x is not None] for unit in units) if len(v) >= 2]
    if not values:
        return None
    n = sum(len(v) for v in values)
    d_o = sum(sum(delta(a, b) * 2 for a, b in combinations(v, 2)) / (len(v) - 1) for v in values) / n
    pooled = [x for v in values for x in v]
    d_e = sum(delta(a, b) * 2 for a, b in combinations(pooled, 2)) / (n * (n - 1))
    return 1.0 if d_e == 0 else 1 - d_o / d_e


def test_linear_alpha_equals_the_pairwise_definition() -> None:
    rng = random.Random(1)
    for _ in range(2000):
        level = rng.choice(["nominal", "interval"])
        domain: list[Hashable] = [0, 1, 2, 3, 4] if level == "interval" else rng.choice(
            [[True, False], ["a", "b", "c"], [0, 1, 2, 3, 4]])  # fmt: skip
        units = [[rng.choice([*domain, None]) for _ in range(rng.randint(1, 5))] for _ in range(rng.randint(1, 12))]
        expected, got = _pairwise_alpha(units, level), krippendorff_alpha(units, level)  # type: ignore[arg-type]
        assert (expected is None) == (got is None), units
        if expected is not None and got is not None:
            assert abs(expected - got) < 1e-9, units


def test_alpha_is_linear_time() -> None:
    """140k units × 3 judges (a paper-scale panel's Ben-Util decisions) in seconds; the pairwise sum took hours."""
    rng = random.Random(2)
    units = [[rng.random() < 0.6 for _ in range(3)] for _ in range(140_000)]
    started = time.perf_counter()
    assert krippendorff_alpha(units) is not None
    assert time.perf_counter() - started < 10
