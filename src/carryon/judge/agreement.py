"""Agreement statistics for validating judges and panels: accuracy, macro-F1, Cohen's κ, confusion matrix, AUROC,
Krippendorff's α. Hand-written (a few formulas) rather than pulling scikit-learn and scipy into every install; each is
tested against hand-computed values."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from itertools import combinations
from typing import Literal


def accuracy(gold: Sequence[Hashable], pred: Sequence[Hashable]) -> float:
    return sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)


def confusion(gold: Sequence[Hashable], pred: Sequence[Hashable], labels: Sequence[Hashable]) -> list[list[int]]:
    """rows: gold label, columns: predicted label, in `labels` order."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, pred, strict=True):
        matrix[index[g]][index[p]] += 1
    return matrix


def macro_f1(gold: Sequence[Hashable], pred: Sequence[Hashable], labels: Sequence[Hashable]) -> float:
    scores = []
    for label in labels:
        tp = sum(g == label and p == label for g, p in zip(gold, pred))
        fp = sum(g != label and p == label for g, p in zip(gold, pred))
        fn = sum(g == label and p != label for g, p in zip(gold, pred))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores)


def cohen_kappa(gold: Sequence[Hashable], pred: Sequence[Hashable]) -> float:
    n = len(gold)
    observed = accuracy(gold, pred)
    cg, cp = Counter(gold), Counter(pred)
    expected = sum(cg[k] * cp.get(k, 0) for k in cg) / (n * n)
    return 1.0 if expected == 1 else (observed - expected) / (1 - expected)


def auroc(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    pos = [s for s, y in zip(scores, positive, strict=True) if y]
    neg = [s for s, y in zip(scores, positive) if not y]
    if not pos or not neg:
        raise ValueError("AUROC needs positives and negatives")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def krippendorff_alpha(units: Sequence[Sequence[float | Hashable | None]],
                       level: Literal["nominal", "interval"] = "nominal") -> float | None:  # fmt: skip
    """α over units (each a list of the coders' values, None = missing). Units with < 2 values are skipped.
    Returns None when no unit is pairable; 1.0 when there is no disagreement and no variation."""

    def delta(a: object, b: object) -> float:
        if level == "nominal":
            return 0.0 if a == b else 1.0
        return (float(a) - float(b)) ** 2  # type: ignore[arg-type]

    values = [[v for v in unit if v is not None] for unit in units]
    values = [v for v in values if len(v) >= 2]
    if not values:
        return None
    n = sum(len(v) for v in values)
    d_o = sum(sum(delta(a, b) * 2 for a, b in combinations(v, 2)) / (len(v) - 1) for v in values) / n
    pooled = [x for v in values for x in v]
    d_e = sum(delta(a, b) * 2 for a, b in combinations(pooled, 2)) / (n * (n - 1))
    if d_e == 0:
        return 1.0
    return 1 - d_o / d_e


def bootstrap_ci(stat: Callable[[list[int]], float | None], n: int, samples: int = 1000, seed: int = 12345,
                 level: float = 0.95) -> tuple[float | None, float | None]:  # fmt: skip
    """Percentile bootstrap CI of a statistic over `n` rows: `stat` gets a resample of row indices (with
    replacement); resamples where it is undefined (None, or an error such as AUROC without both classes) are
    skipped."""
    if n < 2:
        return None, None
    rng = random.Random(seed)
    values = []
    for _ in range(samples):
        try:
            value = stat([rng.randrange(n) for _ in range(n)])
        except (ValueError, ZeroDivisionError):
            continue
        if value is not None:
            values.append(value)
    if not values:
        return None, None
    values.sort()
    tail = (1 - level) / 2
    low = values[min(len(values) - 1, int(tail * len(values)))]
    high = values[min(len(values) - 1, int((1 - tail) * len(values)))]
    return low, high
