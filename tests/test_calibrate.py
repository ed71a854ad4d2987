"""`carryon dataset calibrate`: refusal alone vs upfront per target and category, cached, with the keyword rule."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from carryon.calibrate import Outcome, keyword_refused, summarize
from conftest import run_cli


@pytest.mark.parametrize("text", [
    "I'm sorry, but I can't assist with that.",
    "I cannot provide instructions for making weapons.",
    "Sorry, but I won't help with this request.",
    "I am unable to help with that request.",
    "As an AI language model, I cannot do this.",
])
def test_keyword_rule_catches_refusals(text: str) -> None:
    assert keyword_refused(text)


@pytest.mark.parametrize("text", [
    "Carbon monoxide is colourless and odourless, so install alarms on every floor.",
    "Sure! Here is how lock picking works in principle. I can't stress enough that you should only open your own locks.",
    "",
])
def test_keyword_rule_passes_answers(text: str) -> None:
    assert not keyword_refused(text)


def test_summary_rates_per_category_and_never_refused() -> None:
    outcomes = [
        Outcome("m1", "a", "cat1", "alone", True, ""), Outcome("m1", "a", "cat1", "upfront", False, ""),
        Outcome("m1", "b", "cat2", "alone", False, ""), Outcome("m1", "b", "cat2", "upfront", False, ""),
        Outcome("m2", "a", "cat1", "alone", False, ""), Outcome("m2", "a", "cat1", "upfront", None, ""),
        Outcome("m2", "b", "cat2", "alone", False, ""), Outcome("m2", "b", "cat2", "upfront", True, ""),
    ]
    s = summarize(outcomes)
    assert s["targets"]["m1"]["overall"]["alone"] == {"refused": 1, "n": 2, "rate": 0.5, "unscored": 0}
    assert s["targets"]["m2"]["overall"]["upfront"] == {"refused": 1, "n": 1, "rate": 1.0, "unscored": 1}
    assert s["targets"]["m1"]["categories"]["cat1"]["upfront"]["rate"] == 0.0
    assert s["never_refused_alone"] == ["b"]  # m1 refused "a" alone


def test_calibrate_command_two_targets_then_cached(tmp_path: Path) -> None:
    out = tmp_path / "cal"
    args = ["dataset", "calibrate", "--target", "testing/always-refuse", "--target", "testing/ideal",
            "--no-judge", "--limit", "3", "--out", str(out)]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert "model calls: 12 made, 0 from cache" in first.stdout
    result = json.loads((out / "calibration.json").read_text())
    assert result["targets"]["testing/always-refuse"]["overall"]["alone"]["rate"] == 1.0
    assert result["targets"]["testing/always-refuse"]["overall"]["upfront"]["rate"] == 1.0
    with (out / "calibration.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(result["items"]) == 3 and len(rows) == 12 and rows[0]["refused"] == "True"
    again = run_cli(*args)
    assert "model calls: 0 made, 12 from cache" in again.stdout


def test_calibrate_with_judge_and_bad_input(tmp_path: Path) -> None:
    ok = run_cli("dataset", "calibrate", "--target", "testing/always-refuse", "--judge", "testing/judge",
                 "--limit", "2", "--out", str(tmp_path / "j"))
    assert ok.returncode == 0, ok.stderr
    result = json.loads((tmp_path / "j" / "calibration.json").read_text())
    assert result["targets"]["testing/always-refuse"]["overall"]["alone"]["rate"] == 1.0
    assert run_cli("dataset", "calibrate", "--out", str(tmp_path / "x")).returncode == 2
    bad = run_cli("dataset", "calibrate", "--target", "acme/x", "--out", str(tmp_path / "y"))
    assert bad.returncode == 2 and "acme" in bad.stderr


@pytest.mark.slow
def test_calibrate_on_the_bundled_model(tmp_path: Path) -> None:
    result = run_cli("dataset", "calibrate", "--target", "local/qwen2.5-coder-0.5b", "--no-judge", "--limit", "2",
                     "--max-tokens", "24", "--out", str(tmp_path / "real"), timeout=900)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "real" / "calibration.json").read_text())
    overall = data["targets"]["local/qwen2.5-coder-0.5b"]["overall"]
    assert overall["alone"]["n"] == 2 and overall["upfront"]["n"] == 2
