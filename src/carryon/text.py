"""Text similarity shared by the dataset checks, the simulated user's guard and the failure-mode analysis."""

from __future__ import annotations

import difflib


def similar_at_least(a: str, b: str, threshold: float) -> bool:
    """Whether the word sequences of `a` and `b` have a difflib similarity ratio of at least `threshold`.

    Words, not characters: as discriminating for "near-duplicate" and "copies the other text", and far cheaper on
    long responses. Identical texts and the cheap upper bounds are checked before the full ratio."""
    if a == b:
        return True
    matcher = difflib.SequenceMatcher(None, a.split(), b.split(), autojunk=False)
    return (
        matcher.real_quick_ratio() >= threshold
        and matcher.quick_ratio() >= threshold
        and matcher.ratio() >= threshold
    )
