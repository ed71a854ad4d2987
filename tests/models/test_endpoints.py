"""Several endpoints per role: conversation and prefix affinity, least-loaded placement, failing endpoints taken out
and probed back; over real HTTP, the call log names the endpoint of every call and a dying endpoint loses nothing."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from carryon.core.errors import ModelCallError
from carryon.core.chat import ChatRequest, ChatResult, msgs
from carryon.models.endpoints import FAILURES_TO_EJECT, PROBE_FIRST_S, RoutedClient, affinity_key
from carryon.models.retry import EndpointDown
from conftest import load_metrics, peek, run_cli, start_server


class FakeEndpoint:
    """An in-process endpoint: answers after `delay_s`, or fails while `down`."""

    def __init__(self, name: str, delay_s: float = 0.0) -> None:
        self.name, self.delay_s = name, delay_s
        self.down = False
        self.calls: list[str] = []

    async def complete(self, request: ChatRequest) -> ChatResult:
        self.calls.append(request.messages[-1].content)
        await asyncio.sleep(self.delay_s)
        if self.down:
            raise ModelCallError(f"{self.name}: HTTP 503 (gave up after 1 attempts)")
        return ChatResult(text=f"reply to {request.messages[-1].content}")

    async def aclose(self) -> None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _req(*turns: str) -> ChatRequest:
    roles = ["user", "assistant"] * len(turns)
    return ChatRequest(messages=msgs(*zip(roles, turns, strict=False)))  # type: ignore[arg-type]


def test_conversations_stay_on_one_endpoint_and_new_ones_spread_by_load() -> None:
    async def go() -> tuple[list[FakeEndpoint], RoutedClient]:
        eps = [FakeEndpoint(f"e{i}", delay_s=0.01) for i in range(3)]
        router = RoutedClient("openai-api/m", [(e.name, e) for e in eps])

        async def conversation(n: int) -> None:
            with affinity_key(f"conv{n}"):
                history: list[str] = []
                for turn in range(3):
                    history.append(f"c{n} turn {turn}")
                    result = await router.complete(_req(*history))
                    history.append(result.text)

        await asyncio.gather(*(conversation(n) for n in range(12)))
        return eps, router

    eps, router = asyncio.run(go())
    for n in range(12):  # every turn of a conversation on one endpoint
        holders = [e.name for e in eps if any(c.startswith(f"c{n} ") for c in e.calls)]
        assert len(holders) == 1, (n, holders)
    assert sorted(len(e.calls) for e in eps) == [12, 12, 12]  # 12 conversations × 3 turns, spread evenly
    assert router.stats.hits == 12 * 2 and router.stats.moves == 0
    assert router.stats.hit_rate == 1.0


def test_a_turn_follows_its_prefix_even_when_the_first_turn_came_from_elsewhere() -> None:
    """Turn 2 of a conversation whose turn 1 another conversation computed goes where that turn 1 was computed."""

    async def go() -> list[FakeEndpoint]:
        eps = [FakeEndpoint(f"e{i}") for i in range(4)]
        router = RoutedClient("openai-api/m", [(e.name, e) for e in eps])
        with affinity_key("a"):
            first = await router.complete(_req("q"))
        with affinity_key("b"):  # b's first turn was answered from the call cache: the router never saw it
            await router.complete(_req("q", first.text, "b follow-up"))
        return eps

    eps = asyncio.run(go())
    assert [len(e.calls) for e in eps if e.calls] == [2]


def test_failing_endpoint_is_taken_out_then_probed_back() -> None:
    clock = Clock()

    async def go() -> None:
        a, b = FakeEndpoint("a"), FakeEndpoint("b")
        router = RoutedClient("openai-api/m", [("a", a), ("b", b)], clock=clock)
        a.down = True
        for n in range(8):  # a fails; every call still succeeds, retried on b at once
            result = await router.complete(_req(f"q{n}"))
            assert result.endpoint == "b"
        assert router.endpoints[0].failures == FAILURES_TO_EJECT and not router.endpoints[0].healthy(clock.now)
        calls_on_a = len(a.calls)
        for n in range(4):  # out: no call reaches a
            await router.complete(_req(f"r{n}"))
        assert len(a.calls) == calls_on_a
        a.down = False
        clock.now += PROBE_FIRST_S + 0.01  # the pause is over: the next call probes a, which is back
        results = [await router.complete(_req(f"s{n}")) for n in range(6)]
        assert results[0].endpoint == "a" and router.endpoints[0].healthy(clock.now)
        assert all(r.text.startswith("reply") for r in results)

    asyncio.run(go())


def test_a_failed_probe_doubles_the_pause_and_a_permanent_error_stops_at_once() -> None:
    clock = Clock()

    async def go() -> None:
        a, b = FakeEndpoint("a"), FakeEndpoint("b")
        router = RoutedClient("openai-api/m", [("a", a), ("b", b)], clock=clock)
        a.down = True
        for n in range(FAILURES_TO_EJECT):
            await router.complete(_req(f"q{n}"))
        clock.now += PROBE_FIRST_S + 0.01
        await router.complete(_req("probe"))  # probes a, which fails: out again, for twice as long
        assert router.endpoints[0].pause_s == 2 * PROBE_FIRST_S
        assert not router.endpoints[0].healthy(clock.now + PROBE_FIRST_S + 0.01)

        class Denied(FakeEndpoint):
            async def complete(self, request: ChatRequest) -> ChatResult:
                raise ModelCallError("HTTP 401 (check the API key)", permanent=True)

        denied = RoutedClient("openai-api/m", [("x", Denied("x")), ("y", Denied("y"))])
        try:
            await denied.complete(_req("q"))
        except ModelCallError as error:
            assert error.permanent and "401" in str(error)
        else:
            raise AssertionError("a permanent error must stop the call")

    asyncio.run(go())


def test_a_tripped_breaker_takes_one_endpoint_out_and_all_down_stops_the_run() -> None:
    clock = Clock()

    class Tripped(FakeEndpoint):
        async def complete(self, request: ChatRequest) -> ChatResult:
            self.calls.append(request.messages[-1].content)
            raise EndpointDown(f"{self.name}: no successful call for 120s (--give-up-after 120)")

    async def go() -> None:
        dead, alive = Tripped("dead"), FakeEndpoint("alive")
        router = RoutedClient("openai-api/m", [("dead", dead), ("alive", alive)], clock=clock)
        results = [await router.complete(_req(f"q{n}")) for n in range(5)]
        assert {r.endpoint for r in results} == {"alive"}  # one endpoint's breaker does not stop the run
        assert len(dead.calls) == 1 and not router.endpoints[0].healthy(clock.now)

        both = RoutedClient("openai-api/m", [("a", Tripped("a")), ("b", Tripped("b"))], clock=clock)
        both.retry = type(both.retry)(max_attempts=3, base_delay_s=0.0)
        try:
            await both.complete(_req("x"))
        except EndpointDown:
            raise AssertionError("not before the give-up window has passed")
        except ModelCallError:
            pass
        clock.now += both.give_up_after_s + 1
        try:
            await both.complete(_req("y"))
        except EndpointDown as error:
            assert "all 2 endpoints failing" in str(error)
        else:
            raise AssertionError("every endpoint down past the window must stop the run")

    asyncio.run(go())


def _args(bases: str, dataset: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--target", "openai-api/ideal", "--judge", "openai-api/judge", "--base-url", bases,
            "--dataset", str(dataset), "--sequences", "4", "--out", str(out), "--quiet", *extra]  # fmt: skip


def test_several_endpoints_over_http_log_the_endpoint_keep_prefixes_and_survive_a_dying_one(
    small_dataset: Path, tmp_path: Path, fake_server: str
) -> None:
    single = tmp_path / "single"
    assert run_cli(*_args(fake_server, small_dataset, single)).returncode == 0
    servers = [start_server("--delay-s", "0.01") for _ in range(3)]
    try:
        bases = [b for _, b in servers]
        out = tmp_path / "multi"
        result = run_cli(*_args(",".join(bases), small_dataset, out, "--concurrency", "12"))
        assert result.returncode == 0, result.stderr
        prefix = [httpx.get(f"{b}/stats").json()["prefix"].get("ideal", {"eligible": 0, "hits": 0}) for b in bases]
        # a run that loses an endpoint half-way: the killed server's share moves to the others
        dying = tmp_path / "dying"
        proc = subprocess.Popen(
            [sys.executable, "-c", "from carryon.cli import main; main()",
             *_args(",".join(bases), small_dataset, dying, "--concurrency", "12")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (made := peek(dying / "run.sqlite", "SELECT COUNT(*) FROM call_log WHERE cached=0")) and made >= 40:
                break
            time.sleep(0.05)
        servers[0][0].kill()
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    finally:
        for proc_srv, _ in servers:
            proc_srv.kill()
            proc_srv.wait(10)
    with sqlite3.connect(out / "run.sqlite") as db:
        by_endpoint = dict(db.execute("SELECT endpoint, COUNT(*) FROM call_log WHERE cached=0 GROUP BY endpoint"))
        assert db.execute("SELECT COUNT(*) FROM call_log WHERE cached=0 AND endpoint IS NULL").fetchone()[0] == 0
    assert set(by_endpoint) == set(bases) and min(by_endpoint.values()) > 0
    eligible = sum(p["eligible"] for p in prefix)
    assert eligible > 0 and sum(p["hits"] for p in prefix) / eligible >= 0.8
    assert load_metrics(out)["models"] == load_metrics(single)["models"]
    assert load_metrics(dying)["models"] == load_metrics(single)["models"]
    usage = load_metrics(out)["usage"]
    assert set(usage["endpoints"]["target"]) <= set(bases) and sum(usage["endpoints"]["judge"].values()) > 0
