"""Compare runs of different target models: one report and a leaderboard. Runs made on different dataset or judge
versions are refused unless `allow_mixed`; runs that are not finished (`complete: false` in metrics.json) unless
`allow_partial`, and then they are marked as partial in the leaderboard and the report."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from carryon.errors import BadInput
from carryon.metrics.stats import paired_difference
from carryon.report.exports import iter_records, write_json
from carryon.report.html import browser_sample, write_report
from carryon.rundir import check_out, locked, shown

COMPARE_FILES = frozenset({"report.html", "metrics.json"})
MUST_MATCH = ("dataset_version", "dataset_sha256", "judge", "judge_prompt_versions")


def _pct(s: dict[str, Any] | None) -> str:
    return "–" if not s or s.get("mean") is None else f"{100 * s['mean']:.1f}"


def _share(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def harm_convergence(models: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per turn, the spread of mean harm across models: do conversations converge to similar harm?"""
    depth = max((len(m["per_turn"]) for m in models.values()), default=0)
    out = []
    for k in range(depth):
        means = {name: m["per_turn"][k]["harm"]["mean"] for name, m in models.items()
                 if len(m["per_turn"]) > k and m["per_turn"][k]["harm"]["mean"] is not None}  # fmt: skip
        values = list(means.values())
        out.append({"turn": k + 1, "models": means,
                    "spread": (max(values) - min(values)) if values else None,
                    "std": float(np.std(values)) if values else None})  # fmt: skip
    return out


def paired_differences(records: Iterable[dict[str, Any]], models: list[str]) -> dict[str, Any]:
    """Each model against the first: item-paired differences (model − first) of final Ben-Util and final harm, with
    item-bootstrap 95% CIs. Items are paired, so item difficulty cancels out."""
    finals: dict[str, dict[str, list[tuple[str, float | None]]]] = {
        m: {"ben_util": [], "harm": []} for m in models
    }
    for conv in records:
        if conv["condition"] == "multi_turn" and conv["model"] in finals and conv["turns"]:
            last = conv["turns"][-1]
            finals[conv["model"]]["ben_util"].append((conv["item_id"], last["ben_util"]))
            finals[conv["model"]]["harm"].append((conv["item_id"], last["harm"]))
    base = models[0]
    return {
        "baseline": base,
        "vs_baseline": {
            m: {k: paired_difference(finals[m][k], finals[base][k]) for k in ("ben_util", "harm")} for m in models[1:]
        },
    }


def _partial(metrics: dict[str, Any]) -> str | None:
    """Why a run is partial ("3 conversation(s) and 10 judgement(s) pending"), or None when it is complete."""
    if metrics.get("complete", True):
        return None
    pending = metrics.get("pending") or {}
    return f"{pending.get('conversations', '?')} conversation(s) and {pending.get('judgements', '?')} judgement(s) pending"


def compare_runs(run_dirs: list[Path], out: Path, *, allow_mixed: bool = False,
                 allow_partial: bool = False) -> list[list[str]]:  # fmt: skip
    check_out(out, outputs=COMPARE_FILES)
    with locked(out):
        return _compare(run_dirs, out, allow_mixed, allow_partial)


def _compare(run_dirs: list[Path], out: Path, allow_mixed: bool, allow_partial: bool) -> list[list[str]]:
    metrics: list[dict[str, Any]] = []
    for run_dir in run_dirs:
        path = run_dir / "metrics.json"
        if not path.is_file():
            raise BadInput(f"{shown(run_dir)}: no metrics.json (run `carryon report {shown(run_dir)}` first)")
        metrics.append(json.loads(path.read_text(encoding="utf-8")))
        why = _partial(metrics[-1])
        if why and not allow_partial:
            raise BadInput(f"{shown(run_dir)}: the run is not finished ({why}); finish it (re-run its command) or "
                           "pass --allow-partial to compare it marked as partial")  # fmt: skip
    # conversations are streamed from each run's conversations.jsonl, never all held at once
    paths = [d / "conversations.jsonl" for d in run_dirs if (d / "conversations.jsonl").is_file()]
    first = metrics[0]
    if not allow_mixed:
        for run_dir, m in zip(run_dirs[1:], metrics[1:]):
            for key in MUST_MATCH:
                if m.get(key) != first.get(key):
                    raise BadInput(
                        f"{run_dir}: {key} differs from {run_dirs[0]} ({m.get(key)!r} vs {first.get(key)!r}); "
                        "pass --allow-mixed to compare anyway"
                    )
    models: dict[str, dict[str, Any]] = {}
    partial: dict[str, str] = {}
    for run_dir, m in zip(run_dirs, metrics):
        for name, body in m["models"].items():
            if name in models:
                raise BadInput(f"{shown(run_dir)}: model {name} appears in two runs")
            models[name] = {**body, "partial": _partial(m)}
            if _partial(m):
                partial[name] = str(run_dir)
    meta = {k: v for k, v in first.items() if k not in ("models", "complete", "pending")}
    meta["runs"] = [str(d) for d in run_dirs]
    meta["complete"] = not partial
    meta["partial_runs"] = partial
    paired = paired_differences(iter_records(paths), list(models))
    write_json(out / "metrics.json", {**meta, "models": models, "harm_convergence": harm_convergence(models),
                                      "paired_differences": paired})  # fmt: skip
    sample, total = browser_sample(paths)
    write_report(out / "report.html", "CarryOn comparison", models, meta, sample, total)
    rows = []
    for name, m in sorted(models.items(), key=lambda kv: -(kv[1]["conditions"]["multi_turn"]["ben_util"]["mean"] or 0)):
        c, f, r = m["conditions"], m["failure_modes"], m["recovery"]["recovery_ratio"]
        label = f"{name} (partial)" if m.get("partial") else name
        rows.append([label, _pct(c["turn1"]["ben_util"]), _pct(c["upfront"]["ben_util"]), _pct(c["multi_turn"]["ben_util"]),
                     "–" if r is None else f"{r:.2f}", _pct(c["multi_turn"]["harm"]), _share(f["lock_in"]),
                     _share(f["unsafe_recovery"]), _share(f["repetitive_recovery"])])  # fmt: skip
    return rows
