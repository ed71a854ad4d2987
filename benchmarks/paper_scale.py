"""Paper-scale run against the instant fake server: wall time, calls/s, peak RSS.

    python benchmarks/paper_scale.py [--items 400] [--sequences 15] [--concurrency 64]

400 items × 15 follow-up sequences (+ the upfront baseline) with up to 6 responses each, every response judged
(per-item Ben-Util, harm, response type) by `testing/judge` over real HTTP. `--sequences 24` makes it a
10,000-conversation run (the memory check of docs/reliability.md). Goal: under 5 minutes on 2 cores, memory flat.
Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import start_server  # noqa: E402  (the same fake-server launcher the tests use)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--sequences", type=int, default=15)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    server, base = start_server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run"
            cmd = [sys.executable, "-c", "from carryon.cli import main; main()", "run",
                   "--target", "openai-api/ideal", "--judge", "openai-api/judge", "--base-url", base,
                   "--limit", str(args.items), "--sequences", str(args.sequences),
                   "--concurrency", str(args.concurrency), "--out", str(out), "--quiet"]  # fmt: skip
            started = time.perf_counter()
            result = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - started
            if result.returncode != 0:
                sys.exit(f"run failed: {result.stderr}")
            peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            with sqlite3.connect(out / "run.sqlite") as db:
                convs = db.execute("SELECT COUNT(*) FROM plan").fetchone()[0]
                responses = db.execute("SELECT COUNT(*) FROM turns").fetchone()[0]
                made, cached = db.execute("SELECT SUM(cached=0), SUM(cached=1) FROM call_log").fetchone()
            started = time.perf_counter()
            again = subprocess.run(cmd, capture_output=True, text=True)
            rerun = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(10)
    print(f"conversations: {convs}  responses: {responses}  model calls: {made} made, {cached} from cache")
    print(f"wall: {wall:.1f} s  ({made / wall:.0f} calls/s, {responses / wall:.0f} responses/s)")
    # RUSAGE_CHILDREN covers children already waited for: the carryon run, not the fake server (still running)
    print(f"peak RSS of the carryon process: {peak_mb:.0f} MB")
    print(f"re-run of the finished run: {rerun:.1f} s, {again.stdout.strip().splitlines()[-1]}")
    print(f"goal: wall < 300 s -> {'met' if wall < 300 else 'NOT met'} (ratio {wall / 300:.2f} of the budget)")
    if convs >= 10_000:
        print(f"goal: peak RSS < 500 MB at 10,000 conversations -> {'met' if peak_mb < 500 else 'NOT met'}")


if __name__ == "__main__":
    main()
