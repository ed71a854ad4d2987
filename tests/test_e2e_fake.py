"""End to end over real HTTP: `carryon run` against the deterministic fake OpenAI-compatible server."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import load_metrics, run_cli


def _run(base: str, dataset: Path, out: Path, target: str = "ideal", *extra: str):
    return run_cli(
        "run", "--target", f"openai-api/{target}", "--judge", "openai-api/judge", "--base-url", base,
        "--dataset", str(dataset), "--sequences", "3", "--out", str(out), "--quiet", *extra,
    )  # fmt: skip


def test_run_writes_contract_outputs_and_resume_makes_no_calls(fake_server: str, small_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = _run(fake_server, small_dataset, out)
    assert first.returncode == 0, first.stderr
    made = int(first.stdout.split("model calls: ")[1].split(" made")[0])
    assert made > 0
    assert "report: " in first.stdout and str((out / "report.html").resolve()) in first.stdout

    metrics = load_metrics(out)
    model = metrics["models"]["openai-api/ideal"]
    for condition in ("turn1", "upfront", "multi_turn"):
        for key in ("ben_util", "harm"):
            assert set(model["conditions"][condition][key]) >= {"mean", "ci_low", "ci_high", "n", "unscored"}
    assert set(model["failure_modes"]) >= {"lock_in", "unsafe_recovery", "repetitive_recovery"}
    assert model["per_turn"] and model["per_turn"][0]["turn"] == 1
    for key in ("dataset_version", "judge", "judge_prompt_versions", "carryon_version"):
        assert metrics[key]
    # the ideal reference model: partial at turn 1, full with the purpose up front
    assert model["conditions"]["upfront"]["ben_util"]["mean"] == 1.0
    assert model["conditions"]["turn1"]["ben_util"]["mean"] < 0.5

    convs = [json.loads(line) for line in (out / "conversations.jsonl").read_text().splitlines()]
    assert len(convs) == 6 * (3 + 1)
    assert all(c["stop_reason"] == "sequence_complete" for c in convs)
    multi = [c for c in convs if c["condition"] == "multi_turn"]
    assert all(len(c["turns"]) == len(c["moves"]) + 1 for c in multi)

    again = _run(fake_server, small_dataset, out)
    assert again.returncode == 0, again.stderr
    assert "model calls: 0 made" in again.stdout
    assert load_metrics(out)["models"] == metrics["models"]


def test_report_command_rewrites_outputs_without_calls(fake_server: str, small_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _run(fake_server, small_dataset, out).returncode == 0
    (out / "report.html").unlink()
    (out / "metrics.json").unlink()
    result = run_cli("report", str(out))
    assert result.returncode == 0, result.stderr
    assert (out / "report.html").is_file() and (out / "metrics.json").is_file()
    assert "model calls: 0 made" in result.stdout


def test_llm_user_over_http(fake_server: str, small_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = _run(fake_server, small_dataset, out, "ideal", "--user", "openai-api/user", "--limit", "2")
    assert result.returncode == 0, result.stderr
    convs = [json.loads(line) for line in (out / "conversations.jsonl").read_text().splitlines()]
    # testing/user echoes the clarification fact for intent moves: the ideal target then answers in full
    revealed = [t for c in convs for t in c["turns"] if t["move"] in ("purpose", "context", "narrowing", "assurance")]
    assert revealed and all(t["ben_util"] == 1.0 for t in revealed)


def test_report_browser_caps_large_runs_and_keeps_failures() -> None:
    from carryon.report.html import browser_sample

    convs = [{"conv_id": f"c{i}", "failure_modes": ["lock_in"] if i % 10 == 0 else []} for i in range(2000)]
    picked = browser_sample(convs, limit=300)
    assert len(picked) == 300
    assert sum(1 for c in picked if c["failure_modes"]) == 200  # every flagged conversation is kept
    assert browser_sample(convs[:50], limit=300) == convs[:50]
