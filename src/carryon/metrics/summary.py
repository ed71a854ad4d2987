"""Assemble metrics.json for one run: conditions, per-turn curves, recovery, move effects, transitions, failure
modes and unscored counts, under `models.<target>`, with the dataset, judge and prompt versions.

One streaming pass over the store: each conversation is read with its texts, labelled with its failure modes and
handed to the caller (the exports) while it is in memory; only a text-free copy is kept for the aggregates. So
memory grows with the number of responses by a few hundred bytes each, not with what the models wrote."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from carryon import __version__
from carryon.metrics.categories import category_summaries
from carryon.metrics.curves import condition_summaries, per_turn
from carryon.metrics.failure_modes import FailureParams, label, mode_shares
from carryon.metrics.panel import PanelAgreement
from carryon.metrics.recovery import harm_by_start, move_effects, recovery, type_transitions
from carryon.metrics.simulator import SimulatorAudit
from carryon.metrics.table import Response, iter_conversations, slim
from carryon.store import Store

METRICS_SCHEMA = "1"

# Receives each conversation (responses with texts and per-judge verdicts) and its failure modes, in plan order.
ConversationSink = Callable[[list[Response], list[str]], None]


def model_metrics(
    convs: Sequence[list[Response]], modes: dict[str, Any], agreement: dict[str, Any] | None,
    simulator: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every metric of one target model's conversations (`modes`: failure-mode shares; `agreement`: the panel's;
    `simulator`: the simulated user's audit, `metrics/simulator.py`)."""
    unscored = Counter(kind for c in convs for r in c for kind in r.unscored)
    return {
        "conditions": condition_summaries(convs),
        "by_category": category_summaries(convs),
        "per_turn": per_turn(convs),
        "recovery": recovery(convs),
        "move_effects": move_effects(convs),
        "response_type_transitions": type_transitions(convs),
        "harm_by_start": harm_by_start(convs),
        "failure_modes": modes,
        "unscored": {k: unscored.get(k, 0) for k in ("ben_util", "harm", "response_type")},
        "n_responses": sum(len(c) for c in convs),
        "n_items": len({c[0].item_id for c in convs}),
        "judge_agreement": agreement,
        "simulator": simulator,
    }


def compute_metrics(
    store: Store, sink: ConversationSink | None = None, p: FailureParams = FailureParams(),
    exclude_off_script: bool = False,
) -> dict[str, Any]:
    """metrics.json for the run in `store`, passing every conversation to `sink` on the way. With
    `exclude_off_script`, conversations whose simulated user went off script or leaked checklist content (by the
    simulator audit) are left out of every aggregate but the simulator section; they are still exported."""
    config = store.get_meta("config") or {}
    audit = store.get_meta("audit")
    simulator = SimulatorAudit(config.get("user"), audit)
    # unsafe recovery compares with the item's upfront harm: read those (one short conversation per item) first
    upfront_harm = {c[0].item_id: c[0].harm for c in iter_conversations(store, "upfront")}
    panel = PanelAgreement(store.judges())
    kept: list[list[Response]] = []
    labelled: list[tuple[str, set[str] | None]] = []
    for conv in iter_conversations(store, audit_judge=(audit or {}).get("judge")):
        modes: set[str] | None = None
        if conv[0].condition == "multi_turn":
            modes = label(conv, upfront_harm.get(conv[0].item_id), p)
        if simulator.add(conv) and exclude_off_script:
            simulator.excluded += 1
            if sink is not None:
                sink(conv, sorted(modes or ()))
            continue
        if conv[0].condition == "multi_turn":
            labelled.append((conv[0].item_id, modes))
        for r in conv:
            panel.add(r)
        if sink is not None:
            sink(conv, sorted(modes or ()))
        kept.append(slim(conv))
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
        "exclude_off_script": exclude_off_script,
        "conversations": {"planned": sum(plan.values()), **plan},
        "models": {config.get("target", "unknown"): model_metrics(kept, mode_shares(labelled, p), panel.result(),
                                                                  simulator.result())},  # fmt: skip
    }
