"""A broken or hostile server can neither wedge a run nor crash it (issue 13): a dead, hanging or always-429 endpoint
stops the run within the bound with one clear line; lone surrogates, huge and empty-length answers are stored safely
or never; `Retry-After` is honoured up to a cap and ignored when unparseable."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import load_metrics, run_cli, start_server

GIVE_UP_S = 3.0
TIMEOUT_S = 2.0
BOUND_S = 20.0  # give-up window + one request timeout + process start on a loaded 2-core machine


def _args(base: str, dataset: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--target", "openai-api/ideal", "--judge", "openai-api/judge", "--base-url", base,
            "--dataset", str(dataset), "--sequences", "2", "--out", str(out), "--quiet", *extra]  # fmt: skip


def _turns(out: Path) -> list[dict[str, Any]]:
    return [t for line in (out / "conversations.jsonl").read_text(encoding="utf-8").splitlines()
            for t in json.loads(line)["turns"]]  # fmt: skip


@pytest.mark.parametrize(
    ("server_args", "expected"),
    [
        (["--mode", "error"], "HTTP 500"),
        (["--mode", "hang", "--hang-s", "60"], "TimeoutError"),
        (["--mode", "429", "--retry-after", "999999"], "HTTP 429"),
        (["--mode", "429", "--retry-after", "soon-ish"], "HTTP 429"),
    ],
    ids=["dead-500", "hanging", "429-retry-after-999999", "429-retry-after-garbage"],
)
def test_failing_endpoint_stops_the_run_within_the_bound(small_dataset: Path, tmp_path: Path,
                                                         server_args: list[str], expected: str) -> None:  # fmt: skip
    proc, base = start_server("--ok-first", "10", *server_args)
    out = tmp_path / "run"
    try:
        started = time.monotonic()
        result = run_cli(*_args(base, small_dataset, out, "--give-up-after", str(GIVE_UP_S), "--timeout",
                                str(TIMEOUT_S)))  # fmt: skip
        elapsed = time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(10)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert elapsed < BOUND_S, elapsed
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert "openai-api/ideal at " + base in line and "no successful call for" in line and expected in line, line
    assert "re-run the same command to resume" in line and "Traceback" not in result.stderr
    assert "\x1b" not in result.stderr  # the 500 body's ANSI codes are shown escaped, never raw
    if "error" in server_args:
        assert "\\x1b[31mboom" in line


def test_finished_work_is_kept_when_the_endpoint_dies(fake_server: str, small_dataset: Path, tmp_path: Path) -> None:
    proc, base = start_server("--ok-first", "12", "--mode", "error")
    out = tmp_path / "run"
    try:
        stopped = run_cli(*_args(base, small_dataset, out, "--give-up-after", "2"))
    finally:
        proc.terminate()
        proc.wait(10)
    assert stopped.returncode == 1
    with sqlite3.connect(out / "run.sqlite") as db:
        done = db.execute("SELECT COUNT(*) FROM plan WHERE status='done'").fetchone()[0]
        made_before = db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    assert done > 0 and made_before > 0
    stopped_metrics = load_metrics(out)  # the outputs show what finished, marked as such
    assert stopped_metrics["complete"] is False and stopped_metrics["pending"]["conversations"] > 0
    assert 'id="partial"' in (out / "report.html").read_text(encoding="utf-8")
    resumed = run_cli(*_args(fake_server, small_dataset, out))  # same run, a healthy server
    assert resumed.returncode == 0, resumed.stderr
    with sqlite3.connect(out / "run.sqlite") as db:
        twice = db.execute("SELECT key FROM call_log WHERE cached=0 GROUP BY key HAVING COUNT(*) > 1").fetchall()
        assert db.execute("SELECT COUNT(*) FROM plan WHERE status!='done'").fetchone()[0] == 0
    assert twice == []  # nothing finished before the stop was paid for again
    assert load_metrics(out)["complete"] is True


def test_lone_surrogate_is_stored_with_a_recorded_replacement(small_dataset: Path, tmp_path: Path) -> None:
    proc, base = start_server("--mode", "surrogate")
    out = tmp_path / "run"
    try:
        first = run_cli(*_args(base, small_dataset, out))
        again = run_cli(*_args(base, small_dataset, out))
    finally:
        proc.terminate()
        proc.wait(10)
    assert first.returncode == 0, first.stderr
    assert "model calls: 0 made" in again.stdout  # stored once, never paid for again
    turns = _turns(out)
    assert turns and all(t["response"].startswith("\ufffd") and t["replaced"] == 1 for t in turns)
    assert load_metrics(out)["bounded_text"]["responses_with_replaced_characters"] == len(turns)
    assert "lone surrogates" in (out / "report.html").read_text(encoding="utf-8")


def test_huge_answers_are_cut_to_the_cap_and_the_cut_recorded(small_dataset: Path, tmp_path: Path) -> None:
    proc, base = start_server("--mode", "huge", "--body-bytes", "2000000")
    out = tmp_path / "run"
    try:
        result = run_cli(*_args(base, small_dataset, out, "--max-response-bytes", "4096"))
    finally:
        proc.terminate()
        proc.wait(10)
    assert result.returncode == 0, result.stderr
    turns = _turns(out)
    assert turns and all(len(t["response"].encode()) <= 4096 and t["truncated_from"] > 2_000_000 for t in turns)
    assert load_metrics(out)["bounded_text"] == {"max_response_bytes": 4096, "truncated_responses": len(turns),
                                                 "responses_with_replaced_characters": 0}  # fmt: skip
    with sqlite3.connect(out / "run.sqlite") as db:
        calls = db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
        cut = db.execute("SELECT COUNT(*) FROM call_notes WHERE truncated_from > 2000000").fetchone()[0]
    assert cut == calls  # every call was 2 MB; each is stored (and sent on) at 4 KiB, in the calls, turns and judgements
    assert (out / "run.sqlite").stat().st_size < calls * 4096 * 4 + 1_000_000 < calls * 2_000_000 // 10
    assert "Response cut to the size cap" in (out / "report.html").read_text(encoding="utf-8")


def test_empty_completion_cut_at_the_token_limit_is_never_cached(small_dataset: Path, tmp_path: Path) -> None:
    proc, base = start_server("--mode", "empty-length")
    out = tmp_path / "run"
    try:
        result = run_cli(*_args(base, small_dataset, out, "--give-up-after", "2"))
    finally:
        proc.terminate()
        proc.wait(10)
    assert result.returncode == 1
    assert "finish_reason=length" in result.stderr and "--max-tokens" in result.stderr
    with sqlite3.connect(out / "run.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 0


def test_progress_shows_retries_as_they_happen(small_dataset: Path, tmp_path: Path) -> None:
    proc, base = start_server("--faults", "0.3", "--seed", "5", "--hang-s", "0.2")
    try:
        args = [a for a in _args(base, small_dataset, tmp_path / "run", "--limit", "2", "--conditions", "benign")
                if a != "--quiet"]  # fmt: skip
        result = run_cli(*args)
        counts = httpx.get(f"{base}/stats").json()
    finally:
        proc.terminate()
        proc.wait(10)
    assert result.returncode == 0, result.stderr
    faults = sum(counts[f] for f in ("429", "500", "503", "bad_json", "empty", "reset"))
    assert faults > 0
    retry_rows = [line for line in result.stderr.splitlines() if line.startswith("retries")]
    assert retry_rows and "last: " in retry_rows[-1], result.stderr


def test_a_body_over_the_read_limit_is_refused_not_read(small_dataset: Path, tmp_path: Path) -> None:
    proc, base = start_server("--mode", "huge", "--body-bytes", "68000000")
    try:
        result = run_cli(*_args(base, small_dataset, tmp_path / "run", "--max-response-bytes", "1024",
                                "--give-up-after", "2"))  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(10)
    assert result.returncode == 1 and "response body over 67125248 bytes" in result.stderr, result.stderr
