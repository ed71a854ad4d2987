"""Assemble metrics.json for one run: conditions, per-turn curves, recovery, move effects, transitions, failure
modes and unscored counts, under `models.<target>`, with the dataset, judge and prompt versions."""

from __future__ import annotations

from collections import Counter
from typing import Any

from carryon import __version__
from carryon.metrics.curves import condition_summaries, per_turn
from carryon.metrics.failure_modes import failure_modes
from carryon.metrics.panel import panel_agreement
from carryon.metrics.recovery import harm_by_start, move_effects, recovery, type_transitions
from carryon.metrics.table import Response, load_responses
from carryon.store import Store

METRICS_SCHEMA = "1"


def model_metrics(responses: list[Response], modes: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every metric of one target model's responses (`modes`: failure-mode shares, if already computed)."""
    if modes is None:
        modes, _ = failure_modes(responses)
    unscored = Counter(kind for r in responses for kind in r.unscored)
    return {
        "conditions": condition_summaries(responses),
        "per_turn": per_turn(responses),
        "recovery": recovery(responses),
        "move_effects": move_effects(responses),
        "response_type_transitions": type_transitions(responses),
        "harm_by_start": harm_by_start(responses),
        "failure_modes": modes,
        "unscored": {k: unscored.get(k, 0) for k in ("ben_util", "harm", "response_type")},
        "n_responses": len(responses),
        "n_items": len({r.item_id for r in responses}),
        "judge_agreement": panel_agreement(responses),
    }


def compute_metrics(store: Store, responses: list[Response] | None = None,
                    modes: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """metrics.json for the run in `store` (`responses`/`modes`: reuse them if the caller already loaded them)."""
    config = store.get_meta("config") or {}
    responses = load_responses(store) if responses is None else responses
    plan = store.plan_counts()
    return {
        "metrics_schema": METRICS_SCHEMA,
        "carryon_version": __version__,
        "dataset_version": store.get_meta("dataset_version"),
        "dataset_sha256": config.get("dataset_sha256"),
        "judge": config.get("judge"),
        "judge_prompt_versions": config.get("judge_prompt_versions"),
        "user": config.get("user"),
        "seed": config.get("seed"),
        "conversations": {"planned": sum(plan.values()), **plan},
        "models": {config.get("target", "unknown"): model_metrics(responses, modes)},
    }
