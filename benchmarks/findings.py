"""The paper's qualitative findings vs what CarryOn measures on the two bundled models (docs/findings.md).

    python benchmarks/findings.py [--out runs/findings] [--items 26] [--budget-min 60]

A fixed, seeded sample of the built-in dataset (`--items`, stratified by category: the same items every time,
written to OUT/sample.jsonl) is played against each target (`local/qwen2.5-coder-1.5b` and `local/qwen2.5-coder-0.5b`
by default) with the bundled 1.5B model as judge and the scripted user, `--sequences 5 --max-turns 6`: the upfront
baseline and five two-move sequences — pure intent (purpose → narrowing, purpose → context), pure pushback, pure
disengage, and pushback → purpose. With `--conditions all` (the default) the malicious twin plays the same
sequences.

Resumable and incremental: each target's run lives in OUT/<target>/, and the script grows both runs item by item
(`--limit 1, 2, …`, which resumes a run: every call made is cached), so stopping at any time (Ctrl-C, or
`--budget-min`) keeps everything done, and the next invocation carries on. Then it reads each run's metrics.json and
conversations.jsonl and writes OUT/findings.json and OUT/findings.md: each claim of the paper beside CarryOn's figure
with its 95% CI (bootstrapped over items) and whether it agrees.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from carryon.config import RunConfig
from carryon.data.load import builtin_path, load_items
from carryon.core.moves import MOVES, Move
from carryon.core.stats import BOOTSTRAP_SAMPLES, BOOTSTRAP_SEED, paired_difference, summarize
from carryon.pipeline import run

TARGETS = ("local/qwen2.5-coder-1.5b", "local/qwen2.5-coder-0.5b")
JUDGE = "local/qwen2.5-coder-1.5b"
REFUSAL_TYPES = ("direct_refusal", "explanation_refusal")


def write_sample(out: Path, n: int, seed: int, dataset: Path | None = None) -> Path:
    """`n` items, round-robin over categories in a seeded order (each category's items shuffled by `seed`)."""
    path = out / "sample.jsonl"
    lines = (dataset or builtin_path()).read_text(encoding="utf-8").splitlines()
    items = {i.id: i for i in load_items(dataset)}
    by_cat: dict[str, list[str]] = defaultdict(list)
    for line in lines:
        if line.strip():
            body = json.loads(line)
            if body["id"] in items:
                by_cat[body["category"]].append(line)
    rng = random.Random(seed)
    for group in by_cat.values():
        rng.shuffle(group)
    order = sorted(by_cat)
    picked: list[str] = []
    while len(picked) < n and any(by_cat.values()):
        for cat in order:
            if by_cat[cat] and len(picked) < n:
                picked.append(by_cat[cat].pop(0))
    text = "\n".join(picked) + "\n"
    if path.exists() and path.read_text(encoding="utf-8") != text:
        raise SystemExit(f"{path} holds another sample (other --items/--seed?): use another --out")
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _config(target: str, judge: str, sample: Path, out: Path, limit: int, args: argparse.Namespace) -> RunConfig:
    return RunConfig(target=target, judge=[judge], dataset=str(sample), limit=limit, sequences=5, max_turns=6,
                     max_tokens=args.max_tokens, seed=args.seed, out=out, conditions=args.conditions)  # fmt: skip


def grow(args: argparse.Namespace, sample: Path, targets: list[str]) -> dict[str, Any]:
    """Extend each target's run one item at a time (targets taking turns) until all items or the budget is spent."""
    started = time.monotonic()
    log: dict[str, Any] = {"steps": []}
    for limit in range(1, args.items + 1):
        for target in targets:
            if args.budget_min and time.monotonic() - started > args.budget_min * 60:
                log["stopped"] = f"budget of {args.budget_min} min spent"
                return log
            step = time.monotonic()
            outcome = run(_config(target, args.judge, sample, run_dir(args.out, target), limit, args))
            log["steps"].append({"target": target, "items": limit, "seconds": round(time.monotonic() - step, 1),
                                 "calls_made": outcome.made})  # fmt: skip
            print(f"{target}: {limit} item(s) done ({time.monotonic() - step:.0f}s, {outcome.made} calls made)",
                  flush=True)  # fmt: skip
    return log


def run_dir(out: Path, target: str) -> Path:
    return out / target.replace("/", "_")


def convergence(convs: list[dict[str, Any]]) -> dict[str, Any]:
    """Harm of conversations that open with a refusal vs the rest, at the first and the last response: the gap at
    the end minus the gap at the start (negative = converging), with an item-bootstrap CI; and how much utility the
    refusal-start conversations recover."""
    records = []
    for c in convs:
        turns = c["turns"]
        if c["condition"] != "multi_turn" or len(turns) < 2 or turns[0]["response_type"] is None:
            continue
        if None in (turns[0]["harm"], turns[-1]["harm"], turns[0]["ben_util"], turns[-1]["ben_util"]):
            continue
        refused = turns[0]["response_type"] in REFUSAL_TYPES
        records.append((c["item_id"], refused, turns[0]["harm"], turns[-1]["harm"], turns[0]["ben_util"],
                        turns[-1]["ben_util"]))  # fmt: skip
    by_item: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for rec in records:
        by_item[rec[0]].append(rec)

    def gaps(recs: list[tuple[Any, ...]]) -> tuple[float, float] | None:
        ref = [r for r in recs if r[1]]
        other = [r for r in recs if not r[1]]
        if not ref or not other:
            return None
        start = np.mean([r[2] for r in ref]) - np.mean([r[2] for r in other])
        end = np.mean([r[3] for r in ref]) - np.mean([r[3] for r in other])
        return float(start), float(end)

    all_recs = [r for recs in by_item.values() for r in recs]
    g = gaps(all_recs)
    change = None if g is None else abs(g[1]) - abs(g[0])
    keys = sorted(by_item)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    boot = []
    for _ in range(BOOTSTRAP_SAMPLES if len(keys) >= 2 else 0):
        sample = [r for i in rng.integers(0, len(keys), len(keys)) for r in by_item[keys[i]]]
        gb = gaps(sample)
        if gb is not None:
            boot.append(abs(gb[1]) - abs(gb[0]))
    ci = (float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))) if boot else (None, None)
    refusal_recovery = summarize([(r[0], r[5] - r[4]) for r in all_recs if r[1]])
    return {
        "n_refusal_start": sum(1 for r in all_recs if r[1]),
        "n_other_start": sum(1 for r in all_recs if not r[1]),
        "harm_gap_start": None if g is None else g[0],
        "harm_gap_end": None if g is None else g[1],
        "gap_shrinks_by": None if change is None else -change,
        "gap_change_ci": ci,
        "refusal_start_utility_gain": refusal_recovery,
    }


def _verdict(low: float | None, high: float | None, expect: str) -> str:
    """`expect`: 'positive' (the paper finds > 0), 'negative' (< 0) or 'nonnegative' (≥ 0: the CI must lie at or
    above zero to agree — a CI that merely reaches zero from below cannot tell "recovers" from "falls short")."""
    if low is None or high is None:
        return "not enough data"
    if expect == "positive":
        return "agrees" if low > 0 else ("disagrees" if high < 0 else "inconclusive (CI includes 0)")
    if expect == "negative":
        return "agrees" if high < 0 else ("disagrees" if low > 0 else "inconclusive (CI includes 0)")
    return "agrees" if low >= 0 else ("disagrees" if high < 0 else "inconclusive (CI includes 0)")


def findings_of(run: Path) -> dict[str, Any]:
    metrics = json.loads((run / "metrics.json").read_text())
    model_name, m = next(iter(metrics["models"].items()))
    convs = [json.loads(line) for line in (run / "conversations.jsonl").read_text().splitlines() if line.strip()]
    turn1 = [(c["item_id"], c["turns"][0]["ben_util"]) for c in convs if c["condition"] == "multi_turn"]
    upfront = [(c["item_id"], c["turns"][0]["ben_util"]) for c in convs if c["condition"] == "upfront"]
    # the paper's recovery claim is about clarification: the sequences with an intent-revealing move (not pure
    # pushback or pure disengagement, which reveal nothing)
    final = [(c["item_id"], c["turns"][-1]["ben_util"]) for c in convs
             if c["condition"] == "multi_turn" and any(MOVES[Move(m)].family == "intent" for m in c["moves"])]
    gap = paired_difference(upfront, turn1)
    rec = paired_difference(final, upfront)
    effects = m["move_effects"]
    rows: list[dict[str, Any]] = []

    def row(claim: str, paper: str, figure: str, low: float | None, high: float | None, expect: str,
            extra: dict[str, Any] | None = None) -> None:  # fmt: skip
        rows.append({"claim": claim, "paper": paper, "carryon": figure, "ci": [low, high],
                     "verdict": _verdict(low, high, expect), **(extra or {})})  # fmt: skip

    def pct(s: dict[str, Any] | None, key: str = "mean") -> str:
        return "–" if not s or s.get(key) is None else f"{100 * s[key]:.1f}"

    def ci(s: dict[str, Any]) -> str:
        return "" if s.get("ci_low") is None else f" [{100 * s['ci_low']:.1f}, {100 * s['ci_high']:.1f}]"

    c = m["conditions"]
    row("Turn-1 utility is low and stating the purpose up front raises it",
        "turn 1 fulfils 10.5–37.6% of the benign need, upfront 25.1–72.1% (every model higher up front)",
        f"turn 1 {pct(c['turn1']['ben_util'])}%, upfront {pct(c['upfront']['ben_util'])}%; "
        f"upfront − turn 1 = {pct(gap)}{ci(gap)} pp", gap["ci_low"], gap["ci_high"], "positive")
    row("Multi-turn clarification recovers to the upfront baseline",
        "13 of 14 models meet or exceed their upfront utility after clarification",
        f"final (sequences with an intent move) − upfront = {pct(rec)}{ci(rec)} pp; recovery ratio (all sequences) "
        f"{m['recovery']['recovery_ratio'] if m['recovery']['recovery_ratio'] is None else round(m['recovery']['recovery_ratio'], 2)}",
        rec["ci_low"], rec["ci_high"], "nonnegative")
    for key, claim, paper, expect in (
        ("family:intent", "Each intent-revealing follow-up adds utility", "+10.3 pp per intent-revealing move", "positive"),
        ("pushback", "Pushback lowers utility", "pushback drops utility (with no safety gain)", "negative"),
        ("disengage", "Disengaging ('hmm') makes the model more cautious", "utility drops after disengagement", "negative"),
    ):  # fmt: skip
        e = (effects.get(key) or {}).get("ben_util_delta") or {}
        h = (effects.get(key) or {}).get("harm_delta") or {}
        row(claim, paper, f"Δ Ben-Util {pct(e)}{ci(e)} pp (harm Δ {pct(h)}{ci(h)} pp; n={e.get('n', 0)})",
            e.get("ci_low"), e.get("ci_high"), expect)
    conv = convergence(convs)
    gain = conv["refusal_start_utility_gain"]
    row("Hard refusals at turn 1 give no lasting safety advantage: harm converges",
        "refusal-start conversations recover the most utility (0 → 48.4%) and end at similar harm",
        f"harm gap (refusal-start − other) {_f(conv['harm_gap_start'])} → {_f(conv['harm_gap_end'])}; "
        f"the gap shrinks by {_f(conv['gap_shrinks_by'])} (CI of the growth {_ci2(conv['gap_change_ci'])}); "
        f"refusal-start utility gain {pct(gain)}{ci(gain)} pp (n={conv['n_refusal_start']} vs {conv['n_other_start']})",
        conv["gap_change_ci"][0], conv["gap_change_ci"][1], "negative", {"convergence": conv})
    fm = m["failure_modes"]
    for mode in ("lock_in", "unsafe_recovery", "repetitive_recovery"):
        s = fm["ci"][mode]
        share = fm[mode]
        rows.append({"claim": f"Failure mode {mode.replace('_', ' ')} occurs", "paper": "observed across models",
                     "carryon": f"{_f(share, 100)}% [{_f(s['ci_low'], 100)}, {_f(s['ci_high'], 100)}] of "
                                f"{fm['n_conversations']} conversations",
                     "ci": [s["ci_low"], s["ci_high"]],
                     "verdict": "not enough data" if share is None else ("agrees (observed)" if share > 0 else
                                                                         "not observed in this sample")})  # fmt: skip
    if "discrimination" in m:  # the malicious twin (issue 14)
        d = m["discrimination"]
        twin = metrics.get("conditions", "all") != "benign"
        rows.append({"claim": "Models help the benign user more than the malicious twin making the same moves",
                     "paper": "conversations converge to similar harm whatever the start: models need better ways "
                              "to tell benign users from adversaries (not measured in the paper)",
                     "carryon": f"discrimination AUROC {_f(d.get('auroc'))} [{_f(d.get('ci_low'))}, "
                                f"{_f(d.get('ci_high'))}] (0.5 = blind to intent)",
                     "ci": [d.get("ci_low"), d.get("ci_high")],
                     "verdict": _verdict(None if d.get("ci_low") is None else d["ci_low"] - 0.5,
                                         None if d.get("ci_high") is None else d["ci_high"] - 0.5, "positive")
                     if twin else "not run (benign user only: --conditions benign)"})
    return {"model": model_name, "items": m["n_items"], "responses": m["n_responses"], "rows": rows,
            "judge": metrics.get("judge"), "judge_prompt_versions": metrics.get("judge_prompt_versions")}


def _f(x: float | None, scale: float = 1.0) -> str:
    return "–" if x is None else f"{scale * x:.2f}" if scale == 1.0 else f"{scale * x:.1f}"


def _ci2(ci: tuple[float | None, float | None] | list[float | None]) -> str:
    return "–" if ci[0] is None else f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def to_markdown(results: list[dict[str, Any]], log: dict[str, Any]) -> str:
    lines = []
    for r in results:
        lines.append(f"### {r['model']} — {r['items']} items, {r['responses']} responses\n")
        lines.append("| claim | the paper | CarryOn (95% CI by item) | verdict |")
        lines.append("| --- | --- | --- | --- |")
        for row in r["rows"]:
            lines.append(f"| {row['claim']} | {row['paper']} | {row['carryon']} | {row['verdict']} |")
        lines.append("")
    seconds = sum(s["seconds"] for s in log.get("steps", []))
    lines.append(f"Run time this invocation: {seconds / 60:.1f} min over {len(log.get('steps', []))} step(s)"
                 + (f"; {log['stopped']}" if log.get("stopped") else "") + "; all sittings: "
                 f"{log.get('total_seconds', seconds) / 60:.1f} min over {log.get('sittings', 1)}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/findings"))
    parser.add_argument("--items", type=int, default=26, help="sample size (≥ 24 for the findings doc)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--judge", default=JUDGE)
    parser.add_argument("--max-tokens", type=int, default=256, help="target tokens per response")
    parser.add_argument("--conditions", default="all", help="'all' adds the malicious twin; 'benign' plays the benign user only")
    parser.add_argument("--budget-min", type=float, default=0, help="stop growing the runs after this many minutes")
    parser.add_argument("--dataset", type=Path, default=None, help="sample from this dataset (default: built-in)")
    parser.add_argument("--report-only", action="store_true", help="only summarise what the runs hold")
    args = parser.parse_args()
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    sample = write_sample(args.out, args.items, args.seed, args.dataset)
    log: dict[str, Any] = {"steps": []}
    if not args.report_only:
        try:
            log = grow(args, sample, targets)
        except KeyboardInterrupt:
            log["stopped"] = "interrupted"
    results = [findings_of(run_dir(args.out, t)) for t in targets if (run_dir(args.out, t) / "metrics.json").exists()]
    previous = args.out / "findings.json"
    history = json.loads(previous.read_text()).get("history", []) if previous.exists() else []
    if log.get("steps"):  # every sitting that grew the runs, so the page can say how long the whole run took
        history.append({"steps": log["steps"], "stopped": log.get("stopped")})
    log["sittings"] = len(history)
    log["total_seconds"] = round(sum(s["seconds"] for h in history for s in h["steps"]), 1)
    (args.out / "findings.json").write_text(json.dumps({"results": results, "log": log, "history": history},
                                                       indent=2) + "\n")  # fmt: skip
    (args.out / "findings.md").write_text(to_markdown(results, log))
    print(to_markdown(results, log))


if __name__ == "__main__":
    main()
