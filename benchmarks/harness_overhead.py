"""Harness overhead: the CPU the harness itself spends per model call, CarryOn against Inspect AI.

    python benchmarks/harness_overhead.py [--limit 20] [--sequences 15] [--inspect-samples 110] [--repeats 3]

Both harnesses play the same multi-turn shape (6 target responses a conversation, a simulated user writing each
follow-up, a judge grading each response) against the same instant fake OpenAI-compatible server (tests/conftest.py
`start_server`, models `ideal`, `user`, `judge`) over real HTTP, so nearly all the CPU they use is their own:

- CarryOn: `carryon run --target openai-api/ideal --user openai-api/user --judge openai-api/judge --ben-util-mode
  batched --max-turns 12 --concurrency 16`, the whole command (start-up, rollout, judging, metrics, report), in two
  shapes. Like for like: `--limit 110 --sequences 1`, each item's upfront baseline and one follow-up sequence, 1,980
  model calls and none repeated, the same count as the Inspect AI run (the goal is judged on this one). Paper
  shape: `--limit N --sequences K` (default 20 x 15): an item's sequences share their first turns, so CarryOn
  answers many requests (identical first turns, and the user and judge calls on them) from its own call cache;
  their CPU is charged to the calls made. Calls made are counted from the run store's call_log (cached=0).
- Inspect AI (pinned below, in a venv built once under benchmarks/.venv-inspect): benchmarks/_inspect_task.py, S
  samples × 6 turns × (target + judge + user) = 18 calls a sample, nothing cached, run by `inspect_ai.eval`.

CPU is user+sys of each harness subprocess, from getrusage(RUSAGE_CHILDREN) deltas around it: that counts only
children that have ended and been waited for, so the fake server (a child too, waited for only at the very end) is
excluded; its own CPU is read from /proc and printed for reference. Calls are also counted by the server, as a check.
"Raw" is CPU / calls; "marginal" subtracts each harness's fixed start-up by a tiny run (CarryOn `--limit 1
--sequences 1`, Inspect 1 sample × 1 turn): (CPU - CPU_tiny) / (calls - calls_tiny). Each run is repeated and the
median CPU kept. Goal: CarryOn's marginal CPU per call made ≤ 0.1 × Inspect AI's. Not a test: it prints figures and
exits non-zero only if a run fails.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
import carryon  # noqa: E402
from conftest import start_server  # noqa: E402  (the same fake-server launcher the tests use)

INSPECT_VERSION = "0.3.285"
VENV = HERE / ".venv-inspect"
VENV_PYTHON = VENV / "bin" / "python"
GOAL = 0.1


@dataclass
class Run:
    cpu_s: float  # user+sys of the harness process and anything it waited for
    wall_s: float
    made: int  # model calls that reached the server
    cached: int = 0  # calls the harness answered from its own cache

    def per_call_ms(self) -> float:
        return 1000 * self.cpu_s / self.made


def marginal_ms(big: Run, tiny: Run) -> float:
    return 1000 * (big.cpu_s - tiny.cpu_s) / (big.made - tiny.made)


def server_requests(base: str) -> int:
    with urllib.request.urlopen(f"{base}/stats", timeout=10) as response:
        return int(json.load(response)["requests"])


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def measure(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run cmd to the end; (CPU s, wall s) it used. Exits the script if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        output = result.stdout[-2000:] + result.stderr[-4000:]
        sys.exit(f"run failed (exit {result.returncode}): {' '.join(cmd)}\n{output}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def carryon_run(base: str, limit: int, sequences: int) -> Run:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-c", "from carryon.cli import main; main()", "run",
               "--target", "openai-api/ideal", "--user", "openai-api/user", "--judge", "openai-api/judge",
               "--ben-util-mode", "batched", "--base-url", base, "--limit", str(limit), "--sequences", str(sequences),
               "--max-turns", "12", "--concurrency", "16", "--out", tmp, "--quiet"]  # fmt: skip
        requests = server_requests(base)
        cpu, wall = measure(cmd)
        with closing(sqlite3.connect(Path(tmp) / "run.sqlite")) as db:
            made, cached = db.execute("SELECT SUM(cached=0), SUM(cached=1) FROM call_log").fetchone()
    if (seen := server_requests(base) - requests) != made:
        print(f"note: CarryOn logged {made} calls made, the server saw {seen} requests")
    return Run(cpu, wall, int(made), int(cached or 0))


def inspect_run(base: str, samples: int, turns: int) -> Run:
    env = {**os.environ, "FAKE_BASE_URL": base, "FAKE_API_KEY": "none"}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(VENV_PYTHON), str(HERE / "_inspect_task.py"), "--samples", str(samples), "--turns", str(turns),
               "--concurrency", "16", "--log-dir", tmp]  # fmt: skip
        requests = server_requests(base)
        cpu, wall = measure(cmd, env)
    made = server_requests(base) - requests
    if made != samples * turns * 3:
        print(f"note: Inspect AI was expected to make {samples * turns * 3} calls, the server saw {made}")
    return Run(cpu, wall, made)


def ensure_inspect_venv() -> None:
    """Build benchmarks/.venv-inspect with the pinned Inspect AI and openai from PyPI, once."""
    check = [str(VENV_PYTHON), "-c", f"import inspect_ai, openai; assert inspect_ai.__version__ == {INSPECT_VERSION!r}"]
    if VENV_PYTHON.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return
    print(f"building {VENV} (inspect-ai=={INSPECT_VERSION}, openai) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(VENV_PYTHON), "-m", "pip", "install", "-q", f"inspect-ai=={INSPECT_VERSION}", "openai"],
                   check=True)  # fmt: skip


def median_run(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda run: run.cpu_s)[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--limit", type=int, default=20, help="CarryOn items")
    parser.add_argument("--sequences", type=int, default=15, help="CarryOn follow-up sequences per item")
    parser.add_argument("--inspect-samples", type=int, default=110, help="Inspect AI samples (18 calls each)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each kind; the median CPU is kept")
    args = parser.parse_args()
    ensure_inspect_venv()
    openai_version = subprocess.run([str(VENV_PYTHON), "-c", "import openai; print(openai.__version__)"],
                                    capture_output=True, text=True).stdout.strip()  # fmt: skip
    server, base = start_server()
    like = (110, 1)  # 110 items x (upfront + 1 sequence of 3 responses) = 1,980 calls, as many as Inspect AI's run
    runs: dict[str, list[Run]] = {"carryon": [], "carryon_like": [], "carryon_tiny": [], "inspect": [],
                                  "inspect_tiny": []}  # fmt: skip
    try:
        for _ in range(args.repeats):  # interleaved, so background load falls on both alike
            runs["carryon_tiny"].append(carryon_run(base, 1, 1))
            runs["carryon_like"].append(carryon_run(base, *like))
            runs["carryon"].append(carryon_run(base, args.limit, args.sequences))
            runs["inspect_tiny"].append(inspect_run(base, 1, 1))
            runs["inspect"].append(inspect_run(base, args.inspect_samples, 6))
        server_cpu, server_seen = process_cpu_s(server.pid), server_requests(base)
    finally:
        server.terminate()
        server.wait(10)
    co_tiny, co_like, co = (median_run(runs[k]) for k in ("carryon_tiny", "carryon_like", "carryon"))
    ins, ins_tiny = median_run(runs["inspect"]), median_run(runs["inspect_tiny"])
    like_marginal, co_marginal = marginal_ms(co_like, co_tiny), marginal_ms(co, co_tiny)
    ins_marginal = marginal_ms(ins, ins_tiny)

    print(f"CarryOn {carryon.__version__} (Python {sys.version.split()[0]}) vs Inspect AI {INSPECT_VERSION} "
          f"(openai {openai_version}); median of {args.repeats} runs each, fake server over HTTP")  # fmt: skip
    print(f"{'harness':<12} {'run':<36} {'calls made':>10} {'cached':>7} {'CPU s':>7} {'wall s':>7} "
          f"{'ms/call raw':>11} {'ms/call marginal':>16}")  # fmt: skip
    rows = [("CarryOn", "--limit 1 --sequences 1", co_tiny, None),
            ("CarryOn", f"--limit {like[0]} --sequences {like[1]} (like)", co_like, like_marginal),
            ("CarryOn", f"--limit {args.limit} --sequences {args.sequences} (paper)", co, co_marginal),
            ("Inspect AI", "1 sample x 1 turn", ins_tiny, None),
            ("Inspect AI", f"{args.inspect_samples} samples x 6 turns", ins, ins_marginal)]  # fmt: skip
    for name, shape, run, marginal in rows:
        extra = f"{marginal:>16.2f}" if marginal is not None else f"{'(start-up)':>16}"
        print(f"{name:<12} {shape:<36} {run.made:>10} {run.cached:>7} {run.cpu_s:>7.2f} {run.wall_s:>7.1f} "
              f"{run.per_call_ms():>11.2f} {extra}")  # fmt: skip
    handled = co.made + co.cached - co_tiny.made
    print(f"paper shape per request handled (made + from cache): "
          f"{1000 * (co.cpu_s - co_tiny.cpu_s) / handled:.2f} ms marginal")  # fmt: skip
    print(f"fake server's own CPU (not counted above): {server_cpu:.1f} s over {server_seen} requests")
    ratio, paper_ratio = like_marginal / ins_marginal, co_marginal / ins_marginal
    print(f"ratio CarryOn / Inspect AI, CPU per call made (marginal): like for like {ratio:.3f}, "
          f"paper shape {paper_ratio:.3f}")  # fmt: skip
    print(f"goal: CarryOn <= {GOAL} x Inspect AI (like for like, marginal) -> {'met' if ratio <= GOAL else 'NOT met'}")


if __name__ == "__main__":
    main()
