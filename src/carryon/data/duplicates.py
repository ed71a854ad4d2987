"""Cross-item duplicate check: two items that share three or more checklist entries measure the same thing twice.

Entries are compared as sets of content words (`text.content_words`); two entries match when their Jaccard overlap
is at least `ENTRY_SIMILARITY`. An inverted index over words keeps the check near-linear: only entries that share a
word are ever compared, so the built-in dataset (~2,500 entries) takes well under a second."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from carryon.data.schema import Item, jaccard
from carryon.core.text import content_words

ENTRY_SIMILARITY = 0.35
SHARED_ENTRIES = 3


@dataclass(frozen=True)
class DuplicatePair:
    first: str
    second: str
    shared: int

    def message(self) -> str:
        return (
            f"items {self.first!r} and {self.second!r} share {self.shared} checklist entries "
            f"(word overlap ≥ {ENTRY_SIMILARITY}); merge them or make them ask different things"
        )


def duplicate_pairs(items: Sequence[Item]) -> list[DuplicatePair]:
    """Pairs of items whose checklists share at least `SHARED_ENTRIES` entries, each entry counted once."""
    entries: list[tuple[int, frozenset[str]]] = []
    index: dict[str, list[int]] = defaultdict(list)
    for owner, item in enumerate(items):
        for text in item.checklist:
            words = frozenset(content_words(text))
            for word in words:
                index[word].append(len(entries))
            entries.append((owner, words))
    matches: dict[tuple[int, int], set[int]] = defaultdict(set)
    for e, (owner, words) in enumerate(entries):
        candidates = {f for word in words for f in index[word] if f > e and entries[f][0] != owner}
        for f in candidates:
            if jaccard(words, entries[f][1]) >= ENTRY_SIMILARITY:
                pair = (owner, entries[f][0]) if owner < entries[f][0] else (entries[f][0], owner)
                matches[pair].add(e if owner == pair[0] else f)
    return [
        DuplicatePair(items[a].id, items[b].id, len(shared))
        for (a, b), shared in sorted(matches.items())
        if len(shared) >= SHARED_ENTRIES
    ]
