"""Means with 95% bootstrap CIs resampled by item (the item is the unit), and paired differences."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np

BOOTSTRAP_SAMPLES = 1000
BOOTSTRAP_SEED = 12345


def _cluster_means(values: Iterable[tuple[str, float]]) -> dict[str, float]:
    groups: dict[str, list[float]] = defaultdict(list)
    for item_id, value in values:
        groups[item_id].append(value)
    return {k: float(np.mean(v)) for k, v in groups.items()}


def summarize(values: list[tuple[str, float | None]], samples: int = BOOTSTRAP_SAMPLES) -> dict[str, float | int | None]:
    """`{mean, ci_low, ci_high, n, unscored}` over (item_id, value) pairs; None values count as unscored.

    The mean averages items equally (each item's responses are averaged first); the CI resamples items.
    """
    scored = [(k, float(v)) for k, v in values if v is not None]
    unscored = len(values) - len(scored)
    if not scored:
        return {"mean": None, "ci_low": None, "ci_high": None, "n": 0, "unscored": unscored}
    means = np.array(list(_cluster_means(scored).values()))
    mean = float(means.mean())
    if len(means) < 2:
        low = high = mean
    else:
        rng = np.random.default_rng(BOOTSTRAP_SEED)
        draws = rng.integers(0, len(means), size=(samples, len(means)))
        boot = means[draws].mean(axis=1)
        low, high = (float(x) for x in np.percentile(boot, [2.5, 97.5]))
    return {"mean": mean, "ci_low": low, "ci_high": high, "n": len(scored), "unscored": unscored}


def _paired_item_means(
    a: list[tuple[str, float | None]], b: list[tuple[str, float | None]]
) -> tuple[list[str], dict[str, float], dict[str, float]]:
    """Items scored in both `a` and `b` (sorted), and each side's per-item means."""
    ma = _cluster_means((k, float(v)) for k, v in a if v is not None)
    mb = _cluster_means((k, float(v)) for k, v in b if v is not None)
    return sorted(set(ma) & set(mb)), ma, mb


def paired_difference(
    a: list[tuple[str, float | None]], b: list[tuple[str, float | None]], samples: int = BOOTSTRAP_SAMPLES
) -> dict[str, float | int | None]:
    """Mean of (a − b) over items present in both, with an item-resampled CI."""
    common, ma, mb = _paired_item_means(a, b)
    return summarize([(k, ma[k] - mb[k]) for k in common], samples)


def ratio_of_means(
    num: list[tuple[str, float | None]], den: list[tuple[str, float | None]], samples: int = BOOTSTRAP_SAMPLES
) -> dict[str, float | int | None]:
    """mean(num) / mean(den) over items present in both, item-averaged, with an item-resampled CI."""
    common, mn, md = _paired_item_means(num, den)
    a = np.array([mn[k] for k in common])
    b = np.array([md[k] for k in common])
    if not common or b.mean() == 0:
        return {"value": None, "ci_low": None, "ci_high": None, "n_items": len(common)}
    value = float(a.mean() / b.mean())
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = rng.integers(0, len(common), size=(samples, len(common)))
    den_b = b[draws].mean(axis=1)
    ok = den_b > 0
    boot = a[draws].mean(axis=1)[ok] / den_b[ok]
    low, high = (float(x) for x in np.percentile(boot, [2.5, 97.5])) if len(boot) else (None, None)
    return {"value": value, "ci_low": low, "ci_high": high, "n_items": len(common)}
