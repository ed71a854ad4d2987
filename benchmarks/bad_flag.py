"""How fast a bad flag is rejected: `carryon run --target acme/x --out DIR` in a fresh interpreter, as a user types
it (exit 2 expected). Flags and roles are checked before the dataset, the judges, the store or the HTTP stack load.

    python benchmarks/bad_flag.py [--runs 7]

Prints the median wall and CPU seconds, with a bare `python -c pass` for scale (docs/performance.md).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time


def _timed(args: list[str]) -> tuple[float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    code = subprocess.run(args, capture_output=True, check=False).returncode
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), code


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    out = os.path.join(tempfile.mkdtemp(), "run")
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "carryon run --target acme/x": [sys.executable, "-m", "carryon", "run", "--target", "acme/x", "--out", out],
        "carryon run --max-turns 40": [sys.executable, "-m", "carryon", "run", "--max-turns", "40", "--out", out],
    }
    for name, command in cases.items():
        runs = [_timed(command) for _ in range(args.runs)]
        codes = {code for _, _, code in runs}
        wall = statistics.median(w for w, _, _ in runs)
        cpu = statistics.median(c for _, c, _ in runs)
        print(f"{name:32s} exit {','.join(map(str, sorted(codes)))}  wall {wall:.2f} s  cpu {cpu:.2f} s")


if __name__ == "__main__":
    main()
