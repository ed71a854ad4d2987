"""Agreement statistics for validating judges and panels: accuracy, macro-F1, Cohen's κ, confusion matrix, AUROC,
Krippendorff's α. Hand-written (a few formulas) rather than pulling scikit-learn and scipy into every install; each is
tested against hand-computed values."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
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


def krippendorff_alpha(units: Iterable[Sequence[float | Hashable | None]],
                       level: Literal["nominal", "interval"] = "nominal") -> float | None:  # fmt: skip
    """α over units (each a list of the coders' values, None = missing). Units with < 2 values are skipped.
    Returns None when no unit is pairable; 1.0 when there is no disagreement and no variation.

    Linear in the number of values, through Krippendorff's coincidence counts: a unit with m values adds
    n_uc·n_uk / (m − 1) to o_ck for its value counts n_u·, the marginals are n_c = Σ_k o_ck, and
        D_o = Σ_ck o_ck·δ²_ck / n,    D_e = Σ_ck n_c·n_k·δ²_ck / (n(n − 1)),    α = 1 − D_o / D_e.
    Nominal δ² is 0/1, so D_e needs only Σ n_c²; interval δ² = (c − k)², whose double sums reduce to the first
    two moments (Σ_ck n_c n_k (c − k)² = 2·n·Σ n_c c² − 2·(Σ n_c c)²). Krippendorff (2011), "Computing
    Krippendorff's Alpha-Reliability"."""
    coincidence: dict[tuple[Hashable, Hashable], float] = defaultdict(float)
    for unit in units:
        counts = Counter(v for v in unit if v is not None)
        m = sum(counts.values())
        if m < 2:
            continue
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                coincidence[(c, k)] += n_c * (n_k - (c == k)) / (m - 1)
    if not coincidence:
        return None
    marginal: dict[Hashable, float] = defaultdict(float)
    for (c, _), o in coincidence.items():
        marginal[c] += o
    n = sum(marginal.values())
    if len(marginal) == 1:  # one value throughout: no disagreement and no variation
        return 1.0
    if level == "nominal":
        d_o = sum(o for (c, k), o in coincidence.items() if c != k) / n
        d_e = (n * n - sum(n_c * n_c for n_c in marginal.values())) / (n * (n - 1))
    else:
        d_o = sum(o * (_num(c) - _num(k)) ** 2 for (c, k), o in coincidence.items()) / n
        first = sum(n_c * _num(c) for c, n_c in marginal.items())
        second = sum(n_c * _num(c) ** 2 for c, n_c in marginal.items())
        d_e = (2 * n * second - 2 * first * first) / (n * (n - 1))
    return 1 - d_o / d_e


def _num(value: Hashable) -> float:
    return float(value)  # type: ignore[arg-type]


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
