"""One command per run directory, and never a foreign one (issue 13): a second command on a locked DIR exits 2 at once
naming the holder's pid; a non-empty non-CarryOn --out, an empty --out and a foreign run.sqlite are refused untouched."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from carryon.rundir import LOCK_FILE, locked
from conftest import run_cli, start_server

RUN = ["run", "--target", "testing/ideal", "--judge", "testing/judge", "--limit", "1", "--sequences", "1", "--quiet"]


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def test_a_second_command_on_a_locked_dir_exits_2_at_once_naming_the_holder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert run_cli(*RUN, "--out", str(out)).returncode == 0
    with locked(out):
        for args in (RUN + ["--out", str(out)], ["report", str(out)]):
            started = time.monotonic()
            result = run_cli(*args)
            assert result.returncode == 2, result.stderr
            assert time.monotonic() - started < 15
            assert f"in use by another CarryOn command (pid {os.getpid()})" in result.stderr
    assert run_cli("report", str(out)).returncode == 0  # released with the lock


def test_two_runs_on_one_dir_cannot_both_write(small_dataset: Path, tmp_path: Path) -> None:
    proc_srv, base = start_server("--delay-s", "0.02")
    out = tmp_path / "run"
    args = ["run", "--target", "openai-api/ideal", "--judge", "openai-api/judge", "--base-url", base, "--dataset",
            str(small_dataset), "--sequences", "3", "--out", str(out), "--quiet"]  # fmt: skip
    try:
        first = subprocess.Popen([sys.executable, "-c", "from carryon.cli import main; main()", *args],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        deadline = time.monotonic() + 60
        while not (out / "run.sqlite").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        second = run_cli(*args)
        stdout, stderr = first.communicate(timeout=300)
    finally:
        proc_srv.terminate()
        proc_srv.wait(10)
    assert second.returncode == 2 and f"(pid {first.pid})" in second.stderr, second.stderr
    assert first.returncode == 0, stderr
    with sqlite3.connect(out / "run.sqlite") as db:
        assert db.execute("SELECT key FROM call_log WHERE cached=0 GROUP BY key HAVING COUNT(*) > 1").fetchall() == []


def test_a_non_empty_foreign_out_is_refused_untouched(tmp_path: Path) -> None:
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "report.html").write_text("<p>my own report</p>")
    (out / "notes.txt").write_text("do not touch")
    before = _digest(out)
    result = run_cli(*RUN, "--out", str(out))
    assert result.returncode == 2 and "not empty and not a CarryOn run" in result.stderr, result.stderr
    assert _digest(out) == before and not (out / LOCK_FILE).exists()
    assert run_cli(*RUN, "--out", str(out), "--force-new").returncode == 2


@pytest.mark.parametrize("content", ["sqlite", "text"])
def test_a_foreign_run_sqlite_is_never_modified(tmp_path: Path, content: str) -> None:
    out = tmp_path / "run"
    out.mkdir()
    store = out / "run.sqlite"
    if content == "sqlite":
        with sqlite3.connect(store) as db:
            db.execute("CREATE TABLE users (name TEXT)")
            db.execute("INSERT INTO users VALUES ('alice')")
    else:
        store.write_text("not a database at all")
    before = _digest(out)
    for args in (RUN + ["--out", str(out)], RUN + ["--out", str(out), "--force-new"], ["report", str(out)]):
        result = run_cli(*args)
        assert result.returncode == 2 and "not a CarryOn run store" in result.stderr, result.stderr
    assert _digest(out) == before


def test_a_store_killed_before_its_schema_was_written_is_taken(tmp_path: Path) -> None:
    # SQLite creates run.sqlite at connect, empty; a kill before the first commit leaves zero bytes: nothing to lose
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.sqlite").touch()
    result = run_cli(*RUN, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert (out / "metrics.json").exists() and (out / "run.sqlite").stat().st_size > 0


def test_empty_out_is_refused(tmp_path: Path) -> None:
    for args in (RUN + ["--out", ""], ["report", ""], ["compare", str(tmp_path), "--out", ""]):
        result = subprocess.run([sys.executable, "-c", "from carryon.cli import main; main()", *args],
                                capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
        assert result.returncode == 2 and "empty path" in result.stderr, (args, result.stderr)
    assert list(tmp_path.iterdir()) == []


def test_a_run_made_before_the_application_id_still_resumes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert run_cli(*RUN, "--out", str(out)).returncode == 0
    with sqlite3.connect(out / "run.sqlite") as db:
        db.execute("PRAGMA application_id=0")  # as 0.1.0 left its stores
    again = run_cli(*RUN, "--out", str(out))
    assert again.returncode == 0 and "model calls: 0 made" in again.stdout, again.stderr
