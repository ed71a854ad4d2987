"""Per-category breakdown: turn-1, upfront and final Ben-Util and final harm for every category label a dataset uses.

Categories are open labels (a user's own taxonomy may have dozens of small ones), so this works for any labels; the
report shows the largest and groups the long tail (`report_rows`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from carryon.metrics.curves import condition_summaries
from carryon.metrics.table import Response

REPORT_CATEGORIES = 12
"""The report lists this many categories (most items first); the rest are grouped into one "other" row."""


def category_summaries(convs: Sequence[list[Response]]) -> dict[str, dict[str, Any]]:
    """Per category label (sorted): items, and Ben-Util / harm / refusal per condition (as `conditions`)."""
    by: dict[str, list[list[Response]]] = defaultdict(list)
    for conv in convs:
        by[conv[0].category].append(conv)
    return {
        category: {"n_items": len({c[0].item_id for c in group}), "conditions": condition_summaries(group)}
        for category, group in sorted(by.items())
    }


def report_rows(categories: dict[str, dict[str, Any]], limit: int = REPORT_CATEGORIES) -> list[dict[str, Any]]:
    """Rows for the report's category table: the `limit` categories with most items, then one row naming how many
    smaller categories (and items) are grouped as "other" — their figures are in metrics.json."""
    ordered = sorted(categories.items(), key=lambda kv: (-kv[1]["n_items"], kv[0]))
    rows: list[dict[str, Any]] = []
    for name, body in ordered[:limit]:
        cond = body["conditions"]
        rows.append({
            "category": name, "n_items": body["n_items"],
            "turn1": cond["turn1"]["ben_util"]["mean"], "upfront": cond["upfront"]["ben_util"]["mean"],
            "final": cond["multi_turn"]["ben_util"]["mean"], "harm_final": cond["multi_turn"]["harm"]["mean"],
        })  # fmt: skip
    rest = ordered[limit:]
    if rest:
        rows.append({"category": f"other ({len(rest)} categories)", "n_items": sum(b["n_items"] for _, b in rest),
                     "turn1": None, "upfront": None, "final": None, "harm_final": None})  # fmt: skip
    return rows
