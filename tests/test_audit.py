"""The simulator audit (`carryon audit DIR`, automatic when a model plays the user): the reference users that leak
the checklist or ignore the plan are caught, the scripted user and the well-behaved testing user audit clean, role
confusion and fallbacks are counted, and off-script conversations can be left out of the headline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import load_metrics, run_cli
from carryon.config import RunConfig
from carryon.metrics.simulator import message_flags
from carryon.metrics.table import Response
from carryon.pipeline import run

RATES = ("move_adherence", "off_script_rate", "leak_rate", "role_confusion_rate", "fallback_rate")


def _run(tmp: Path, dataset: Path, user: str, target: str = "testing/ideal", sequences: int = 6) -> dict[str, Any]:
    out = tmp / user.replace("/", "_")
    run(RunConfig(target=target, user=user, judge=["testing/judge"], dataset=str(dataset), limit=3, conditions="benign",
                  sequences=sequences, out=out))  # fmt: skip
    return load_metrics(out)


def _sim(metrics: dict[str, Any]) -> dict[str, Any]:
    sim: dict[str, Any] = next(iter(metrics["models"].values()))["simulator"]
    return sim


def _mean(sim: dict[str, Any], rate: str) -> float | None:
    mean: float | None = sim[rate]["mean"]
    return mean


def test_well_behaved_model_user_audits_clean(tmp_path: Path, small_dataset: Path) -> None:
    sim = _sim(_run(tmp_path, small_dataset, "testing/user"))
    assert sim["audited"] and sim["audit_judge"] == "testing/judge" and sim["n_messages"] > 0
    assert _mean(sim, "move_adherence") == 1.0
    assert [_mean(sim, r) for r in RATES[1:]] == [0.0, 0.0, 0.0, 0.0]
    assert sim["flagged_conversations"] == 0
    assert set(sim["adherence_by_move"]) >= {"purpose", "pushback", "disengage", "rephrase"}
    for rate in RATES:  # every rate comes with a CI by item
        assert {"mean", "ci_low", "ci_high", "n"} <= set(sim[rate])


def test_leaky_user_is_caught(tmp_path: Path, small_dataset: Path) -> None:
    sim = _sim(_run(tmp_path, small_dataset, "testing/leaky-user"))
    assert _mean(sim, "leak_rate") == 1.0  # every message states a checklist item
    assert sim["flagged_conversations"] == sim["n_conversations"] > 0


def test_off_script_user_is_caught(tmp_path: Path, small_dataset: Path) -> None:
    metrics = _run(tmp_path, small_dataset, "testing/off-script-user")
    sim = _sim(metrics)
    assert _mean(sim, "off_script_rate") == 1.0 and _mean(sim, "move_adherence") == 0.0
    assert _mean(sim, "leak_rate") == 0.0
    assert sim["adherence_by_move"]["pushback"]["mean"] == 0.0  # pushback that reveals the purpose
    assert sim["flagged_conversations"] == sim["n_conversations"]
    lines = [json.loads(x) for x in (tmp_path / "testing_off-script-user" / "conversations.jsonl").read_text().splitlines()]
    multi = [c for c in lines if c["condition"] == "multi_turn"]
    assert multi and all(c["user_off_script"] for c in multi)
    assert all(t["user_audit"]["off_script"] for c in multi for t in c["turns"][1:])
    import pyarrow.parquet as pq

    rows = pq.read_table(tmp_path / "testing_off-script-user" / "turns.parquet").to_pylist()
    assert all(json.loads(r["user_audit"])["off_script"] for r in rows if r["condition"] == "multi_turn" and r["idx"])
    page = (tmp_path / "testing_off-script-user" / "report.html").read_text()
    assert 'id="simulator"' in page and "user off script" in page


def test_role_confusion_is_counted(tmp_path: Path, small_dataset: Path) -> None:
    sim = _sim(_run(tmp_path, small_dataset, "testing/confused-user"))
    assert _mean(sim, "role_confusion_rate") == 1.0 and _mean(sim, "fallback_rate") == 0.0
    assert _mean(sim, "move_adherence") == 1.0  # the accepted drafts are on script


def test_scripted_user_audits_clean_on_demand(tmp_path: Path, small_dataset: Path) -> None:
    out = tmp_path / "scripted"
    metrics = _run(tmp_path, small_dataset, "scripted")
    assert not _sim(metrics)["audited"] and _mean(_sim(metrics), "move_adherence") is None
    assert _mean(_sim(metrics), "fallback_rate") == 0.0
    result = run_cli("audit", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "model calls: " in result.stdout and "simulated user audit" in result.stdout
    sim = _sim(load_metrics(out))
    assert sim["audited"] and _mean(sim, "move_adherence") == 1.0
    assert [_mean(sim, r) for r in RATES[1:]] == [0.0, 0.0, 0.0, 0.0]
    again = run_cli("audit", str(out), "--quiet")
    assert "model calls: 0 made" in again.stdout  # resumable: every verdict is stored


def test_off_script_conversations_can_leave_the_headline(tmp_path: Path, small_dataset: Path) -> None:
    out = tmp_path / "testing_off-script-user"
    _run(tmp_path, small_dataset, "testing/off-script-user")
    convs = [json.loads(x) for x in (out / "conversations.jsonl").read_text().splitlines()]
    # off script, the user reveals its purpose on pushback, so the ideal target "recovers" on pure pushback
    pushback = [c for c in convs if c["moves"] == ["pushback"] * 3]
    assert pushback and all(c["turns"][-1]["ben_util"] == 1.0 for c in pushback)
    result = run_cli("report", str(out), "--exclude-off-script")
    assert result.returncode == 0, result.stderr
    excluded = load_metrics(out)
    model = next(iter(excluded["models"].values()))
    assert excluded["exclude_off_script"] is True
    assert model["simulator"]["excluded_from_headline"] == model["simulator"]["n_conversations"]
    assert model["conditions"]["multi_turn"]["ben_util"]["n"] == 0  # every multi-turn conversation left out
    assert model["conditions"]["upfront"]["ben_util"]["n"] == 3  # the upfront baselines have no user moves
    assert len((out / "conversations.jsonl").read_text().splitlines()) == 3 * 7  # still exported


@pytest.mark.parametrize(
    ("move", "audit", "expected"),
    [
        ("pushback", {"user_move": {"adheres": True}, "user_reveals": {"reveals": True}}, True),  # reveals on pushback
        ("purpose", {"user_move": {"adheres": True}, "user_reveals": {"reveals": True}}, False),
        ("purpose", {"user_move": {"adheres": False}, "user_reveals": {"reveals": False}}, True),
        ("disengage", {"user_move": {"adheres": True}, "user_reveals": {"reveals": False}}, False),
        ("disengage", {"user_move": {"adheres": True}}, None),  # reveal verdict missing: undecided
    ],
)
def test_off_script_rule(move: str, audit: dict[str, Any], expected: bool | None) -> None:
    r = Response("c", "i", "cat", "multi_turn", 0, (move,), 1, move, "", "", "",
                 audit={k: {"value": v} for k, v in audit.items()})  # fmt: skip
    assert message_flags(r)["off_script"] is expected


def test_audit_of_a_directory_without_a_run_is_bad_input(tmp_path: Path) -> None:
    result = run_cli("audit", str(tmp_path))
    assert result.returncode == 2 and "no CarryOn run here" in result.stderr
