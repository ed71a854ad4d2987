"""Shared fixtures: a small dataset, the deterministic fake OpenAI-compatible server over real HTTP, and helpers."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from carryon.data.load import builtin_path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 6 built-in items (one per category, by the file's round-robin order)."""
    path = tmp_path_factory.mktemp("data") / "small.jsonl"
    lines = builtin_path().read_text(encoding="utf-8").splitlines()[:6]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def twinned(path: Path) -> int:
    """How many items of a dataset file have a malicious twin: each is played twice under the default
    `--conditions all` (once by the benign user, once by the twin)."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return sum(1 for line in lines if json.loads(line).get("malicious"))


def start_server(*args: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "carryon.testing.server", "--port", str(port), *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/models", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    error = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""  # was printed as b'…'
    raise RuntimeError(f"fake server did not start: {error}")


@pytest.fixture(scope="session")
def fake_server() -> Iterator[str]:
    """Base URL of a fault-free fake server, shared by the session."""
    proc, base = start_server()
    yield base
    proc.terminate()
    proc.wait(10)


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real `carryon` command in a subprocess (as a user would)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", "from carryon.cli import main; main()", *args],
        capture_output=True, text=True, timeout=timeout, env=full_env,
    )  # fmt: skip


@dataclass(frozen=True)
class Invoked:
    returncode: int
    stdout: str
    stderr: str


def invoke(*args: str, env: dict[str, str] | None = None) -> Invoked:
    """Run the `carryon` command in this process (typer's CliRunner): as a user would, without a new interpreter."""
    from typer.testing import CliRunner

    from carryon.cli import app

    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    return Invoked(result.exit_code, result.stdout, result.stderr)


def peek(db_path: Path, sql: str) -> int | None:
    """The first column of `sql`'s first row, read from a run store another process is writing, or None while it
    cannot be read. Read-only: a plain connect would create an empty file the run then refuses as not its store."""
    if not db_path.exists():
        return None
    try:
        with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1)) as db:
            row = db.execute(sql).fetchone()
    except sqlite3.Error:
        return None
    return int(row[0]) if row and row[0] is not None else None


def load_metrics(out: Path) -> dict[str, Any]:
    metrics: dict[str, Any] = json.loads((out / "metrics.json").read_text())
    return metrics


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Any:
    """Headless Debian Chromium for the report tests (one per test module)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian chromium is required for the report tests: run `bash scripts/test.sh` (it installs it)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()
