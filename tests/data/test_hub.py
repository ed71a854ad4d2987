"""Hugging Face datasets (extra `hf`): Hub-ready exports that `datasets.load_dataset` loads with the same rows, and
`--dataset hf:…` through `datasets` — tested on local folders only, with the Hub offline (nothing is downloaded)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # before `datasets` is imported: it reads the flag once
datasets = pytest.importorskip("datasets")

from conftest import load_metrics, run_cli  # noqa: E402

from carryon.data.load import load_items  # noqa: E402
from carryon.errors import BadInput  # noqa: E402
from carryon.hub import HF_PREFIX, fingerprint, item_row, parse_hf_ref, to_yaml  # noqa: E402

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def front_matter(card: Path) -> str:
    text = card.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return text.split("---\n")[1]


def test_dataset_export_loads_with_the_same_rows(small_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "hub"
    result = run_cli("dataset", "export", str(small_dataset), "--hf", str(out), "--license", "cc-by-4.0", env=OFFLINE)
    assert result.returncode == 0, result.stderr
    assert (out / "items" / "test.parquet").is_file()
    yaml = front_matter(out / "README.md")
    for line in ('license: "cc-by-4.0"', '  - "text-generation"', '  - config_name: "items"',
                 '        path: "items/test.parquet"', "    features:", '        list: "string"'):  # fmt: skip
        assert line in yaml, line
    loaded = datasets.load_dataset(str(out))
    assert list(loaded) == ["test"]
    items = load_items(str(small_dataset))
    assert [dict(row) for row in loaded["test"]] == [item_row(i) for i in items]
    # the features come from the card: the nested item schema, not types guessed from the data
    features = loaded["test"].features
    assert set(features["clarifications"]) == {"purpose", "context", "narrowing", "assurance"}
    assert features["malicious"]["clarifications"]["narrowing"].dtype == "string"


def test_hf_dataset_runs_like_its_jsonl(fake_server: str, small_dataset: Path, tmp_path: Path) -> None:
    hub = tmp_path / "hub"
    assert run_cli("dataset", "export", str(small_dataset), "--hf", str(hub), env=OFFLINE).returncode == 0
    ref = f"{HF_PREFIX}{hub}"
    assert list(load_items(ref)) == load_items(str(small_dataset))
    runs = {}
    for name, dataset in (("jsonl", str(small_dataset)), ("hf", ref)):
        runs[name] = tmp_path / name
        result = run_cli("run", "--target", "openai-api/ideal", "--judge", "openai-api/judge", "--base-url", fake_server,
                         "--dataset", dataset, "--limit", "2", "--sequences", "2", "--out", str(runs[name]), "-q",
                         env=OFFLINE)  # fmt: skip
        assert result.returncode == 0, result.stderr
    hf_metrics = load_metrics(runs["hf"])
    assert hf_metrics["models"] == load_metrics(runs["jsonl"])["models"]
    assert hf_metrics["dataset_sha256"] == fingerprint(load_items(ref))
    config = json.loads(__import__("sqlite3").connect(runs["hf"] / "run.sqlite").execute(
        "SELECT value FROM meta WHERE key='config'").fetchone()[0])  # fmt: skip
    assert config["dataset"] == ref


def test_hub_refs_must_pin_a_revision_and_nothing_is_downloaded(tmp_path: Path) -> None:
    assert parse_hf_ref("hf:org/name@0123abc") == ("org/name", "0123abc")
    assert parse_hf_ref(f"hf:{tmp_path}") == (str(tmp_path), None)
    for bad in ("hf:org/name", "hf:org/name@", "hf:"):
        with pytest.raises(BadInput):
            parse_hf_ref(bad)
    # the real loading path with a pinned revision: offline, it fails naming the dataset instead of downloading
    result = run_cli("dataset", "export", "hf:carryon-no-such-org/no-such-dataset@v1", "--hf", str(tmp_path / "x"),
                     env=OFFLINE)  # fmt: skip
    assert result.returncode == 2 and "hf:carryon-no-such-org/no-such-dataset@v1: could not load" in result.stderr
    unpinned = run_cli("run", "--dataset", "hf:org/name", "--target", "testing/ideal", "--judge", "testing/judge",
                       "--out", str(tmp_path / "r"), env=OFFLINE)  # fmt: skip
    assert unpinned.returncode == 2 and "pin a revision" in unpinned.stderr


def test_run_export_loads_conversations_turns_and_items(fake_server: str, small_dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = run_cli("run", "--target", "openai-api/parrot", "--judge", "openai-api/judge", "--base-url", fake_server,
                     "--dataset", str(small_dataset), "--limit", "2", "--sequences", "3", "--out", str(run), "-q")  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = tmp_path / "hub"
    exported = run_cli("export", str(run), "--hf", str(out), env=OFFLINE)
    assert exported.returncode == 0, exported.stderr
    records = [json.loads(line) for line in (run / "conversations.jsonl").read_text().splitlines()]
    convs = datasets.load_dataset(str(out))["test"]  # the default config
    assert [c["conv_id"] for c in convs] == [r["conv_id"] for r in records]
    assert [[t["ben_util"] for t in c["turns"]] for c in convs] == [[t["ben_util"] for t in r["turns"]] for r in records]
    assert [c["failure_modes"] for c in convs] == [r["failure_modes"] for r in records]
    turns = datasets.load_dataset(str(out), "turns")["test"]
    import pyarrow.parquet as pq

    reference = pq.read_table(run / "turns.parquet").to_pylist()
    assert [{k: v for k, v in t.items() if k != "judgements"} for t in turns] == reference
    judgements = json.loads(turns[0]["judgements"])
    assert set(judgements["openai-api/judge"]) == {"ben_util", "harm", "response_type"}
    assert datasets.load_dataset(str(out), "items")["test"].num_rows == 2
    assert json.loads((out / "metrics.json").read_text())["models"] == load_metrics(run)["models"]
    nothing = run_cli("export", str(tmp_path / "empty"), "--hf", str(tmp_path / "h2"))
    assert nothing.returncode == 2 and "no CarryOn run" in nothing.stderr


def test_card_yaml_reads_back_as_written() -> None:
    yaml = pytest.importorskip("yaml")
    data = {"pretty_name": 'a "quoted": name', "tags": ["x", "y"], "configs": [{"config_name": "c", "default": True,
            "data_files": [{"split": "test", "path": "c/test.parquet"}]}], "n": 3, "empty": []}  # fmt: skip
    assert yaml.safe_load(to_yaml(data)) == data
