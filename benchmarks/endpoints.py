"""Several endpoints per role: throughput against 1, 2 and 4 fake replicas with injected latency, and prefix affinity.

    python benchmarks/endpoints.py [--quick] [--delay-s 0.1] [--slots 4] [--concurrency 48]

Each fake endpoint behaves like one GPU replica (`carryon.testing.server --delay-s D --slots S`): a completion takes
D seconds and at most S run at once, the rest queue — so one endpoint serves at most S/D calls a second, and a run
against N of them can go N times as fast if CarryOn spreads the load. Target and judge both use the endpoints
(`--base-url URL1,URL2,…`), as when one vLLM deployment serves both. Throughput is counted over the calling phase
(first to last model call in the call log), so the fixed start-up and report time do not blur the ratio; wall time is
printed too.

Prefix affinity: each fake endpoint models a prefix cache and counts, for every call that continues a conversation,
whether it computed that conversation's previous turn (`/stats`); the hit rate is hits / such calls over all
endpoints (random placement would give about 1/N). Last line: `ratio: X` = calls/s with 4 endpoints ÷ with 1
(goal ≥ 3.5). Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import start_server  # noqa: E402  (the same fake-server launcher the tests use)


def run_once(n: int, args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    servers = [start_server("--delay-s", str(args.delay_s), "--slots", str(args.slots)) for _ in range(n)]
    try:
        bases = [base for _, base in servers]
        out = tmp / f"endpoints-{n}"
        cmd = [sys.executable, "-c", "from carryon.cli import main; main()", "run",
               "--target", "openai-api/ideal", "--judge", "openai-api/judge", "--base-url", ",".join(bases),
               "--limit", str(args.items), "--sequences", str(args.sequences),
               "--concurrency", str(args.concurrency), "--out", str(out), "--quiet"]  # fmt: skip
        started = time.perf_counter()
        result = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if result.returncode != 0:
            sys.exit(f"run with {n} endpoint(s) failed: {result.stderr}")
        prefix = [httpx.get(f"{b}/stats").json()["prefix"].get("ideal", {"eligible": 0, "hits": 0}) for b in bases]
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait(10)
    with sqlite3.connect(out / "run.sqlite") as db:
        made, first, last = db.execute("SELECT COUNT(*), MIN(ts), MAX(ts) FROM call_log WHERE cached=0").fetchone()
        responses = db.execute("SELECT COUNT(*) FROM turns").fetchone()[0]
        spread = [c for (c,) in db.execute("SELECT COUNT(*) FROM call_log WHERE cached=0 GROUP BY endpoint")]
    span = max(last - first, 1e-9)
    eligible = sum(p["eligible"] for p in prefix)
    hits = sum(p["hits"] for p in prefix)
    return {"n": n, "made": made, "responses": responses, "wall": wall, "span": span, "calls_s": made / span,
            "hit_rate": hits / eligible if eligible else float("nan"), "eligible": eligible,
            "balance": min(spread) / max(spread)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a smaller run (under 5 minutes on 2 cores)")
    parser.add_argument("--items", type=int, default=None)
    parser.add_argument("--sequences", type=int, default=None)
    parser.add_argument("--delay-s", type=float, default=0.1, help="seconds per completion on a fake endpoint")
    parser.add_argument("--slots", type=int, default=4, help="completions at once per fake endpoint")
    parser.add_argument("--concurrency", type=int, default=48)
    args = parser.parse_args()
    args.items = args.items or (16 if args.quick else 60)
    args.sequences = args.sequences or (3 if args.quick else 5)
    capacity = args.slots / args.delay_s
    print(f"{args.items} items × {args.sequences} sequences; each endpoint: {args.delay_s:.2f} s per completion, "
          f"{args.slots} at once (≤ {capacity:.0f} calls/s); --concurrency {args.concurrency}")  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, 2, 4):
            row = run_once(n, args, Path(tmp))
            rows.append(row)
            print(f"endpoints {n}: {row['made']:.0f} calls made in {row['span']:.1f} s -> {row['calls_s']:.1f} calls/s "
                  f"({row['calls_s'] / (n * capacity):.0%} of capacity), {row['responses'] / row['span']:.1f} "
                  f"responses/s, wall {row['wall']:.1f} s; prefix-affinity hit rate {row['hit_rate']:.3f} "
                  f"({row['eligible']:.0f} continuing calls); busiest/quietest endpoint {1 / row['balance']:.2f}",
                  flush=True)  # fmt: skip
    one, four = rows[0], rows[-1]
    print(f"speed-up: 2 endpoints {rows[1]['calls_s'] / one['calls_s']:.2f}x, 4 endpoints "
          f"{four['calls_s'] / one['calls_s']:.2f}x (goal ≥ 3.5); affinity hit rate with 4: {four['hit_rate']:.3f}")
    print(f"ratio: {four['calls_s'] / one['calls_s']:.2f}")


if __name__ == "__main__":
    main()
