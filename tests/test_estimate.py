"""`carryon run … --dry-run`: no model call, DIR/estimate.json, and bounds that hold against the real run."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pytest

from carryon.estimate import Price, parse_prices
from carryon.core.errors import BadInput
from conftest import run_cli

PRICES = ("--price", "judge=0.15/0.60/0.075", "--price", "target=3/15")


def _args(base: str, dataset: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--target", "openai-api/ideal", "--judge", "openai-api/judge", "--base-url", base,
            "--dataset", str(dataset), "--limit", "4", "--sequences", "5", "--out", str(out), "--quiet", *extra]  # fmt: skip


@pytest.mark.parametrize("user", ["scripted", "openai-api/user"])
def test_dry_run_bounds_hold_against_the_real_run(user: str, fake_server: str, small_dataset: Path,
                                                  tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "run"
    before = httpx.get(f"{fake_server}/stats").json()["requests"]
    dry = run_cli(*_args(fake_server, small_dataset, out, "--user", user, "--dry-run", *PRICES))
    assert dry.returncode == 0, dry.stderr
    assert httpx.get(f"{fake_server}/stats").json()["requests"] == before  # no model call
    assert "model calls: 0 made" in dry.stdout and "cost total" in dry.stdout
    assert not (out / "run.sqlite").exists()
    estimate = json.loads((out / "estimate.json").read_text())
    # `--conditions all` (the default): the malicious twin plays the same plan
    assert estimate["conversations"] == {"malicious": 20, "malicious_upfront": 4, "multi_turn": 20, "upfront": 4,
                                         "total": 48}  # fmt: skip

    real = run_cli(*_args(fake_server, small_dataset, out, "--user", user))
    assert real.returncode == 0, real.stderr
    with sqlite3.connect(out / "run.sqlite") as db:
        rows = db.execute(
            "SELECT l.role, COUNT(*), SUM(c.prompt_tokens), SUM(c.completion_tokens) FROM call_log l "
            "JOIN calls c USING (key) WHERE l.cached=0 GROUP BY l.role").fetchall()  # fmt: skip
        responses = db.execute("SELECT COUNT(*) FROM turns").fetchone()[0]
    roles = {"target", "judge"} | ({"user"} if user != "scripted" else set())
    assert {r[0] for r in rows} == roles and set(estimate["calls"]) == roles | {"total"}
    for role, calls, input_tokens, output_tokens in rows:
        bounds = estimate["calls"][role]
        assert bounds["min"] <= calls <= bounds["max"], (role, calls, bounds)
        tokens = estimate["tokens"][role]
        assert tokens["input"]["min"] <= input_tokens <= tokens["input"]["max"], (role, input_tokens, tokens)
        assert tokens["output"]["min"] <= output_tokens <= tokens["output"]["max"], (role, output_tokens, tokens)
    assert estimate["responses"]["min"] <= responses <= estimate["responses"]["max"]
    if user == "scripted":  # every user message is known: the target's calls are exact
        assert estimate["calls"]["target"]["min"] == estimate["calls"]["target"]["max"]
    total = sum(r[1] for r in rows)
    assert estimate["calls"]["total"]["min"] <= total <= estimate["calls"]["total"]["max"]
    costs = estimate["cost_usd"]
    assert 0 < costs["total"]["min"] <= costs["total"]["max"]
    assert costs.get("unpriced_roles", []) == (["user"] if user != "scripted" else [])


def test_prices_costs_and_batch_discount(tmp_path: Path, fake_server: str, small_dataset: Path) -> None:
    assert parse_prices(["judge=0.15/0.60", "target=3/15/0.3"]) == {
        "judge": Price(0.15, 0.60), "target": Price(3.0, 15.0, 0.3)}  # fmt: skip
    # 1M input tokens of which 400k cached, 100k output: 600k × 3 + 400k × 0.3 + 100k × 15, per million
    assert Price(3, 15, 0.3).cost(1_000_000, 400_000, 100_000) == pytest.approx(1.8 + 0.12 + 1.5)
    for bad in (["judge=0.15"], ["grader=1/2"], ["judge=a/b"], ["judge=-1/2"], ["judge=1/2", "judge=1/2"]):
        with pytest.raises(BadInput):
            parse_prices(bad)
    estimates = {}
    for name, extra in (("sync", ()), ("batched", ("--batch", "judge"))):
        result = run_cli(*_args(fake_server, small_dataset, tmp_path / name, "--dry-run", "--price", "judge=1/1", *extra))
        assert result.returncode == 0, result.stderr
        estimates[name] = json.loads((tmp_path / name / "estimate.json").read_text())
    sync, half = estimates["sync"]["cost_usd"]["judge"], estimates["batched"]["cost_usd"]["judge"]
    assert half["max"] == pytest.approx(sync["max"] / 2, abs=0.01) and half["min"] <= sync["min"]
    # a dry run needs no API key: it makes no call
    keyless = run_cli("run", "--target", "openai/gpt-4o", "--judge", "anthropic/claude-x", "--dataset",
                      str(small_dataset), "--out", str(tmp_path / "k"), "--dry-run",
                      env={"OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": ""})  # fmt: skip
    assert keyless.returncode == 0, keyless.stderr
    bad_price = run_cli(*_args(fake_server, small_dataset, tmp_path / "c", "--dry-run", "--price", "judge=oops"))
    assert bad_price.returncode == 2 and "--price" in bad_price.stderr
    scripted = run_cli(*_args(fake_server, small_dataset, tmp_path / "d", "--dry-run", "--price", "user=1/1"))
    assert scripted.returncode == 2 and "scripted user" in scripted.stderr
    no_dry = run_cli(*_args(fake_server, small_dataset, tmp_path / "e", "--price", "judge=1/1"))
    assert no_dry.returncode == 2 and "--dry-run" in no_dry.stderr
