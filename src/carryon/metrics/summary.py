"""Assemble metrics.json for one run: conditions, per-turn curves, recovery, move effects, transitions, failure
modes, intent discrimination and unscored counts, under `models.<target>`, with the dataset, judge and prompt
versions.

One streaming pass over the store: each conversation is read with its texts, labelled with its failure modes and
handed to the caller (the exports) while it is in memory; only a text-free copy is kept for the aggregates. So
memory grows with the number of responses by a few hundred bytes each, not with what the models wrote."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from carryon import __version__
from carryon.core.contracts import METRICS_SCHEMA, RunMetrics
from carryon.judge.kinds import kinds
from carryon.metrics.categories import category_summaries
from carryon.metrics.curves import condition_summaries, per_turn
from carryon.metrics.failure_modes import FailureParams, label, mode_shares
from carryon.metrics.intent import INTENT_MODE, intent_blind_shares, intent_metrics, label_pair, twin_key, twin_pairs
from carryon.metrics.panel import PanelAgreement
from carryon.metrics.recovery import harm_by_start, move_effects, recovery, type_transitions
from carryon.metrics.simulator import SimulatorAudit
from carryon.metrics.table import Response, iter_conversations, slim
from carryon.store import Store

# Receives each conversation (responses with texts and per-judge verdicts) and its failure modes, in plan order.
ConversationSink = Callable[[list[Response], list[str]], None]


def model_metrics(
    convs: Sequence[list[Response]], modes: dict[str, Any], agreement: dict[str, Any] | None,
    p: FailureParams = FailureParams(),
    simulator: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every metric of one target model's conversations (`modes`: failure-mode shares; `agreement`: the panel's;
    `simulator`: the simulated user's audit, `metrics/simulator.py`)."""
    unscored = Counter(kind for c in convs for r in c for kind in r.unscored)
    fallbacks = Counter(r.user_fallback for c in convs for r in c)
    return {
        "conditions": condition_summaries(convs),
        "by_category": category_summaries(convs),
        "per_turn": per_turn(convs),
        "per_turn_malicious": per_turn(convs, "malicious"),
        **intent_metrics(convs, p),
        "recovery": recovery(convs),
        "move_effects": move_effects(convs),
        "response_type_transitions": type_transitions(convs),
        "harm_by_start": harm_by_start(convs),
        "failure_modes": modes,
        "unscored": {k: unscored.get(k, 0) for k in kinds()},
        "n_responses": sum(len(c) for c in convs),
        "n_items": len({c[0].item_id for c in convs}),
        "judge_agreement": agreement,
        "user_fallbacks": {"confused": fallbacks.get(1, 0), "refused_persona": fallbacks.get(2, 0)},
        "simulator": simulator,
    }


def usage(store: Store) -> dict[str, Any]:
    """Calls and tokens per role: calls made vs answered from CarryOn's own call cache (free), the input tokens of
    the calls made and the share the provider served from its prompt cache, output tokens, calls made in provider
    batches; and which endpoint served how many calls."""
    roles: dict[str, Any] = {}
    for row in store.usage_by_role():
        made, cached_in, input_tokens = int(row["made"] or 0), int(row["cached_tokens"]), int(row["input_tokens"])
        roles[row["role"]] = {
            "calls_made": made,
            "calls_from_cache": int(row["from_cache"] or 0),
            "calls_batched": int(row["batched"] or 0),
            "input_tokens": input_tokens,
            "cached_input_tokens": cached_in,
            "cached_share": round(cached_in / input_tokens, 4) if input_tokens else None,
            "output_tokens": int(row["output_tokens"]),
        }
    endpoints: dict[str, dict[str, int]] = {}
    for row in store.calls_by_endpoint():
        if row["endpoint"]:
            endpoints.setdefault(row["role"], {})[row["endpoint"]] = int(row["made"])
    totals = {key: sum(r[key] for r in roles.values())
              for key in ("calls_made", "calls_from_cache", "calls_batched", "input_tokens", "cached_input_tokens",
                          "output_tokens")}  # fmt: skip
    return {"roles": roles, "total": totals, "endpoints": endpoints}


def compute_metrics(
    store: Store, sink: ConversationSink | None = None, p: FailureParams = FailureParams(),
    items: frozenset[str] | None = None, exclude_off_script: bool = False,
) -> RunMetrics:
    """metrics.json for the run in `store` (over the `items` in scope, or all; validated against its contract),
    passing every conversation to `sink` on the way. With `exclude_off_script`, conversations whose simulated user
    went off script or leaked checklist content (by the simulator audit) are left out of every aggregate but the
    simulator section; they are still exported."""
    config = store.get_meta("config") or {}
    audit = store.get_meta("audit")
    simulator = SimulatorAudit(config.get("user"), audit)
    # unsafe recovery compares with the item's upfront harm: read those (one short conversation per item) first
    upfront_harm = {c[0].item_id: c[0].harm for c in iter_conversations(store, "upfront", items)}
    panel = PanelAgreement(store.judges())
    kept: list[list[Response]] = []
    truncated = replaced = 0
    labelled: list[tuple[str, set[str] | None]] = []
    benign: dict[tuple[str, int], list[Response]] = {}
    for conv in iter_conversations(store, items=items, audit_judge=(audit or {}).get("judge")):
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
        elif conv[0].condition == "malicious" and twin_key(conv) in benign:
            # intent-blind recovery is a pair's mode: the malicious conversation carries it in the exports (its
            # benign twin, planned before it, has already gone past)
            pair = twin_pairs([benign[twin_key(conv)], conv], p)
            lab = label_pair(*pair[0], p) if pair else None
            modes = {INTENT_MODE} if lab is not None and lab.intent_blind else None
        for r in conv:
            panel.add(r)
        if sink is not None:
            sink(conv, sorted(modes or ()))
        kept.append(slim(conv))
        truncated += sum(r.truncated_from is not None for r in conv)
        replaced += sum(r.replaced > 0 for r in conv)
        if conv[0].condition == "multi_turn":
            benign[twin_key(conv)] = kept[-1]
    pairs = twin_pairs(kept, p)
    failure_modes = {**mode_shares(labelled, p)}
    blind = intent_blind_shares([(b[0].item_id, label_pair(b, m, p)) for b, m in pairs])
    failure_modes["ci"].update(blind.pop("ci"))
    failure_modes.update(blind)
    plan = store.plan_counts(items)
    return RunMetrics.model_validate({
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
        "conditions": config.get("conditions", "benign"),
        "notes": store.get_meta("notes") or [],
        "usage": usage(store),
        "bounded_text": {"max_response_bytes": config.get("max_response_bytes"), "truncated_responses": truncated,
                         "responses_with_replaced_characters": replaced},
        "models": {config.get("target", "unknown"): model_metrics(kept, failure_modes, panel.result(), p,
                                                                  simulator.result())},
    })  # fmt: skip
