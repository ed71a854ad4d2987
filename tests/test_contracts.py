"""The file contracts: metrics.json and conversations.jsonl against their committed JSON schemas; readers that name
the field that is wrong."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from carryon.config import RunConfig
from carryon.core.contracts import read_metrics, read_records, schemas
from carryon.core.errors import BadInput
from carryon.pipeline import run
from conftest import REPO, run_cli

SCHEMA_DIR = REPO / "docs" / "schema"
RUN_0_1_0 = REPO / "tests" / "fixtures" / "run-0.1.0"


def test_committed_schemas_are_the_generated_ones() -> None:
    """Change a contract model, then regenerate: python -m carryon.core.contracts docs/schema"""
    committed = {p.name: json.loads(p.read_text()) for p in SCHEMA_DIR.glob("*.schema.json")}
    assert committed == schemas()


@pytest.fixture(scope="module")
def fresh_run(tmp_path_factory: pytest.TempPathFactory, small_dataset: Path) -> Path:
    out = tmp_path_factory.mktemp("run")
    run(RunConfig(target="testing/unsafe", judge=["testing/judge", "testing/judge-missing", "testing/judge-broken"],
                  dataset=str(small_dataset), limit=2, sequences=3, out=out))  # fmt: skip
    return out


@pytest.mark.parametrize("run_dir", ["fresh", "0.1.0"])
def test_outputs_validate_against_the_committed_schemas(run_dir: str, fresh_run: Path) -> None:
    folder = fresh_run if run_dir == "fresh" else RUN_0_1_0
    metrics_schema = json.loads((SCHEMA_DIR / "metrics.schema.json").read_text())
    jsonschema.validate(json.loads((folder / "metrics.json").read_text()), metrics_schema)
    conversation_schema = json.loads((SCHEMA_DIR / "conversation.schema.json").read_text())
    lines = (folder / "conversations.jsonl").read_text().splitlines()
    assert lines
    for line in lines:
        jsonschema.validate(json.loads(line), conversation_schema)


def _broken_copy(tmp_path: Path, name: str) -> Path:
    run_dir = tmp_path / name
    shutil.copytree(RUN_0_1_0, run_dir)
    return run_dir


def test_readers_name_the_wrong_field(tmp_path: Path) -> None:
    bad = _broken_copy(tmp_path, "bad")
    metrics = json.loads((bad / "metrics.json").read_text())
    metrics["models"]["testing/ideal"]["conditions"]["upfront"]["ben_util"]["mean"] = "high"
    (bad / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(BadInput, match=r"metrics.json: not a CarryOn metrics.json: "
                                       r"models.testing/ideal.conditions.upfront.ben_util.mean: Input should be a "
                                       r"valid number"):  # fmt: skip
        read_metrics(bad / "metrics.json")
    lines = (bad / "conversations.jsonl").read_text().splitlines()
    record = json.loads(lines[1])
    del record["turns"][0]["response"]
    lines[1] = json.dumps(record)
    (bad / "conversations.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(BadInput, match=r"conversations.jsonl:2: turns.0.response: Field required"):
        list(read_records([bad / "conversations.jsonl"]))


def test_compare_refuses_a_malformed_run_with_exit_2(tmp_path: Path) -> None:
    good = _broken_copy(tmp_path, "good")
    bad = _broken_copy(tmp_path, "bad")
    metrics = json.loads((bad / "metrics.json").read_text())
    metrics["models"]["other/model"] = metrics["models"].pop("testing/ideal")
    del metrics["models"]["other/model"]["failure_modes"]["lock_in"]
    (bad / "metrics.json").write_text(json.dumps(metrics))
    result = run_cli("compare", str(good), str(bad), "--out", str(tmp_path / "cmp"))
    assert result.returncode == 2, result.stderr
    assert "models.other/model.failure_modes.lock_in: Field required" in result.stderr
