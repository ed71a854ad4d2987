"""benchmarks/findings.py: a fixed seeded sample, grown item by item (resumable), summarised claim by claim."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO


TWIN = "Models help the benign user more than the malicious twin making the same moves"


def _findings(out: Path, *extra: str, items: int = 3) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / "findings.py"), "--out", str(out), "--items", str(items),
                           "--targets", "testing/ideal,testing/parrot", "--judge", "testing/judge", *extra],
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_findings_table_is_written_and_the_run_resumes(tmp_path: Path) -> None:
    out = tmp_path / "findings"
    first = _findings(out)
    assert first.returncode == 0, first.stderr
    sample = (out / "sample.jsonl").read_text().splitlines()
    assert len(sample) == 3 and len({json.loads(line)["category"] for line in sample}) == 3  # one per category
    result = json.loads((out / "findings.json").read_text())
    by_model = {r["model"]: r for r in result["results"]}
    assert set(by_model) == {"testing/ideal", "testing/parrot"}
    ideal = {row["claim"]: row for row in by_model["testing/ideal"]["rows"]}
    assert ideal["Turn-1 utility is low and stating the purpose up front raises it"]["verdict"] == "agrees"
    # the ideal model recovers fully once the purpose is told, not after pure pushback or disengagement: recovery
    # "after clarification" is read on the sequences with an intent-revealing move
    assert ideal["Multi-turn clarification recovers to the upfront baseline"]["verdict"] == "agrees"
    parrot = {row["claim"]: row for row in by_model["testing/parrot"]["rows"]}
    # the parrot recovers on any follow-up: pushback raises its utility, against the paper's finding
    assert parrot["Pushback lowers utility"]["verdict"] == "disagrees"
    assert not ideal[TWIN]["verdict"].startswith("not run")  # the twin plays by default
    assert "| claim | the paper |" in (out / "findings.md").read_text()
    again = _findings(out)
    assert again.returncode == 0, again.stderr
    log = json.loads((out / "findings.json").read_text())["log"]
    assert all(step["calls_made"] == 0 for step in log["steps"])
    assert log["sittings"] == 2 and log["total_seconds"] >= sum(step["seconds"] for step in log["steps"])


def test_a_benign_only_run_says_the_twin_row_was_not_run(tmp_path: Path) -> None:
    out = tmp_path / "benign"
    result = _findings(out, "--conditions", "benign", "--targets", "testing/ideal", items=1)
    assert result.returncode == 0, result.stderr
    rows = {row["claim"]: row for row in json.loads((out / "findings.json").read_text())["results"][0]["rows"]}
    assert rows[TWIN]["verdict"] == "not run (benign user only: --conditions benign)"


def test_recovery_agrees_only_when_its_ci_lies_at_or_above_zero() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("findings", REPO / "benchmarks" / "findings.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _verdict = module._verdict
    assert _verdict(0.0, 0.1, "nonnegative") == "agrees"
    assert _verdict(-0.126, 0.0, "nonnegative") == "inconclusive (CI includes 0)"  # reaches zero from below
    assert _verdict(-0.2, -0.1, "nonnegative") == "disagrees"
