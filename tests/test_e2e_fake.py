"""End to end over real HTTP: `carryon run` against the deterministic fake OpenAI-compatible server."""

from __future__ import annotations

import json
from pathlib import Path
from subprocess import CompletedProcess

from conftest import load_metrics, run_cli, twinned


def _run(base: str, dataset: Path, out: Path, target: str = "ideal", *extra: str) -> CompletedProcess[str]:
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
    assert len(convs) == (6 + twinned(small_dataset)) * (3 + 1)  # items with a malicious twin are played twice
    assert all(c["stop_reason"] == "sequence_complete" for c in convs)
    multi = [c for c in convs if c["condition"] == "multi_turn"]
    assert all(len(c["turns"]) == len(c["moves"]) + 1 for c in multi)
    # turns.parquet: one row per response, in the same order, with cumulative utility never falling
    import pyarrow.parquet as pq

    rows = pq.read_table(out / "turns.parquet").to_pylist()
    assert [(r["conv_id"], r["idx"]) for r in rows] == [(c["conv_id"], t["idx"]) for c in convs for t in c["turns"]]
    assert [r["response"] for r in rows] == [t["response"] for c in convs for t in c["turns"]]
    for conv in multi:
        cum = [r["cumulative_util"] for r in rows if r["conv_id"] == conv["conv_id"]]
        assert cum == sorted(cum) and cum[0] == conv["turns"][0]["ben_util"]

    again = _run(fake_server, small_dataset, out)
    assert again.returncode == 0, again.stderr
    assert "model calls: 0 made" in again.stdout
    assert load_metrics(out)["models"] == metrics["models"]


def test_report_command_rewrites_outputs_without_calls(fake_server: str, small_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _run(fake_server, small_dataset, out).returncode == 0
    names = ("report.html", "metrics.json", "conversations.jsonl", "turns.parquet")
    before = {name: (out / name).read_bytes() for name in names}
    for name in names:
        (out / name).unlink()
    result = run_cli("report", str(out))
    assert result.returncode == 0, result.stderr
    assert "model calls: 0 made" in result.stdout
    # the same run gives the same bytes: no timestamps or random ids in the outputs (plots included)
    assert {name: (out / name).read_bytes() for name in names} == before
    assert not list(out.glob("*.tmp"))


def test_llm_user_over_http(fake_server: str, small_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = _run(fake_server, small_dataset, out, "ideal", "--user", "openai-api/user", "--limit", "2")
    assert result.returncode == 0, result.stderr
    convs = [json.loads(line) for line in (out / "conversations.jsonl").read_text().splitlines()]
    # testing/user echoes the clarification fact for intent moves: the ideal target then answers the benign user in
    # full (and holds firm for an item's malicious twin, where the dataset has one)
    revealed = [t for c in convs for t in c["turns"] if c["condition"] == "multi_turn"
                and t["move"] in ("purpose", "context", "narrowing", "assurance")]  # fmt: skip
    assert revealed and all(t["ben_util"] == 1.0 for t in revealed)


def test_report_browser_caps_large_runs_and_keeps_failures() -> None:
    from carryon.report.html import browser_picks

    flagged = [i % 10 == 0 for i in range(2000)]
    picked = browser_picks(flagged, limit=300)
    assert len(picked) == 300
    assert sum(1 for i in picked if flagged[i]) == 200  # every flagged conversation is kept
    unflagged = sorted(i for i in picked if not flagged[i])
    assert unflagged[-1] - unflagged[0] > 1500  # the rest spread over the run, not its first hundred
    assert browser_picks(flagged[:50], limit=300) == set(range(50))


def test_rejudging_after_lost_judgements_redoes_exactly_those(fake_server: str, small_dataset: Path, tmp_path: Path) -> None:
    import sqlite3

    from carryon.data.load import load_items
    from carryon.judge.runner import count_pending, pending_work
    from carryon.store import Store

    out = tmp_path / "run"
    assert _run(fake_server, small_dataset, out).returncode == 0
    metrics = load_metrics(out)
    with sqlite3.connect(out / "run.sqlite") as db:
        db.execute("DELETE FROM judgements WHERE rowid % 7 = 0")
        lost = db.execute("SELECT changes()").fetchone()[0]
    assert lost > 0
    items = {i.id: i for i in load_items(str(small_dataset), None)}
    with Store(out) as store:
        work = list(pending_work(store, items, ["openai-api/judge"]))
        assert count_pending(store, items, ["openai-api/judge"]) == sum(len(kinds) for _, _, kinds in work) == lost
    again = _run(fake_server, small_dataset, out)
    assert again.returncode == 0, again.stderr
    assert "model calls: 0 made" in again.stdout  # every judge request was answered before: served from the cache
    with Store(out) as store:
        assert count_pending(store, items, ["openai-api/judge"]) == 0
    assert load_metrics(out)["models"] == metrics["models"]
