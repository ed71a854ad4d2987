"""Compare runs of different target models: one report and a leaderboard. Runs made on different dataset or judge
versions are refused unless `allow_mixed`; runs that are not finished (`complete: false` in metrics.json) unless
`allow_partial`, and then they are marked as partial in the leaderboard and the report."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from carryon.core.errors import BadInput
from carryon.core.stats import paired_difference
from carryon.core.contracts import (
    CONVERSATION_MODES, FAILURE_MODES, PAIR_MODES, ConversationRecord, Discrimination, ModelMetrics, RunMetrics,
    Summary, read_metrics, read_records,
)  # fmt: skip
from carryon.core.io import write_json
from carryon.report.html import browser_sample, write_report
from carryon.rundir import check_out, locked, shown

COMPARE_FILES = frozenset({"report.html", "metrics.json"})
MUST_MATCH = ("dataset_version", "dataset_sha256", "judge", "judge_prompt_versions")


def _pct(s: Summary | None) -> str:
    return "–" if s is None or s.mean is None else f"{100 * s.mean:.1f}"


def _share(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _auroc(d: Discrimination | None) -> str:
    return "–" if d is None or d.auroc is None else f"{d.auroc:.2f}"


def harm_convergence(models: dict[str, ModelMetrics]) -> list[dict[str, Any]]:
    """Per turn, the spread of mean harm across models: do conversations converge to similar harm?"""
    depth = max((len(m.per_turn) for m in models.values()), default=0)
    out = []
    for k in range(depth):
        means = {name: m.per_turn[k].harm.mean for name, m in models.items()
                 if len(m.per_turn) > k and m.per_turn[k].harm.mean is not None}  # fmt: skip
        values = [v for v in means.values() if v is not None]
        out.append({"turn": k + 1, "models": means,
                    "spread": (max(values) - min(values)) if values else None,
                    "std": float(np.std(values)) if values else None})  # fmt: skip
    return out


def paired_differences(records: Iterable[ConversationRecord], models: list[str]) -> dict[str, Any]:
    """Each model against the first: item-paired differences (model − first) of final Ben-Util and final harm, with
    item-bootstrap 95% CIs. Items are paired, so item difficulty cancels out."""
    finals: dict[str, dict[str, list[tuple[str, float | None]]]] = {
        m: {"ben_util": [], "harm": []} for m in models
    }
    for conv in records:
        if conv.condition == "multi_turn" and conv.model in finals and conv.turns:
            last = conv.turns[-1]
            finals[conv.model]["ben_util"].append((conv.item_id, last.ben_util))
            finals[conv.model]["harm"].append((conv.item_id, last.harm))
    base = models[0]
    return {
        "baseline": base,
        "vs_baseline": {
            m: {k: paired_difference(finals[m][k], finals[base][k]) for k in ("ben_util", "harm")} for m in models[1:]
        },
    }


LEADERBOARD = ("model", "turn 1", "upfront", "final", "recovery", "harm final",
               *(FAILURE_MODES[m] for m in CONVERSATION_MODES), "discrimination", *(FAILURE_MODES[m] for m in PAIR_MODES))
"""The leaderboard's columns: the failure modes of a conversation, intent discrimination (AUROC), those of a pair."""


def _partial(metrics: RunMetrics) -> str | None:
    """Why a run is partial ("3 conversation(s) and 10 judgement(s) pending"), or None when it is complete."""
    if metrics.complete:
        return None
    pending = metrics.pending
    if pending is None:
        return "? conversation(s) and ? judgement(s) pending"
    return f"{pending.conversations} conversation(s) and {pending.judgements} judgement(s) pending"


def read_runs(run_dirs: list[Path], *, allow_mixed: bool = False, allow_partial: bool = False) -> list[RunMetrics]:
    """Each run's metrics.json, validated (BadInput names the file and field that is wrong); runs on different
    dataset or judge versions refused unless `allow_mixed`, unfinished runs unless `allow_partial`. Writes nothing."""
    metrics: list[RunMetrics] = []
    for run_dir in run_dirs:
        path = run_dir / "metrics.json"
        if not path.is_file():
            raise BadInput(f"{shown(run_dir)}: no metrics.json (run `carryon report {shown(run_dir)}` first)")
        metrics.append(read_metrics(path))
        why = _partial(metrics[-1])
        if why and not allow_partial:
            raise BadInput(f"{shown(run_dir)}: the run is not finished ({why}); finish it (re-run its command) or "
                           "pass --allow-partial to compare it marked as partial")  # fmt: skip
    first = metrics[0]
    if not allow_mixed:
        for run_dir, m in zip(run_dirs[1:], metrics[1:]):
            for key in MUST_MATCH:
                if getattr(m, key) != getattr(first, key):
                    raise BadInput(
                        f"{shown(run_dir)}: {key} differs from {shown(run_dirs[0])} ({getattr(m, key)!r} vs "
                        f"{getattr(first, key)!r}); pass --allow-mixed to compare anyway"
                    )
    return metrics


def compare_runs(run_dirs: list[Path], out: Path, *, allow_mixed: bool = False,
                 allow_partial: bool = False) -> list[list[str]]:  # fmt: skip
    """Check, then write: validate each run (`read_runs`) and OUT (a new folder or an earlier comparison), then, with
    OUT locked, write OUT/metrics.json and OUT/report.html; return the leaderboard rows."""
    metrics = read_runs(run_dirs, allow_mixed=allow_mixed, allow_partial=allow_partial)
    check_out(out, outputs=COMPARE_FILES)
    with locked(out):
        return _compare(run_dirs, metrics, out)


def _compare(run_dirs: list[Path], metrics: list[RunMetrics], out: Path) -> list[list[str]]:
    # conversations are streamed from each run's conversations.jsonl, never all held at once
    paths = [d / "conversations.jsonl" for d in run_dirs if (d / "conversations.jsonl").is_file()]
    models: dict[str, ModelMetrics] = {}
    partial: dict[str, str] = {}
    why: dict[str, str | None] = {}
    for run_dir, m in zip(run_dirs, metrics):
        for name, body in m.models.items():
            if name in models:
                raise BadInput(f"{shown(run_dir)}: model {name} appears in two runs")
            models[name] = body
            why[name] = _partial(m)
            if why[name]:
                partial[name] = str(run_dir)
    meta = metrics[0].model_dump(mode="json", exclude={"models", "complete", "pending"})
    meta["runs"] = [str(d) for d in run_dirs]
    meta["complete"] = not partial
    meta["partial_runs"] = partial
    paired = paired_differences(read_records(paths), list(models))
    dumped = {name: {**m.model_dump(mode="json"), "partial": why[name]} for name, m in models.items()}
    write_json(out / "metrics.json", {**meta, "models": dumped, "harm_convergence": harm_convergence(models),
                                      "paired_differences": paired})  # fmt: skip
    sample, total = browser_sample(paths)
    write_report(out / "report.html", "CarryOn comparison", dumped, meta, sample, total)
    rows = []
    for name, model in sorted(models.items(), key=lambda kv: -(kv[1].conditions["multi_turn"].ben_util.mean or 0)):
        c, f, r = model.conditions, model.failure_modes, model.recovery.recovery_ratio
        label = f"{name} (partial)" if why[name] else name
        rows.append([label, _pct(c["turn1"].ben_util), _pct(c["upfront"].ben_util), _pct(c["multi_turn"].ben_util),
                     "–" if r is None else f"{r:.2f}", _pct(c["multi_turn"].harm),
                     *(_share(getattr(f, mode)) for mode in CONVERSATION_MODES), _auroc(model.discrimination),
                     *(_share(getattr(f, mode)) for mode in PAIR_MODES)])  # fmt: skip
    return rows
