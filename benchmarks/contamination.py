"""Contamination check: is any query of a CarryOn dataset a copy or near-copy of a prompt in a public set?

For every (query, public prompt) pair, the word-sequence similarity (`carryon.text.similar_at_least`, the measure the
dataset validator uses for near-duplicate queries) and the content-word overlap (Jaccard of `text.content_words`).
Prints the closest public prompt for the top queries and how many pairs reach each threshold. The public files are
read from wherever you keep them (CSV with a prompt column); nothing is copied into the repository.

    python benchmarks/contamination.py --against ../shared/data/xstest/xstest_prompts.csv:prompt \
        --against ../shared/data/simplesafetytests/simplesafetytests_test_cases.csv:prompts_final
"""

from __future__ import annotations

import argparse
import csv
import difflib
from pathlib import Path

from carryon.data.load import builtin_path, validate_file
from carryon.data.schema import jaccard
from carryon.text import content_words

THRESHOLDS = (0.5, 0.7, 0.85)


def _prompts(spec: str) -> list[str]:
    path, _, column = spec.rpartition(":")
    with Path(path).open(encoding="utf-8") as f:
        return [row[column] for row in csv.DictReader(f) if row.get(column)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", default=str(builtin_path()))
    parser.add_argument("--against", action="append", required=True, help="FILE.csv:COLUMN, repeatable")
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args()
    queries = [i.query for i in validate_file(args.dataset, near_duplicates=False).items]
    public = [p for spec in args.against for p in _prompts(spec)]
    public_words = [(p, p.lower().split(), frozenset(content_words(p))) for p in public]
    best: list[tuple[float, float, str, str]] = []
    for query in queries:
        words, content = query.lower().split(), frozenset(content_words(query))
        seq, overlap, match = max(
            (difflib.SequenceMatcher(None, words, pw, autojunk=False).ratio(), jaccard(content, pc), p)
            for p, pw, pc in public_words
        )  # fmt: skip
        best.append((seq, overlap, query, match))
    best.sort(reverse=True)
    print(f"{len(queries)} queries vs {len(public)} public prompts")
    for t in THRESHOLDS:
        print(f"  word-sequence similarity >= {t}: {sum(b[0] >= t for b in best)} queries")
    for t in THRESHOLDS:
        print(f"  content-word overlap     >= {t}: {sum(b[1] >= t for b in best)} queries")
    print(f"closest {args.top}:")
    for seq, overlap, query, match in best[: args.top]:
        print(f"  {seq:.2f} / {overlap:.2f}  {query!r}\n              ~ {match!r}")


if __name__ == "__main__":
    main()
