"""Runs that never lose work: faults over real HTTP, kill -9 and resume, permanent errors, secrets."""

from __future__ import annotations

import base64
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import load_metrics, run_cli, start_server


def _args(base: str, dataset: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--target", "openai-api/ideal", "--judge", "openai-api/judge", "--base-url", base,
            "--dataset", str(dataset), "--sequences", "9", "--out", str(out), "--quiet", *extra]  # fmt: skip


def _db(out: Path) -> sqlite3.Connection:
    return sqlite3.connect(out / "run.sqlite")


def _no_call_made_twice(out: Path) -> None:
    with _db(out) as db:
        dupes = db.execute("SELECT key, COUNT(*) FROM call_log WHERE cached=0 GROUP BY key HAVING COUNT(*) > 1").fetchall()
        assert dupes == []
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_thirty_percent_faults_change_nothing(fake_server: str, small_dataset: Path, tmp_path: Path) -> None:
    """≥ 50 conversations at a 30% fault rate (429, 5xx, hangs past the timeout, resets, bad JSON, empty
    completions): every conversation completes, no turn is stored twice, metrics equal a fault-free run."""
    clean = tmp_path / "clean"
    assert run_cli(*_args(fake_server, small_dataset, clean)).returncode == 0
    proc, faulty_base = start_server("--faults", "0.3", "--seed", "7", "--hang-s", "2")
    try:
        faulty = tmp_path / "faulty"
        result = run_cli(*_args(faulty_base, small_dataset, faulty, "--timeout", "0.5", "--concurrency", "16"))
        assert result.returncode == 0, result.stderr
        import httpx

        counts = httpx.get(f"{faulty_base}/stats").json()
    finally:
        proc.terminate()
        proc.wait(10)
    assert all(counts[f] > 0 for f in ("429", "500", "503", "hang", "reset", "bad_json", "empty")), counts
    with _db(faulty) as db:
        assert db.execute("SELECT COUNT(*) FROM plan").fetchone()[0] == 6 * 10
        assert db.execute("SELECT COUNT(*) FROM plan WHERE status != 'done'").fetchone()[0] == 0
        turns = db.execute("SELECT COUNT(*) FROM turns").fetchone()[0]
    with _db(clean) as db:
        assert turns == db.execute("SELECT COUNT(*) FROM turns").fetchone()[0]
    _no_call_made_twice(faulty)
    assert load_metrics(faulty)["models"] == load_metrics(clean)["models"]


def test_concurrency_backs_off_on_429_and_is_recorded(small_dataset: Path, tmp_path: Path) -> None:
    proc, base = start_server("--faults", "0.3", "--seed", "3", "--hang-s", "0.2")
    try:
        out = tmp_path / "run"
        assert run_cli(*_args(base, small_dataset, out, "--concurrency", "32")).returncode == 0
    finally:
        proc.terminate()
        proc.wait(10)
    with _db(out) as db:
        history = db.execute("SELECT role, value FROM limits ORDER BY ts").fetchall()
    assert history and min(v for _, v in history) < 32


def _wait_for(out: Path, sql: str, at_least: int, proc: subprocess.Popen[str], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with _db(out) as db:
                if db.execute(sql).fetchone()[0] >= at_least:
                    return True
        except sqlite3.OperationalError:
            pass
        time.sleep(0.02)
    return False


@pytest.mark.parametrize(
    ("stage", "sql", "at_least"),
    [
        ("rollout", "SELECT COUNT(*) FROM turns", 8),
        ("judging", "SELECT COUNT(*) FROM judgements", 20),
        ("report", "SELECT COUNT(*) FROM judgements", 10 ** 6),  # killed as soon as judging ends (analyze/report)
    ],
)
def test_kill_9_then_resume_equals_an_uninterrupted_run(fake_server: str, small_dataset: Path, tmp_path: Path,
                                                        stage: str, sql: str, at_least: int) -> None:  # fmt: skip
    clean = tmp_path / "clean"
    assert run_cli(*_args(fake_server, small_dataset, clean)).returncode == 0
    proc_srv, slow_base = start_server("--delay-s", "0.01")
    try:
        out = tmp_path / "killed"
        args = _args(slow_base, small_dataset, out)
        proc = subprocess.Popen([sys.executable, "-c", "from carryon.cli import main; main()", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        if stage == "report":
            total = _expected_judgements(clean)
            _wait_for(out, "SELECT COUNT(*) FROM judgements", total, proc)
        else:
            assert _wait_for(out, sql, at_least, proc), "the run ended before the kill point"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        resumed = run_cli(*args)
        assert resumed.returncode == 0, resumed.stderr
    finally:
        proc_srv.terminate()
        proc_srv.wait(10)
    assert load_metrics(out)["models"] == load_metrics(clean)["models"]
    assert (out / "report.html").is_file()
    _no_call_made_twice(out)
    again = run_cli(*args)
    assert "model calls: 0 made" in again.stdout


def _expected_judgements(run: Path) -> int:
    with _db(run) as db:
        return int(db.execute("SELECT COUNT(*) FROM judgements").fetchone()[0])


def test_permanent_error_stops_at_once_with_one_clear_line(small_dataset: Path, tmp_path: Path) -> None:
    proc, base = start_server("--auth-key", "right-key")
    try:
        started = time.monotonic()
        result = run_cli(*_args(base, small_dataset, tmp_path / "run"), env={"CARRYON_API_KEY": "wrong-key"})
        elapsed = time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(10)
    assert result.returncode == 1
    assert "HTTP 401 (check the API key)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert elapsed < 20  # no retry loop on a permanent error
    assert "wrong-key" not in result.stderr + result.stdout


SENTINEL = "sk-SENTINEL-5f2a9c"


def _assert_no_sentinel(out: Path, *results: subprocess.CompletedProcess[str]) -> None:
    for result in results:
        assert SENTINEL not in result.stdout + result.stderr, result.stderr
    for path in (p for p in out.rglob("*") if p.is_file()):
        data = path.read_bytes()
        assert SENTINEL.encode() not in data, path
        assert base64.b64encode(f"u:{SENTINEL}".encode()) not in data, path


@pytest.mark.parametrize("where", ["env", "userinfo", "query"])
def test_api_key_never_reaches_files_or_console(small_dataset: Path, tmp_path: Path, where: str) -> None:
    """The key in the environment, in the base URL's userinfo or in its query string: sent correctly (the server
    requires it), and found in no file of the run directory and no console output."""
    proc, base = start_server("--auth-key", SENTINEL)
    host = base.removeprefix("http://")
    url = {"env": base, "userinfo": f"http://u:{SENTINEL}@{host}", "query": f"{base}?api-key={SENTINEL}&x=1"}[where]
    env = {"CARRYON_API_KEY": SENTINEL if where == "env" else ""}
    try:
        out = tmp_path / "run"
        result = run_cli(*_args(url, small_dataset, out), env=env)
        assert result.returncode == 0, result.stderr
        report = run_cli("report", str(out), env=env)
    finally:
        proc.terminate()
        proc.wait(10)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"run.sqlite", "report.html", "metrics.json", "conversations.jsonl"}
    _assert_no_sentinel(out, result, report)
    if where != "env":
        stored = json.loads((out / "metrics.json").read_text())  # the masked URL is what the run records
        with _db(out) as db:
            config = json.loads(db.execute("SELECT value FROM meta WHERE key='config'").fetchone()[0])
        assert "***" in config["base_url"] and "judge" in stored


@pytest.mark.parametrize("status", ["400", "500"])
def test_echoed_authorization_and_url_never_reach_the_console(small_dataset: Path, tmp_path: Path, status: str) -> None:
    """A server whose error body echoes the Authorization header and the request URL (with the key in its query):
    400 stops at once, 500 trips the breaker; either way the one line shows the body masked."""
    proc, base = start_server("--auth-key", SENTINEL, "--mode", "echo-auth", "--status", status)
    out = tmp_path / "run"
    try:
        result = run_cli(*_args(f"{base}?token={SENTINEL}", small_dataset, out, "--give-up-after", "2"),
                         env={"CARRYON_API_KEY": SENTINEL})  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(10)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"HTTP {status}" in result.stderr and "Bearer ***" in result.stderr and "token=***" in result.stderr
    _assert_no_sentinel(out, result)


@pytest.mark.parametrize("problem", ["unreachable", "not served", "malformed port"])
def test_key_in_a_bad_base_url_is_not_printed(fake_server: str, small_dataset: Path, tmp_path: Path,
                                              problem: str) -> None:  # fmt: skip
    host = fake_server.removeprefix("http://").split("/")[0]
    url, target, expected = {
        "unreachable": (f"http://u:{SENTINEL}@127.0.0.1:9/v1?key={SENTINEL}", "ideal", "unreachable"),
        "not served": (f"http://u:{SENTINEL}@{host}/v1", "nonexistent-model", "not served at http://127.0.0.1"),
        "malformed port": (f"http://u:{SENTINEL}@127.0.0.1:99999999/v1", "ideal", "not a valid URL"),
    }[problem]
    args = _args(url, small_dataset, tmp_path / "run")
    args[args.index("openai-api/ideal")] = f"openai-api/{target}"
    result = run_cli(*args)
    assert result.returncode == 2 and expected in result.stderr, result.stderr
    assert SENTINEL not in result.stderr + result.stdout
