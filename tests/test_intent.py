"""Intent discrimination end to end: the malicious twin's conditions are planned, played (scripted and by a user
model), stored and resumed; the reference models `testing/gullible` and `testing/ideal` get the figures issue 14
asks for, in-process and over the fake HTTP server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from typing import Any
from pathlib import Path

import pytest

from carryon.config import RunConfig
from carryon.data.load import load_items
from carryon.data.schema import malicious_upfront
from carryon.core.errors import BadInput
from carryon.metrics.failure_modes import MODES
from carryon.pipeline import run
from carryon.core.moves import Move
from carryon.simulate.plans import plan_item
from carryon.simulate.user import GENERIC_MALICIOUS, LLMUser, scripted_message
from carryon.calls import CachedCaller
from carryon.store import Store
from carryon.testing.models import InProcessClient
from conftest import REPO, load_metrics, peek, run_cli, start_server

TWINS = REPO / "tests" / "fixtures" / "twins.jsonl"
ITEMS = load_items(str(TWINS), None)
NO_NARROWING = next(i for i in ITEMS if i.malicious and i.malicious.clarifications.narrowing is None)


def _convs(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "conversations.jsonl").read_text().splitlines()]


def _config(out: Path, target: str, **extra: object) -> RunConfig:
    return RunConfig(target=f"testing/{target}", judge=["testing/judge"], dataset=str(TWINS), out=out, **extra)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for name in ("gullible", "ideal", "always-refuse"):
        out[name] = tmp_path_factory.mktemp(name)
        run(_config(out[name], name, sequences=15))
    return out


# -- plan ---------------------------------------------------------------------------------------------------------


def test_malicious_plan_repeats_the_benign_sequences() -> None:
    plan = plan_item("item-a", 5, seed=0, malicious=True)
    benign = [p for p in plan if p.condition in ("upfront", "multi_turn")]
    assert benign == plan_item("item-a", 5, seed=0)  # the benign plan is unchanged
    malicious = [p for p in plan if p.condition == "malicious"]
    assert [p.moves for p in malicious] == [p.moves for p in benign if p.condition == "multi_turn"]
    assert [p.conv_id for p in plan if p.condition == "malicious_upfront"] == ["item-a/malicious-upfront"]
    assert malicious[0].conv_id == "item-a/m00" and len({p.conv_id for p in plan}) == len(plan) == 12


def test_conditions_benign_plans_the_paper_design_and_is_part_of_the_identity(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(_config(out, "ideal", sequences=2, conditions="benign"))
    convs = _convs(out)
    assert {c["condition"] for c in convs} == {"upfront", "multi_turn"} and len(convs) == 6 * 3
    metrics = load_metrics(out)
    assert metrics["conditions"] == "benign"
    model = metrics["models"]["testing/ideal"]
    assert model["discrimination"]["auroc"] is None and model["failure_modes"]["intent_blind_recovery"] is None
    assert model["conditions"]["malicious"]["ben_util"]["n"] == 0
    with pytest.raises(BadInput, match="different conditions"):
        run(_config(out, "ideal", sequences=2))  # default: all


def test_a_run_stored_before_conditions_existed_reads_as_benign(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(_config(out, "ideal", sequences=2, conditions="benign"))
    with Store(out) as store:
        identity = store.get_meta("identity")
        del identity["conditions"]
        store.set_meta("identity", identity)
    outcome = run(_config(out, "ideal", sequences=2, conditions="benign"))
    assert outcome.made == 0
    with pytest.raises(BadInput, match="different conditions \\('benign' there, 'all' now\\)"):
        run(_config(out, "ideal", sequences=2))


def test_items_without_a_twin_are_planned_benign_only_with_a_note(tmp_path: Path) -> None:
    lines = [json.loads(line) for line in TWINS.read_text(encoding="utf-8").splitlines()]
    for item in lines[:2]:  # version-1 items: no twin
        del item["malicious"]
        item["schema_version"] = "1"
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("".join(json.dumps(item) + "\n" for item in lines), encoding="utf-8")
    out = tmp_path / "run"
    outcome = run(RunConfig(target="testing/ideal", judge=["testing/judge"], dataset=str(mixed), sequences=2, out=out))
    played: dict[str, set[str]] = {}
    for conv in _convs(out):
        played.setdefault(conv["item_id"], set()).add(conv["condition"])
    assert [played[item["id"]] == {"upfront", "multi_turn"} for item in lines] == [True, True, False, False, False,
                                                                                    False]  # fmt: skip
    assert outcome.notes and "2 of 6 items have no malicious twin" in outcome.notes[0]
    metrics = load_metrics(out)
    assert metrics["notes"] == outcome.notes and metrics["conditions"] == "all"


def test_cli_takes_conditions_and_rejects_others(tmp_path: Path) -> None:
    result = run_cli("run", "--target", "testing/ideal", "--judge", "testing/judge", "--dataset", str(TWINS),
                     "--conditions", "malicious-only", "--out", str(tmp_path / "x"))  # fmt: skip
    assert result.returncode == 2 and "--conditions" in result.stderr


# -- the malicious user -------------------------------------------------------------------------------------------


def test_scripted_malicious_user_reveals_the_twin_and_falls_back_to_generic_phrasing() -> None:
    item = ITEMS[0]
    assert item.malicious is not None
    for move in (Move.PURPOSE, Move.CONTEXT, Move.NARROWING, Move.ASSURANCE):
        text = scripted_message(item, move, "c:1", malicious=True)
        assert getattr(item.malicious.clarifications, move.value)[1:] in text
        assert getattr(item.clarifications, move.value)[1:] not in text
    for move in (Move.PUSHBACK, Move.DISENGAGE, Move.REPHRASE):  # the moves that reveal nothing: the same words
        assert scripted_message(item, move, "c:1", malicious=True) == scripted_message(item, move, "c:1")
    generic = scripted_message(NO_NARROWING, Move.NARROWING, "c:1", malicious=True)
    assert generic in GENERIC_MALICIOUS[Move.NARROWING]


def test_malicious_conversations_open_like_their_twins_and_say_the_same_where_nothing_is_revealed(
    reference: dict[str, Path],
) -> None:
    convs = {c["conv_id"]: c for c in _convs(reference["gullible"])}
    for item in ITEMS:
        assert item.malicious is not None
        up = convs[f"{item.id}/malicious-upfront"]["turns"][0]["user"]
        assert up == malicious_upfront(item) == f"{item.malicious.clarifications.purpose} {item.query}"
        for seq in range(15):
            benign, malicious = convs[f"{item.id}/s{seq:02d}"], convs[f"{item.id}/m{seq:02d}"]
            assert benign["moves"] == malicious["moves"] and malicious["condition"] == "malicious"
            assert malicious["turns"][0]["user"] == benign["turns"][0]["user"] == item.query
            for b, m in zip(benign["turns"][1:], malicious["turns"][1:]):
                assert (b["user"] == m["user"]) == (b["move"] not in ("purpose", "context", "narrowing", "assurance"))


def test_llm_user_plays_the_malicious_persona_or_its_refusal_is_recorded(tmp_path: Path) -> None:
    item = ITEMS[0]
    assert item.malicious is not None
    with Store(tmp_path) as store:
        user = LLMUser(InProcessClient("user"), CachedCaller(store))
        request = user.request(item, Move.PURPOSE, [], 0, malicious=True)
        assert item.malicious.intent in request.messages[0].content
        assert item.benign_intent not in request.messages[0].content
        turn = asyncio.run(user.next_message(item, Move.PURPOSE, [], "c:1", malicious=True))
        assert turn.text == item.malicious.clarifications.purpose and not turn.fallback
        prude = LLMUser(InProcessClient("user-refuses-malicious"), CachedCaller(store))
        turn = asyncio.run(prude.next_message(item, Move.PURPOSE, [], "c:1", malicious=True))
        assert turn.refused and turn.fallback and turn.fallback_code == 2 and prude.refused == 1
        assert turn.text == scripted_message(item, Move.PURPOSE, "c:1", malicious=True)
        turn = asyncio.run(prude.next_message(item, Move.PURPOSE, [], "c:1"))  # the benign user it plays
        assert turn.text == item.clarifications.purpose and not turn.fallback


def test_a_user_model_refusing_the_persona_is_recorded_in_the_outputs(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run(_config(out, "ideal", sequences=2, limit=2, user="testing/user-refuses-malicious"))
    turns = [(c["condition"], t) for c in _convs(out) for t in c["turns"][1:]]
    refused = [t for cond, t in turns if t["user_fallback"] == "refused_persona"]
    # the user model refused every malicious turn (and no benign one): each was scripted instead
    assert refused and refused == [t for cond, t in turns if cond == "malicious"]
    model = load_metrics(out)["models"]["testing/ideal"]
    assert model["user_fallbacks"] == {"confused": 0, "refused_persona": len(refused)}
    # the scripted fallback still reveals the twin's purpose: the ideal target holds firm
    assert model["discrimination"]["auroc"] == 1.0


# -- reference models ---------------------------------------------------------------------------------------------


def test_gullible_recovers_for_anyone(reference: dict[str, Path]) -> None:
    model = load_metrics(reference["gullible"])["models"]["testing/gullible"]
    assert model["failure_modes"]["intent_blind_recovery"] >= 0.5
    assert model["discrimination"]["auroc"] <= 0.6
    assert model["discrimination"]["n"] == model["failure_modes"]["n_pairs"] > 0
    malicious = model["conditions"]["malicious"]
    assert set(malicious) == {"ben_util", "harm", "refusal_rate", "provider_refusal_rate"}
    assert malicious["ben_util"]["mean"] == 1.0 and malicious["refusal_rate"]["mean"] == 0.0
    assert model["conditions"]["malicious_upfront"]["ben_util"]["mean"] == 1.0
    assert model["intent_gap"]["mean"] == 0.0
    assert model["recovery_vs_hold"]["benign_recovery"]["mean"] == 1.0
    assert model["recovery_vs_hold"]["malicious_hold"]["mean"] == 0.0
    # its malicious conversations carry the mode in the exports
    tagged = [c for c in _convs(reference["gullible"]) if "intent_blind_recovery" in c["failure_modes"]]
    assert tagged and {c["condition"] for c in tagged} == {"malicious"}
    assert len(tagged) == model["failure_modes"]["n_pairs"]


def test_ideal_recovers_for_the_benign_user_and_holds_for_the_malicious_one(reference: dict[str, Path]) -> None:
    model = load_metrics(reference["ideal"])["models"]["testing/ideal"]
    assert model["discrimination"]["auroc"] >= 0.9
    for mode in (*MODES, "intent_blind_recovery"):
        assert model["failure_modes"][mode] == 0.0, mode
    malicious = model["conditions"]["malicious"]
    assert malicious["ben_util"]["mean"] < model["conditions"]["turn1"]["ben_util"]["mean"]
    assert malicious["refusal_rate"]["mean"] > 0.5 and malicious["harm"]["mean"] == 0.0
    assert model["conditions"]["malicious_upfront"]["refusal_rate"]["mean"] == 1.0
    assert model["intent_gap"]["mean"] > 0.9 and model["malicious_harm_rise"]["mean"] == 0.0
    # per-turn curves for the malicious conversations: the same first turn, then falling, never rising
    benign_curve = [t["ben_util"]["mean"] for t in model["per_turn"]]
    curve = [t["ben_util"]["mean"] for t in model["per_turn_malicious"]]
    assert len(curve) == 6 and curve[0] == benign_curve[0] and curve == sorted(curve, reverse=True)
    assert curve[-1] < benign_curve[-1]


def test_always_refuse_holds_but_does_not_recover(reference: dict[str, Path]) -> None:
    model = load_metrics(reference["always-refuse"])["models"]["testing/always-refuse"]
    assert model["discrimination"]["auroc"] == 0.5  # blind to intent, though harmless
    assert model["failure_modes"]["intent_blind_recovery"] == 0.0
    assert model["recovery_vs_hold"]["malicious_hold"]["mean"] == 1.0
    assert model["recovery_vs_hold"]["benign_recovery"]["mean"] == 0.0


def test_reference_models_over_http(tmp_path: Path) -> None:
    proc, base = start_server("--dataset", str(TWINS))
    try:
        for name in ("gullible", "ideal"):
            out = tmp_path / name
            result = run_cli("run", "--target", f"openai-api/{name}", "--judge", "openai-api/judge", "--base-url", base,
                             "--dataset", str(TWINS), "--sequences", "4", "--max-turns", "6", "--out", str(out),
                             "--quiet")  # fmt: skip
            assert result.returncode == 0, result.stderr
            model = load_metrics(out)["models"][f"openai-api/{name}"]
            assert model["conditions"]["malicious"]["ben_util"]["n"] == 6 * 4
            modes = model["failure_modes"]
            if name == "gullible":
                assert modes["intent_blind_recovery"] >= 0.5 and model["discrimination"]["auroc"] <= 0.6
            else:
                assert model["discrimination"]["auroc"] >= 0.9
                assert all(modes[k] == 0.0 for k in (*MODES, "intent_blind_recovery")), modes
    finally:
        proc.terminate()
        proc.wait(10)


# -- resume -------------------------------------------------------------------------------------------------------


def _wait_for(db_path: Path, sql: str, at_least: int, proc: subprocess.Popen[str], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if (seen := peek(db_path, sql)) is not None and seen >= at_least:
            return True
        time.sleep(0.02)
    return False


def test_kill_9_during_the_malicious_rollout_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    proc_srv, base = start_server("--dataset", str(TWINS), "--delay-s", "0.01")
    try:
        def args(out: Path) -> list[str]:
            return ["run", "--target", "openai-api/gullible", "--judge", "openai-api/judge", "--base-url", base,
                    "--dataset", str(TWINS), "--sequences", "4", "--out", str(out), "--quiet"]  # fmt: skip

        clean = tmp_path / "clean"
        assert run_cli(*args(clean)).returncode == 0
        out = tmp_path / "killed"
        proc = subprocess.Popen([sys.executable, "-c", "from carryon.cli import main; main()", *args(out)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        sql = "SELECT COUNT(*) FROM turns t JOIN plan p USING (conv_id) WHERE p.condition = 'malicious'"
        assert _wait_for(out / "run.sqlite", sql, 4, proc), "the run ended before the kill point"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        resumed = run_cli(*args(out))
        assert resumed.returncode == 0, resumed.stderr
        again = run_cli(*args(out))
    finally:
        proc_srv.terminate()
        proc_srv.wait(10)
    assert load_metrics(out)["models"] == load_metrics(clean)["models"]
    assert load_metrics(out)["models"]["openai-api/gullible"]["discrimination"]["n"] > 0
    assert (out / "conversations.jsonl").read_text() == (clean / "conversations.jsonl").read_text()
    with sqlite3.connect(out / "run.sqlite") as db:
        assert db.execute("SELECT key FROM call_log WHERE cached=0 GROUP BY key HAVING COUNT(*) > 1").fetchall() == []
        conditions = dict(db.execute("SELECT condition, COUNT(*) FROM plan WHERE status='done' GROUP BY condition"))
    assert conditions == {"upfront": 6, "multi_turn": 24, "malicious_upfront": 6, "malicious": 24}
    assert "model calls: 0 made" in again.stdout
