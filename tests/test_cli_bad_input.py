"""Bad input: exit code 2 and one line naming what and where, before any model call. In-process (`invoke`, typer's
CliRunner) except where a real process matters."""

from __future__ import annotations

from pathlib import Path

import pytest

from carryon.data.load import builtin_path
from conftest import invoke

GOOD = builtin_path().read_text(encoding="utf-8").splitlines()[0]


def _bad_dataset(tmp_path: Path, line: str) -> str:
    path = tmp_path / "bad.jsonl"
    path.write_text(GOOD + "\n" + line + "\n", encoding="utf-8")
    return str(path)


CASES = {
    "unknown provider": (["--target", "acme/model-x"], "--target 'acme/model-x': unknown provider 'acme'"),
    "no provider": (["--target", "gpt-4o"], "--target 'gpt-4o': expected provider/model"),
    "unknown testing model": (["--target", "testing/idael"], "unknown testing model"),
    "missing API key": (["--target", "openai/gpt-4o-mini"], "OPENAI_API_KEY is not set"),
    "missing base url": (["--target", "openai-api/llama"], "openai-api models need a server: pass --base-url"),
    "bad base url": (["--target", "openai-api/llama", "--base-url", "localhost:8000"], "not an http(s) URL"),
    "unreachable base url": (["--target", "openai-api/ideal", "--base-url", "http://127.0.0.1:9/v1"], "unreachable"),
    "negative limit": (["--limit", "-3"], "--limit: Input should be greater than or equal to 1"),
    "absurd max turns": (["--max-turns", "40"], "--max-turns: Input should be less than or equal to 12"),
    "more sequences than fit": (["--max-turns", "4", "--sequences", "15"],
                                "--sequences 15: --max-turns 4 leaves room for 1 follow-up move(s), and only 7 "
                                "distinct follow-up sequences fit; pass --sequences 7 or fewer"),
    "zero concurrency": (["--concurrency", "0"], "--concurrency: Input should be greater than or equal to 1"),
    "bad judge mode": (["--ben-util-mode", "vibes"], "--ben-util-mode: Input should be 'per-item' or 'batched'"),
    "missing dataset": (["--dataset", "/nonexistent/d.jsonl"], "--dataset /nonexistent/d.jsonl: file not found"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_flags_exit_2_with_one_clear_line(tmp_path: Path, case: str) -> None:
    args, expected = CASES[case]
    defaults = ["--judge", "testing/judge"] + ([] if "--target" in args else ["--target", "testing/ideal"])
    env = {k: "" for k in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    result = invoke("run", *defaults, *args, "--out", str(tmp_path / "out"), "--quiet", env=env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()  # checked before anything is written


@pytest.mark.parametrize(
    ("line", "expected"),
    [('{"id": ', ":2: line: invalid JSON"), (GOOD.replace('"checklist": [', '"checklist": [], "x": ['), ":2: ")],
)
def test_malformed_dataset_line_is_named(tmp_path: Path, line: str, expected: str) -> None:
    path = _bad_dataset(tmp_path, line)
    result = invoke("run", "--target", "testing/ideal", "--judge", "testing/judge", "--dataset", path,
                     "--out", str(tmp_path / "out"), "--quiet")  # fmt: skip
    assert result.returncode == 2
    assert f"{path}{expected}" in result.stderr


def test_empty_checklist_item_is_refused(tmp_path: Path) -> None:
    import json

    item = json.loads(GOOD)
    item["checklist"] = []
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(item) + "\n")
    result = invoke("run", "--target", "testing/ideal", "--judge", "testing/judge", "--dataset", str(path),
                     "--out", str(tmp_path / "out"), "--quiet")  # fmt: skip
    assert result.returncode == 2 and f"{path}:1: checklist:" in result.stderr


def test_out_dir_that_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke("run", "--target", "testing/ideal", "--judge", "testing/judge", "--limit", "1",
                     "--out", str(blocker / "run"), "--quiet")  # fmt: skip
    assert result.returncode == 2 and "not writable" in result.stderr


def test_unknown_flag_is_a_usage_error() -> None:
    result = invoke("run", "--targt", "testing/ideal", "--out", "x")
    assert result.returncode == 2 and "No such option" in result.stderr


def test_a_typo_writes_nothing_and_the_corrected_command_runs_in_the_same_dir(
    fake_server: str, small_dataset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ["run", "--judge", "openai-api/judge", "--base-url", fake_server, "--dataset", str(small_dataset),
            "--limit", "1", "--sequences", "1", "--out", str(out), "--quiet"]  # fmt: skip
    typo = invoke(*args, "--target", "openai-api/idael")
    assert typo.returncode == 2, typo.stderr
    assert f"openai-api/idael: not served at {fake_server}" in typo.stderr
    assert not out.exists()
    fixed = invoke(*args, "--target", "openai-api/ideal")
    assert fixed.returncode == 0, fixed.stderr
    assert (out / "report.html").is_file()
    # nothing pending: the server is not even asked (the preflight runs only when there is work)
    args[args.index(fake_server)] = "http://127.0.0.1:9/v1"
    again = invoke(*args, "--target", "openai-api/ideal")
    assert again.returncode == 0 and "model calls: 0 made" in again.stdout, again.stderr


def test_mixing_guard_names_the_differing_field(tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    base = ["run", "--judge", "testing/judge", "--limit", "1", "--sequences", "1", "--out", out, "--quiet"]
    assert invoke(*base, "--target", "testing/ideal").returncode == 0
    result = invoke(*base, "--target", "testing/parrot")
    assert result.returncode == 2 and "different target" in result.stderr
    result = invoke(*base, "--target", "testing/ideal", "--seed", "7")
    assert result.returncode == 2 and "different seed" in result.stderr
    assert invoke(*base, "--target", "testing/parrot", "--force-new").returncode == 0


def test_rejudge_keeps_the_conversations_and_judges_again(tmp_path: Path) -> None:
    import json

    out = str(tmp_path / "out")
    base = ["run", "--target", "testing/ideal", "--limit", "1", "--sequences", "2", "--out", out, "--quiet"]
    assert invoke(*base, "--judge", "testing/judge").returncode == 0
    refused = invoke(*base, "--judge", "testing/judge-broken")
    assert refused.returncode == 2 and "different judge" in refused.stderr and "--rejudge" in refused.stderr
    again = invoke(*base, "--judge", "testing/judge-broken", "--rejudge")
    assert again.returncode == 0, again.stderr
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["judge"] == ["testing/judge-broken"]
    model = metrics["models"]["testing/ideal"]
    assert model["unscored"]["harm"] == model["n_responses"]  # every response judged again, by the new judge
    # the target was not called again: its calls all came from the cache
    import sqlite3

    with sqlite3.connect(tmp_path / "out" / "run.sqlite") as db:
        made = db.execute("SELECT COUNT(*) FROM call_log WHERE role='target' AND cached=0").fetchone()[0]
        distinct = db.execute("SELECT COUNT(DISTINCT key) FROM calls WHERE role='target'").fetchone()[0]
    assert made == distinct
