"""Untrusted text is printed as plain text and never parsed (issue 13): names, paths, dataset keys and server error
bodies with rich markup or control characters; model names with mathtext; long judge names; flag names in errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from carryon.data.load import builtin_path
from carryon.judge.validate import result_file_name
from carryon.report.plots import all_plots
from conftest import load_metrics, run_cli, start_server

RUN = ["run", "--judge", "testing/judge", "--limit", "1", "--sequences", "1", "--quiet"]


def test_markup_in_a_model_name_is_printed_as_is(tmp_path: Path) -> None:
    result = run_cli(*RUN, "--target", "testing/[/]\x1b[2J", "--out", str(tmp_path / "o"))
    assert result.returncode == 2, result.stderr
    assert "'testing/[/]\\x1b[2J': unknown testing model" in result.stderr
    assert "Traceback" not in result.stderr and "\x1b" not in result.stderr


def test_markup_in_a_dataset_key_is_printed_as_is(tmp_path: Path) -> None:
    item = json.loads(builtin_path().read_text(encoding="utf-8").splitlines()[0])
    item["[/]"] = "x"
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(item) + "\n", encoding="utf-8")
    result = run_cli(*RUN, "--target", "testing/ideal", "--dataset", str(path), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and f"{path}:1: [/]: unknown field" in result.stderr, result.stderr


def test_markup_in_the_out_path_is_printed_as_is(tmp_path: Path) -> None:
    out = tmp_path / "x" / "[/]y"
    result = run_cli(*RUN, "--target", "testing/ideal", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"report: {out / 'report.html'}" in result.stdout


def test_a_server_error_body_reaches_the_terminal_escaped(small_dataset: Path, tmp_path: Path) -> None:
    proc, base = start_server("--mode", "error", "--status", "400")
    try:
        result = run_cli("run", "--target", "openai-api/ideal", "--judge", "openai-api/judge", "--base-url", base,
                         "--dataset", str(small_dataset), "--out", str(tmp_path / "o"), "--quiet")  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(10)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "HTTP 400" in result.stderr and "\\x1b[31mboom" in result.stderr and "[bold red]markup[/]" in result.stderr
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr


def test_model_names_are_never_parsed_as_mathtext(tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert run_cli(*RUN, "--target", "testing/ideal", "--out", str(out)).returncode == 0
    body = load_metrics(out)["models"]["testing/ideal"]
    models = {r"openai-api/$\foo$": body, "x/$a^{$": copy.deepcopy(body)}
    plots = all_plots(models)
    assert r"$\foo$" in plots["utility"]  # the name shown as written, not typeset


def test_long_judge_names_make_a_file_name_that_fits() -> None:
    names = ["openai-api/" + "m" * 300, "openai-api/" + "m" * 300 + "x", "local/qwen2.5-coder-1.5b", "a/../../b"]
    files = [result_file_name("harm", n) for n in names]
    assert all(len(f.encode()) <= 255 and "/" not in f for f in files)
    assert len(set(files)) == len(files)
    assert files[2] == "validation-harm-local_qwen2.5-coder-1.5b.json"  # short names as before


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--timeout", "0"], "--timeout: Input should be greater than 0"),
        (["--give-up-after", "0"], "--give-up-after: Input should be greater than 0"),
        (["--max-response-bytes", "10"], "--max-response-bytes: Input should be greater than or equal to 1024"),
        (["--judge-base-url", "localhost:1"], "--judge-base-url 'localhost:1' (for --judge): not an http(s) URL"),
    ],
)
def test_errors_name_the_flag_as_typed(tmp_path: Path, args: list[str], expected: str) -> None:
    result = run_cli(*RUN, "--target", "testing/ideal", *args, "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and expected in result.stderr, result.stderr
