from __future__ import annotations

import pytest

from carryon.judge.agreement import accuracy, auroc, cohen_kappa, confusion, krippendorff_alpha, macro_f1


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
    assert krippendorff_alpha([[0, 4], [4, 0]], level="interval") < 0
