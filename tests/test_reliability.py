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

from conftest import load_metrics, peek, run_cli, start_server


def _args(base: str, dataset: Path, out: Path, *extra: str, sequences: int = 9, max_turns: int = 6) -> list[str]:
    # the benign user only: the malicious twin's rollout is the same code path (its kill test: tests/test_intent.py)
    return ["run", "--target", "openai-api/ideal", "--judge", "openai-api/judge", "--base-url", base,
            "--dataset", str(dataset), "--sequences", str(sequences), "--max-turns", str(max_turns),
            "--conditions", "benign", "--out", str(out), "--quiet", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def clean_run(fake_server: str, small_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fault-free reference run the fault and kill tests compare with."""
    clean = tmp_path_factory.mktemp("clean") / "run"
    result = run_cli(*_args(fake_server, small_dataset, clean))
    assert result.returncode == 0, result.stderr
    return clean


def _db(out: Path) -> sqlite3.Connection:
    return sqlite3.connect(out / "run.sqlite")


def _no_call_made_twice(out: Path) -> None:
    with _db(out) as db:
        dupes = db.execute("SELECT key, COUNT(*) FROM call_log WHERE cached=0 GROUP BY key HAVING COUNT(*) > 1").fetchall()
        assert dupes == []
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_thirty_percent_faults_change_nothing(clean_run: Path, small_dataset: Path, tmp_path: Path) -> None:
    """≥ 50 conversations at a 30% fault rate (429, 5xx, hangs past the timeout, resets, bad JSON, empty
    completions): every conversation completes, no turn is stored twice, metrics equal a fault-free run."""
    clean = clean_run
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
    """One limiter for the endpoint that target and judge share; each burst of 429s cuts it once (halving), cuts at
    least the cooldown apart, so the server's many 429s make few cuts and the limit never collapses to 1."""
    import httpx

    from carryon.models.limits import COOLDOWN_S

    proc, base = start_server("--faults", "0.3", "--seed", "3", "--hang-s", "0.2")
    try:
        out = tmp_path / "run"
        # short conversations: the test waits on the longest chain of retried calls, not on the number of calls
        result = run_cli(*_args(base, small_dataset, out, "--concurrency", "32", sequences=3, max_turns=4))
        assert result.returncode == 0, result.stderr
        served_429 = httpx.get(f"{base}/stats").json()["429"]
    finally:
        proc.terminate()
        proc.wait(10)
    with _db(out) as db:
        history = db.execute("SELECT endpoint, ts, value FROM limits ORDER BY ts, rowid").fetchall()
    assert {endpoint for endpoint, _, _ in history} == {base}  # one limiter for target and judge: the endpoint's
    values = [v for _, _, v in history]
    cuts = [(t1, v0, v1) for (_, _, v0), (_, t1, v1) in zip(history, history[1:]) if v1 < v0]
    assert values[0] == 32 and cuts, values
    assert all(v1 == v0 // 2 for _, v0, v1 in cuts), values  # a cut halves, once
    assert all(b[0] - a[0] >= COOLDOWN_S - 0.01 for a, b in zip(cuts, cuts[1:])), cuts
    assert served_429 > 2 * len(cuts), (served_429, cuts)  # bursts were one episode each, not one cut per 429
    assert min(values) >= 4, values


def _wait_for(out: Path, sql: str, at_least: int, proc: subprocess.Popen[str], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if (seen := peek(out / "run.sqlite", sql)) is not None and seen >= at_least:
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize(
    ("stage", "sql", "at_least"),
    [
        ("rollout", "SELECT COUNT(*) FROM turns", 8),
        ("judging", "SELECT COUNT(*) FROM judgements", 20),
        ("report", "", 0),  # killed by itself midway through writing the outputs (see _KILL_IN_REPORT)
    ],
)
def test_kill_9_then_resume_equals_an_uninterrupted_run(clean_run: Path, small_dataset: Path, tmp_path: Path,
                                                        stage: str, sql: str, at_least: int) -> None:  # fmt: skip
    clean = clean_run
    proc_srv, slow_base = start_server("--delay-s", "0.01")
    try:
        out = tmp_path / "killed"
        args = _args(slow_base, small_dataset, out)
        code = (_KILL_IN_REPORT if stage == "report" else "") + "from carryon.cli import main; main()"
        proc = subprocess.Popen([sys.executable, "-c", code, *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        if stage == "report":
            assert proc.wait(120) == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
            assert _expected_judgements(out) == _expected_judgements(clean)  # judging had ended
            written = {p.name for p in out.iterdir()}
            assert not written & {"report.html", "metrics.json", "conversations.jsonl"}, written
            assert ".conversations.jsonl.tmp" in written  # killed with the export half written
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


# Run as the killed process's first lines for the "report" stage: SIGKILL itself when the analyze/report stage has
# exported its third conversation, i.e. after judging and before metrics.json or report.html exist.
_KILL_IN_REPORT = """
import os, signal
from carryon.report.exports import ConversationExport
_add = ConversationExport.add
def _add_then_die(self, conv, modes):
    _add(self, conv, modes)
    if len(self.flagged) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
ConversationExport.add = _add_then_die
"""


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
        result = run_cli(*_args(url, small_dataset, out, "--limit", "2", sequences=1), env=env)
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
