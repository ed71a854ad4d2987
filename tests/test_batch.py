"""Batch mode (`--batch judge`, `--batch target,user`) against the fake server's OpenAI Batch API and Anthropic Message
Batches: the same metrics as a synchronous run; a kill during a live batch loses nothing and submits nothing twice;
failed and expired requests are submitted again, alone."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from carryon.batching import BatchClient
from carryon.core.errors import ModelCallError
from carryon.core.chat import ChatRequest, ChatResult, msgs
from carryon.models.batch_api import BatchState, Outcomes
from carryon.store import Store
from conftest import load_metrics, peek, run_cli, start_server

LIMIT = ("--limit", "3", "--sequences", "3")


def _args(base: str, dataset: Path, out: Path, *extra: str, judge: str = "openai-api/judge") -> list[str]:
    return ["run", "--target", "openai-api/ideal", "--judge", judge, "--base-url", base, "--dataset", str(dataset),
            *LIMIT, "--out", str(out), "--quiet", "--batch-poll", "0.1", *extra]  # fmt: skip


def _conditions(out: Path) -> dict[str, Any]:
    conditions: dict[str, Any] = load_metrics(out)["models"]["openai-api/ideal"]["conditions"]
    return conditions


@pytest.fixture(scope="module")
def sync_run(fake_server: str, small_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sync") / "run"
    result = run_cli(*_args(fake_server, small_dataset, out))
    assert result.returncode == 0, result.stderr
    return out


def _stats(base: str) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{base}/stats").json()["batch"]
    return stats


def _no_call_made_twice(out: Path) -> None:
    with sqlite3.connect(out / "run.sqlite") as db:
        assert db.execute("SELECT key FROM call_log WHERE cached=0 GROUP BY key HAVING COUNT(*) > 1").fetchall() == []


@pytest.mark.parametrize("roles", ["judge", "target,user"])
def test_batched_runs_match_a_synchronous_run(roles: str, sync_run: Path, small_dataset: Path, tmp_path: Path) -> None:
    proc, base = start_server("--batch-latency-s", "0.3")
    try:
        out = tmp_path / "batched"
        extra = ["--batch", roles] + (["--user", "openai-api/user"] if "user" in roles else [])
        result = run_cli(*_args(base, small_dataset, out, *extra))
        assert result.returncode == 0, result.stderr
        stats = _stats(base)
    finally:
        proc.terminate()
        proc.wait(10)
    assert stats["wasteful"] == 0 and stats["requests"] == stats["distinct"] > 0
    with sqlite3.connect(out / "run.sqlite") as db:
        per_role = dict(db.execute("SELECT role, COUNT(*) FROM batches WHERE status='completed' GROUP BY role"))
        unbatched = dict(db.execute("SELECT role, COUNT(*) FROM call_log WHERE cached=0 AND batch_id IS NULL "
                                    "GROUP BY role"))  # fmt: skip
    batched = set(roles.split(","))
    calling = {"target", "judge"} | ({"user"} if "user" in roles else set())
    assert set(per_role) == batched and set(unbatched) == calling - batched
    usage = load_metrics(out)["usage"]["roles"]
    assert all(usage[role]["calls_batched"] == usage[role]["calls_made"] > 0 for role in batched)
    if "target" in batched:  # turn-synchronous rounds: one target batch per turn, not one per conversation
        assert per_role["target"] <= 6 + 2
    if "user" not in roles:  # an LLM user changes the conversations; its run is checked against its own
        assert _conditions(out) == _conditions(sync_run)
    else:
        ref = tmp_path / "sync-user"
        assert run_cli(*_args(base_url_of(sync_run), small_dataset, ref, "--user", "openai-api/user")).returncode == 0
        assert _conditions(out) == _conditions(ref)
    _no_call_made_twice(out)


def base_url_of(run: Path) -> str:
    with sqlite3.connect(run / "run.sqlite") as db:
        return str(json.loads(db.execute("SELECT value FROM meta WHERE key='config'").fetchone()[0])["base_url"])


def test_anthropic_message_batches_judge_with_prompt_caching(sync_run: Path, small_dataset: Path,
                                                             tmp_path: Path) -> None:  # fmt: skip
    proc, base = start_server("--batch-latency-s", "0.3")
    try:
        out = tmp_path / "anthropic"
        env = {"ANTHROPIC_API_KEY": "test-key", "ANTHROPIC_BASE_URL": base.removesuffix("/v1")}
        result = run_cli(*_args(base, small_dataset, out, "--batch", "judge", judge="anthropic/judge"), env=env)
        assert result.returncode == 0, result.stderr
        stats = _stats(base)
    finally:
        proc.terminate()
        proc.wait(10)
    assert stats["wasteful"] == 0 and stats["batches"] >= 1
    assert _conditions(out) == _conditions(sync_run)
    judge = load_metrics(out)["usage"]["roles"]["judge"]
    # the judges' shared prefix is marked for caching: the fake provider reads it from its cache after the first
    assert judge["calls_batched"] == judge["calls_made"] and judge["cached_input_tokens"] > 0
    assert 0 < judge["cached_share"] < 1


def _wait_live(out: Path, proc: subprocess.Popen[str], timeout: float = 90) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if peek(out / "run.sqlite", "SELECT COUNT(*) FROM batches WHERE status='live'"):
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("role", ["judge", "target"])
def test_kill_during_a_live_batch_then_resume_submits_nothing_twice(role: str, sync_run: Path, small_dataset: Path,
                                                                    tmp_path: Path) -> None:  # fmt: skip
    proc_srv, base = start_server("--batch-latency-s", "2")
    try:
        out = tmp_path / "killed"
        args = _args(base, small_dataset, out, "--batch", role)
        proc = subprocess.Popen([sys.executable, "-c", "from carryon.cli import main; main()", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        assert _wait_live(out, proc), "no batch went live before the run ended"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        with sqlite3.connect(out / "run.sqlite") as db:
            open_ = db.execute("SELECT batch_id, status FROM batches WHERE status IN ('live', 'submitting')").fetchall()
        at_provider = _stats(base)["batches"]
        # a kill may also land between a batch's acceptance and its record turning live: still `submitting`
        assert any(status == "live" for _, status in open_) and at_provider <= len(open_), (open_, at_provider)
        resumed = run_cli(*args)
        assert resumed.returncode == 0, resumed.stderr
        stats = _stats(base)
        again = run_cli(*args)
    finally:
        proc_srv.terminate()
        proc_srv.wait(10)
    # the open batches were collected, not submitted again: every request went to the provider exactly once
    assert stats["wasteful"] == 0 and stats["requests"] == stats["distinct"], (stats, resumed.stdout)
    with sqlite3.connect(out / "run.sqlite") as db:
        ended = {b: db.execute("SELECT status, remote_id, n FROM batches WHERE batch_id=?", (b,)).fetchone()
                 for b, _ in open_}  # fmt: skip
        assert sum(status == "completed" for status, _, _ in ended.values()) == at_provider
        for batch_id, (status, remote_id, n) in ended.items():
            assert status in ("completed", "not_submitted"), status  # collected, or found never to have arrived
            if status == "completed":
                done = db.execute("SELECT COUNT(*) FROM batch_requests WHERE batch_id=? AND state='done'",
                                  (batch_id,)).fetchone()[0]  # fmt: skip
                assert done == n
                assert db.execute("SELECT COUNT(*) FROM call_log WHERE batch_id=?", (remote_id,)).fetchone()[0] > 0
    assert _conditions(out) == _conditions(sync_run)
    _no_call_made_twice(out)
    assert "model calls: 0 made" in again.stdout


def test_failed_and_expired_requests_are_resubmitted_alone(sync_run: Path, small_dataset: Path,
                                                           tmp_path: Path) -> None:  # fmt: skip
    proc, base = start_server("--batch-latency-s", "0.2", "--batch-fail", "0.2", "--batch-expire", "0.5",
                              "--seed", "5")  # fmt: skip
    try:
        out = tmp_path / "flaky"
        result = run_cli(*_args(base, small_dataset, out, "--batch", "judge,target"))
        assert result.returncode == 0, result.stderr
        stats = _stats(base)
    finally:
        proc.terminate()
        proc.wait(10)
    with sqlite3.connect(out / "run.sqlite") as db:
        statuses = {r[0] for r in db.execute("SELECT status FROM batches")}
        failed = [r[0] for r in db.execute("SELECT key FROM batch_requests WHERE state='failed'")]
        resent = db.execute(
            "SELECT COUNT(*) FROM batch_requests f JOIN batch_requests d ON d.key=f.key AND d.state='done' "
            "WHERE f.state='failed'").fetchone()[0]  # fmt: skip
        succeeded_twice = db.execute("SELECT key FROM batch_requests WHERE state='done' GROUP BY key "
                                     "HAVING COUNT(*) > 1").fetchall()  # fmt: skip
    assert "expired" in statuses and failed, (statuses, len(failed))
    assert resent == len(failed)  # every failed or expired request was answered by a later batch
    assert succeeded_twice == [] and stats["wasteful"] == 0  # and nothing that had succeeded was sent again
    assert stats["requests"] == stats["distinct"] + len(failed)
    assert _conditions(out) == _conditions(sync_run)


# -- BatchClient against an in-memory batch API: reconciling what a killed process left ----------------------------
class MemoryAPI:
    provider = "openai"
    endpoint = "memory://batches"
    max_requests = 100

    def __init__(self) -> None:
        self.submitted: list[list[str]] = []
        self.remote: dict[str, dict[str, bool]] = {}  # remote id -> key -> succeeded
        self.metadata: dict[str, str] = {}  # local id -> remote id
        self.fail_once: set[str] = set()
        self.always_fail: set[str] = set()

    async def submit(self, local_id: str, requests: list[tuple[str, ChatRequest]]) -> str:
        remote = f"b{len(self.remote)}"
        keys = [k for k, _ in requests]
        self.submitted.append(keys)
        self.remote[remote] = {k: k not in self.fail_once | self.always_fail for k in keys}
        self.fail_once -= set(keys)
        self.metadata[local_id] = remote
        return remote

    async def poll(self, remote_id: str) -> BatchState:
        return BatchState(remote_id, True, "completed", {"id": remote_id})

    async def results(self, state: BatchState) -> Outcomes:
        return {k: ChatResult(text=f"answer {k[:6]}") if ok else "batch request failed: HTTP 500"
                for k, ok in self.remote[state.remote_id].items()}  # fmt: skip

    async def find(self, local_id: str, n: int, since: float, known: set[str]) -> str | None:
        return self.metadata.get(local_id)


def _requests(n: int) -> tuple[list[ChatRequest], list[str]]:
    requests = [ChatRequest(messages=msgs(("user", f"question {i}"))) for i in range(n)]
    return requests, [r.cache_key("openai-api/m") for r in requests]


def _complete_all(api: MemoryAPI, store: Store, requests: list[ChatRequest]) -> list[ChatResult | BaseException]:
    async def go() -> list[ChatResult | BaseException]:
        client = BatchClient("judge", "openai-api/m", api, store, poll_s=0.01, settle_s=0.01, max_attempts=3)
        try:
            return list(await asyncio.gather(*(client.complete(r) for r in requests), return_exceptions=True))
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_a_batch_recorded_as_submitting_is_found_and_collected_not_resubmitted(tmp_path: Path) -> None:
    api = MemoryAPI()
    requests, keys = _requests(3)
    with Store(tmp_path) as store:
        # a process recorded the batch, the provider accepted it, and the process died before marking it live
        store.add_batch("carryon-x", "openai", "judge", "openai-api/m", api.endpoint, keys)
        asyncio.run(api.submit("carryon-x", list(zip(keys, requests, strict=True))))
        results = _complete_all(api, store, requests)
    assert [r.text for r in results if isinstance(r, ChatResult)] == [f"answer {k[:6]}" for k in keys]
    assert len(api.submitted) == 1  # found by its metadata and collected; never sent again


def test_a_lost_batch_is_submitted_afresh_and_only_failures_again_until_they_give_up(tmp_path: Path) -> None:
    api = MemoryAPI()
    requests, keys = _requests(4)
    api.fail_once, api.always_fail = {keys[0]}, {keys[3]}
    with Store(tmp_path) as store:
        store.add_batch("carryon-lost", "openai", "judge", "openai-api/m", api.endpoint, keys)  # never sent
        results = _complete_all(api, store, requests)
        lost = store.db.execute("SELECT status FROM batches WHERE batch_id='carryon-lost'").fetchone()[0]
    assert lost == "not_submitted"
    assert all(isinstance(r, ChatResult) for r in results[:3])
    assert isinstance(results[3], ModelCallError) and "failed 3 times" in str(results[3])
    assert api.submitted == [keys, [keys[0], keys[3]], [keys[3]]]  # all; then what failed, alone; then the last


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--batch", "judge", "--judge", "testing/judge"], "testing/judge has no batch API"),
        (["--batch", "user"], "scripted user makes no model calls"),
        (["--batch", "grader"], "--batch"),
        (["--base-url", "http://127.0.0.1:1/v1,ftp://x"], "not an http(s) URL"),
        (["--base-url", "http://127.0.0.1:1/v1,http://127.0.0.1:1/v1/"], "listed twice"),
    ],
)
def test_batch_and_endpoint_flags_are_checked_before_any_call(flags: list[str], message: str, small_dataset: Path,
                                                              tmp_path: Path) -> None:  # fmt: skip
    args = ["run", "--target", "openai-api/ideal", "--judge", "openai-api/judge", "--base-url", "http://127.0.0.1:1/v1",
            "--dataset", str(small_dataset), "--out", str(tmp_path / "run"), "--quiet", *flags]  # fmt: skip
    result = run_cli(*args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
