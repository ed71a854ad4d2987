from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from carryon.core.chat import ChatResult, Usage
from carryon.store import MIGRATIONS, STORE_SCHEMA, PlanRow, Store
from conftest import REPO, run_cli

RUN_0_1_0 = REPO / "tests" / "fixtures" / "run-0.1.0"


def test_call_cache_roundtrip_and_log(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        result = ChatResult(text="hello", finish_reason="stop", usage=Usage(prompt_tokens=3, completion_tokens=1), latency_s=0.5)
        store.add_call("k1", "target", "testing/ideal", result)
        store.log_cache_hit("k1", "target", "testing/ideal")
        assert store.cached_call("k1") == result
        assert store.cached_call("k2") is None
        log = store.db.execute("SELECT cached, COUNT(*) FROM call_log GROUP BY cached ORDER BY cached").fetchall()
        assert [tuple(r) for r in log] == [(0, 1), (1, 1)]
    with Store(tmp_path) as again:  # persisted
        assert again.cached_call("k1") == result
        assert again.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_plan_is_idempotent_and_reset_drops_partial_turns(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        rows = [("a/s00", "a", "multi_turn", 0, ["purpose"]), ("a/upfront", "a", "upfront", -1, [])]
        store.add_plan(rows)
        store.add_plan(rows)
        assert store.plan() == [PlanRow("a/s00", "a", "multi_turn", 0, ("purpose",), "pending", None),
                                PlanRow("a/upfront", "a", "upfront", -1, (), "pending", None)]  # fmt: skip
        store.add_turn("a/s00", 0, None, "q", ChatResult(text="r"))
        store.reset_conversation("a/s00")
        assert store.db.execute("SELECT COUNT(*) FROM turns WHERE conv_id='a/s00'").fetchone()[0] == 0
        assert store.plan_counts() == {"pending": 2}


def test_turns_stream_in_plan_order_whatever_the_chunk_and_missing_judgements_are_counted(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.add_plan([(f"i{n}/s00", f"i{n}", "multi_turn", 0, ["purpose"]) for n in range(7)])
        for n in (6, 2, 0, 5, 3):  # finished out of plan order; i1 and i4 stay pending
            for idx in range(2):
                store.add_turn(f"i{n}/s00", idx, None, "q", ChatResult(text=f"r{n}.{idx}"))
            store.finish_conversation(f"i{n}/s00", "done", "sequence_complete")
        expected = [(f"i{n}/s00", idx) for n in (0, 2, 3, 5, 6) for idx in range(2)]
        for chunk in (1, 2, 3, 500):
            assert [(r.conv_id, r.idx) for r in store.iter_turns(chunk=chunk)] == expected
        items = [f"i{n}" for n in range(7)]
        assert store.count_missing_judgements(items, ["j"], ("harm", "response_type")) == 20
        store.add_judgement("i0/s00", 1, "harm", "j", "p@1", 0.0, {}, None, "{}")
        store.add_judgement("i1/s00", 0, "harm", "j", "p@1", 0.0, {}, None, "{}")  # conversation not finished
        assert store.count_missing_judgements(items, ["j"], ("harm", "response_type")) == 19
        assert store.count_missing_judgements(["i0"], ["j", "k"], ("harm",)) == 3
        assert [r.judge for r in store.judgements_of("i0/s00")] == ["j"]


def _without_added(models: dict[str, Any]) -> dict[str, Any]:
    """metrics.json `models` less the keys added since 0.1.0 (by_category, provider_refusal_rate per condition; the
    intent metrics, the malicious twin's conditions and its failure mode, user_fallbacks, the simulator audit)."""
    added = {"by_category", "per_turn_malicious", "discrimination", "intent_gap", "malicious_harm_rise",
             "recovery_vs_hold", "user_fallbacks", "simulator"}  # fmt: skip
    out = {}
    for name, body in models.items():
        body = {k: v for k, v in body.items() if k not in added}
        body["conditions"] = {c: {k: v for k, v in m.items() if k != "provider_refusal_rate"}
                              for c, m in body["conditions"].items() if c not in ("malicious", "malicious_upfront")}
        modes = {k: v for k, v in body["failure_modes"].items()
                 if k not in ("intent_blind_recovery", "n_pairs", "unlabelled_pairs")}  # fmt: skip
        modes["ci"] = {k: v for k, v in modes["ci"].items() if k != "intent_blind_recovery"}
        body["failure_modes"] = modes
        out[name] = body
    return out


def test_a_run_written_by_0_1_0_opens_migrates_and_reports(tmp_path: Path) -> None:
    """tests/fixtures/run-0.1.0 was written by CarryOn 0.1.0 (`--target testing/ideal --judge testing/judge --limit 1
    --sequences 2 --max-turns 6`): no user_version, the limiter history keyed by role."""
    run = tmp_path / "run"
    shutil.copytree(RUN_0_1_0, run)
    with sqlite3.connect(run / "run.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    result = run_cli("report", str(run))
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(run / "run.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == STORE_SCHEMA == len(MIGRATIONS)
        assert [c[1] for c in db.execute("PRAGMA table_info(limits)")] == ["endpoint", "ts", "value"]
    old = json.loads((RUN_0_1_0 / "metrics.json").read_text())
    new = json.loads((run / "metrics.json").read_text())
    assert _without_added(new["models"]) == old["models"]  # the same numbers from the same store
    assert (run / "report.html").is_file()
    with Store(run) as store:  # migration 3 added the calls' token columns; a cached call keeps them
        store.add_call("k", "target", "m", ChatResult(text="x", usage=Usage(cached_tokens=5, reasoning_tokens=7)))
        cached = store.cached_call("k")
    assert cached is not None and (cached.usage.cached_tokens, cached.usage.reasoning_tokens) == (5, 7)


def test_a_development_store_that_has_the_token_columns_migrates(tmp_path: Path) -> None:
    """Development builds before migration 3 added calls.cached_tokens/reasoning_tokens on open (user_version 0)."""
    with sqlite3.connect(tmp_path / "run.sqlite") as db:
        db.executescript(MIGRATIONS[0])
        db.execute("ALTER TABLE calls ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0")
        db.execute("ALTER TABLE calls ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0")
    with Store(tmp_path):
        pass
    with sqlite3.connect(tmp_path / "run.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == STORE_SCHEMA
        assert [c[1] for c in db.execute("PRAGMA table_info(calls)")][-2:] == ["cached_tokens", "reasoning_tokens"]


def test_a_store_from_a_newer_carryon_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    with Store(run) as store:
        store.set_meta("identity", {})
    with sqlite3.connect(run / "run.sqlite") as db:
        db.execute(f"PRAGMA user_version = {STORE_SCHEMA + 1}")
    for args in (["report", str(run)],
                 ["run", "--target", "testing/ideal", "--judge", "testing/judge", "--limit", "1", "--sequences", "1",
                  "--out", str(run), "--quiet"]):  # fmt: skip
        result = run_cli(*args)
        assert result.returncode == 2, result.stderr
        assert f"written by a newer CarryOn (store schema {STORE_SCHEMA + 1}" in result.stderr
