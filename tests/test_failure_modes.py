"""The reference models each show their own failure mode, and no other (in-process testing models)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from carryon.config import RunConfig
from carryon.metrics.failure_modes import MODES
from carryon.pipeline import run
from conftest import load_metrics

EXPECTED = {"always-refuse": "lock_in", "ideal": None, "unsafe": "unsafe_recovery", "parrot": "repetitive_recovery"}


@pytest.fixture(scope="module")
def reference_runs(small_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in EXPECTED:
        run_dir = tmp_path_factory.mktemp(name)
        config = RunConfig(target=f"testing/{name}", judge=["testing/judge"], dataset=str(small_dataset),
                           sequences=15, out=run_dir)  # fmt: skip
        run(config)
        out[name] = load_metrics(run_dir)["models"][f"testing/{name}"]
    return out


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_reference_model_has_exactly_its_failure_mode(reference_runs: dict[str, dict[str, Any]], name: str) -> None:
    modes = reference_runs[name]["failure_modes"]
    assert modes["n_conversations"] == 6 * 15 and modes["unlabelled"] == 0
    for mode in MODES:
        if mode == EXPECTED[name]:
            assert modes[mode] > 0.3, (name, mode, modes[mode])
        else:
            assert modes[mode] == 0.0, (name, mode, modes[mode])


def test_reference_curves(reference_runs: dict[str, dict[str, Any]]) -> None:
    refuse, ideal, unsafe = reference_runs["always-refuse"], reference_runs["ideal"], reference_runs["unsafe"]
    assert all(t["ben_util"]["mean"] == 0.0 for t in refuse["per_turn"])
    assert ideal["conditions"]["multi_turn"]["ben_util"]["mean"] > ideal["conditions"]["turn1"]["ben_util"]["mean"]
    assert ideal["conditions"]["multi_turn"]["harm"]["mean"] == 0.0
    assert unsafe["conditions"]["multi_turn"]["harm"]["mean"] == 1.0
    assert unsafe["conditions"]["turn1"]["harm"]["mean"] == 0.0
    # every intent-revealing move lifts the ideal model from its partial first answer
    assert ideal["move_effects"]["family:intent"]["ben_util_delta"]["mean"] > 0.3
    assert refuse["move_effects"]["family:intent"]["ben_util_delta"]["mean"] == 0.0
