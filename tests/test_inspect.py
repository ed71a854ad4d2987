"""CarryOnBench inside Inspect AI (extra `inspect`): `inspect eval carryon/carryonbench` runs offline against the fake
server through Inspect's `openai-api` provider, and `carryon import-inspect` turns its log into a run directory whose
figures equal a `carryon run` with the same models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("inspect_ai")

from conftest import REPO, load_metrics, run_cli  # noqa: E402


@pytest.fixture(scope="module")
def entry_point_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A site folder declaring pyproject's `inspect_ai` entry points, as an installed carryonbench does: the test
    runs the same lookup `inspect eval carryon/carryonbench` makes, whichever metadata the environment installed."""
    eps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["inspect_ai"]
    site = tmp_path_factory.mktemp("site")
    dist = site / "carryonbench_inspect_entry_points-0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: carryonbench-inspect-entry-points\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text("[inspect_ai]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))
    return str(site)


def inspect_eval(base: str, site: str, log_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TESTING_BASE_URL": base, "TESTING_API_KEY": "testing", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), site])),
           "INSPECT_DISPLAY": "plain", "NO_COLOR": "1"}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "inspect_ai", "eval", "carryon/carryonbench", "--log-dir", str(log_dir), *args],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip


def conversations(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "conversations.jsonl").read_text().splitlines()]


def test_inspect_eval_then_import_equals_carryon_run(fake_server: str, small_dataset: Path, entry_point_path: str,
                                                     tmp_path: Path) -> None:  # fmt: skip
    logs = tmp_path / "logs"
    done = inspect_eval(fake_server, entry_point_path, logs, "--model", "openai-api/testing/ideal",
                        "--model-role", "grader=openai-api/testing/judge", "-T", f"dataset={small_dataset}",
                        "-T", "limit=2", "-T", "sequences=2")  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (log,) = logs.glob("*.eval")
    from inspect_ai.log import read_eval_log

    header = read_eval_log(str(log))
    # as `carryon run` by default: the benign user and the malicious twin, each the upfront + 2 sequences per item
    assert header.status == "success" and len(header.samples or []) == 2 * (1 + 2) * 2
    sample = next(s for s in header.samples or [] if s.metadata["condition"] == "multi_turn")
    assert set(sample.metadata) >= {"item_id", "condition", "sequence_index", "moves", "category", "item"}
    assert sample.scores is not None
    score_meta = sample.scores["carryon_judges"].metadata
    assert score_meta is not None
    turns = score_meta["turns"]
    assert len(turns) == 1 + len(sample.metadata["moves"])
    assert all({"ben_util", "harm", "response_type", "judgements"} <= set(t) for t in turns)
    assert [m.role for m in sample.messages] == ["user", "assistant"] * len(turns)  # the conversation, for the viewer
    assert header.results is not None
    metrics = {m.name: m.value for m in header.results.scores[0].metrics.values()}
    assert metrics["upfront_ben_util"] == 1.0 and metrics["turn1_ben_util"] < 0.5
    assert {"final_ben_util", "final_harm", "lock_in", "unsafe_recovery", "repetitive_recovery"} <= set(metrics)

    imported, reference = tmp_path / "imported", tmp_path / "run"
    result = run_cli("import-inspect", str(log), "--out", str(imported))
    assert result.returncode == 0, result.stderr
    ran = run_cli("run", "--target", "openai-api/ideal", "--judge", "openai-api/judge", "--base-url", fake_server,
                  "--dataset", str(small_dataset), "--limit", "2", "--sequences", "2", "--out", str(reference),
                  "-q")  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    mine, theirs = load_metrics(imported), load_metrics(reference)
    assert mine["models"]["openai-api/testing/ideal"] == theirs["models"]["openai-api/ideal"]
    assert mine["models"]["openai-api/testing/ideal"]["discrimination"]["n"] > 0  # the twin's rows came through
    for key in ("conversations", "dataset_sha256", "dataset_version", "judge_prompt_versions", "seed", "user"):
        assert mine[key] == theirs[key], key
    assert metrics["final_ben_util"] == theirs["models"]["openai-api/ideal"]["conditions"]["multi_turn"]["ben_util"]["mean"]
    strip = ("model", "judgements")
    a = [{k: v for k, v in c.items() if k not in strip} | {"turns": [{k: v for k, v in t.items() if k not in strip}
         for t in c["turns"]]} for c in conversations(imported)]  # fmt: skip
    b = [{k: v for k, v in c.items() if k not in strip} | {"turns": [{k: v for k, v in t.items() if k not in strip}
         for t in c["turns"]]} for c in conversations(reference)]  # fmt: skip
    assert a == b

    # the imported directory is a run like any other: report rewrites it without calls, compare takes it
    again = run_cli("report", str(imported))
    assert again.returncode == 0 and "model calls: 0 made" in again.stdout
    assert load_metrics(imported)["models"] == mine["models"]
    compared = run_cli("compare", str(reference), str(imported), "--out", str(tmp_path / "cmp"), "--allow-mixed")
    assert compared.returncode == 0, compared.stderr
    assert "openai-api/testing/ideal" in compared.stdout
    # importing the same log again changes nothing; a log of another target is refused for this directory
    assert run_cli("import-inspect", str(log), "--out", str(imported)).returncode == 0
    assert load_metrics(imported)["models"] == mine["models"]


def test_inspect_roles_user_and_grader_apply(fake_server: str, small_dataset: Path, entry_point_path: str,
                                            tmp_path: Path) -> None:  # fmt: skip
    logs = tmp_path / "logs"
    done = inspect_eval(fake_server, entry_point_path, logs, "--model", "openai-api/testing/ideal",
                        "--model-role", "user=openai-api/testing/user", "--model-role", "grader=openai-api/testing/judge",
                        "-T", f"dataset={small_dataset}", "-T", "limit=1", "-T", "sequences=1",
                        "-T", "conditions=multi_turn")  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    imported = tmp_path / "imported"
    assert run_cli("import-inspect", str(next(logs.glob("*.eval"))), "--out", str(imported)).returncode == 0
    metrics = load_metrics(imported)
    assert metrics["user"] == "openai-api/testing/user" and metrics["judge"] == ["openai-api/testing/judge"]
    (conv,) = conversations(imported)
    assert conv["condition"] == "multi_turn"
    # testing/user says the clarification fact itself: no scripted lead-in, and the ideal target answers in full
    revealed = [t for t in conv["turns"] if t["move"] in ("purpose", "context", "narrowing", "assurance")]
    assert revealed and all(t["ben_util"] == 1.0 for t in revealed)
    with __import__("sqlite3").connect(imported / "run.sqlite") as db:
        judges = {r[0] for r in db.execute("SELECT DISTINCT judge FROM judgements")}
    assert judges == {"openai-api/testing/judge"}


def test_plan_conditions_and_provider_refusal_mapping() -> None:
    from inspect_ai.model import ModelOutput

    from carryon.config import RunConfig
    from carryon.data.load import load_items
    from carryon.core.errors import BadInput
    from carryon.inspect_task import _conditions, plan_samples, result_of
    from carryon.core.chat import PROVIDER_REFUSAL

    items = load_items(None, 2)
    config = RunConfig(sequences=3, out=Path("."))
    every = plan_samples(items, config, _conditions("benign"))
    assert [s.id for s in every][:4] == [f"{items[0].id}/upfront", f"{items[0].id}/s00", f"{items[0].id}/s01",
                                         f"{items[0].id}/s02"]  # carryon run's plan, in its order
    upfront = plan_samples(items, config, _conditions("upfront"))
    assert [s.input for s in upfront] == [i.intent_upfront for i in items]
    assert _conditions("all") == ("upfront", "multi_turn", "malicious_upfront", "malicious")
    assert _conditions("benign") == _conditions("multi_turn,upfront") == ("upfront", "multi_turn")
    twins = plan_samples(items, config, _conditions("malicious_upfront,malicious"))
    assert [(s.metadata or {})["condition"] for s in twins][:2] == ["malicious_upfront", "malicious"]
    assert isinstance(twins[0].input, str) and twins[0].input.endswith(items[0].query)
    assert twins[0].input != items[0].intent_upfront
    assert twins[1].input == items[0].query  # the twin opens with the same question
    for bad in ("turn1", "sideways", ""):
        with pytest.raises(BadInput):
            _conditions(bad)
    filtered = result_of(ModelOutput.from_content("m", "", stop_reason="content_filter"))
    assert filtered.finish_reason == PROVIDER_REFUSAL
    assert result_of(ModelOutput.from_content("m", "ok")).finish_reason == "stop"
    assert result_of(ModelOutput.from_content("m", "cut", stop_reason="max_tokens")).finish_reason == "length"


def test_import_refuses_what_is_not_a_carryon_log(tmp_path: Path) -> None:
    bogus = tmp_path / "x.eval"
    bogus.write_text("not a log")
    result = run_cli("import-inspect", str(bogus), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "not a readable Inspect log" in result.stderr
    missing = run_cli("import-inspect", str(tmp_path / "nope.eval"), "--out", str(tmp_path / "out"))
    assert missing.returncode == 2 and "no such Inspect log" in missing.stderr
