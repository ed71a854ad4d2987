"""Text similarity shared by the dataset checks, the simulated user's guard and the failure-mode analysis."""

from __future__ import annotations

import difflib
import re

_STOPWORDS = frozenset(
    "a an and are as at be by can do does for from has have how i if in into is it its my of on or s so that the "
    "their them they this to was what when where which who why will with you your e g such like about not any "
    "should explains states names describes advises notes mentions gives lists recommends suggests points out".split()
)


def content_words(text: str) -> list[str]:
    """Lower-case words of `text` without punctuation, common function words and the verbs checklists open with
    ("explains", "names"): the units the word-level comparisons (checklist overlaps, duplicate items) work on."""
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOPWORDS]


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
