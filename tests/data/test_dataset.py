"""The built-in dataset and the validator: every error names file:line: field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carryon.data.load import builtin_path, load_items, validate_file
from carryon.data.schema import BUILTIN_CATEGORIES
from carryon.errors import BadInput
from conftest import run_cli


def test_builtin_dataset_is_valid_and_large() -> None:
    report = validate_file(builtin_path())
    assert report.problems == []
    assert len(report.items) >= 400
    counts = report.by_category()
    assert len(counts) >= 10 and set(counts) <= set(BUILTIN_CATEGORIES)
    assert min(counts.values()) >= 25
    assert all(4 <= len(i.checklist) <= 8 and 2 <= len(i.unsafe_content) <= 4 for i in report.items)
    assert len({i.id for i in report.items}) == len(report.items)
    assert {i.source for i in report.items} == {"carryon-authors"}


def _good() -> dict:
    return json.loads(builtin_path().read_text(encoding="utf-8").splitlines()[0])


def _write(tmp_path: Path, rows: list[object]) -> Path:
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def _other(n: int) -> dict:
    lines = builtin_path().read_text(encoding="utf-8").splitlines()
    return json.loads(lines[n])


CASES = {
    "invalid_json": ('{"id": "x", ', "2: line: invalid JSON"),
    "missing_field": ({k: v for k, v in _good().items() if k != "benign_intent"}, "2: benign_intent: Field required"),
    "extra_field": ({**_good(), "label": "safe"}, "2: label: unknown field"),
    "wrong_type": ({**_good(), "checklist": "one long string"}, "2: checklist: Input should be a valid list"),
    "checklist_too_small": ({**_good(), "checklist": ["a b c", "d e f"]}, "2: checklist: List should have at least 4"),
    "checklist_empty": ({**_good(), "checklist": []}, "2: checklist: List should have at least 4"),
    "checklist_too_large": ({**_good(), "checklist": [f"item number {i}" for i in range(9)]}, "2: checklist: List should have at most 8"),
    "states_intent": ({**_good(), "query": "For my class, how does carbon monoxide kill?"}, "2: query: Value error, query states its intent"),
    "bad_category": ({**_good(), "category": "Misc Stuff!"}, "2: category: String should match pattern"),
    "upfront_not_verbatim": ({**_good(), "intent_upfront": "I teach. Tell me something else."}, "2: intent_upfront: must end with the query verbatim"),
    "no_twin": ({k: v for k, v in _good().items() if k != "malicious"}, "2: malicious: Field required"),
    "bad_id": ({**_good(), "id": "Not A Slug"}, "2: id: String should match pattern"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_malformed_line_is_reported_with_file_line_field(tmp_path: Path, case: str) -> None:
    bad, expected = CASES[case]
    path = _write(tmp_path, [_other(1), bad, _other(2)])
    report = validate_file(path)
    assert any(p.startswith(f"{path}:{expected}") for p in report.problems), report.problems
    assert len(report.items) == 2  # the good lines around it still load


def test_duplicate_id_and_near_duplicate_query(tmp_path: Path) -> None:
    first = _other(1)
    dup_id = {**_other(2), "id": first["id"]}
    near = {**_other(3), "query": first["query"] + "?", "intent_upfront": "I have a good reason. " + first["query"] + "?"}
    path = _write(tmp_path, [first, dup_id, near])
    problems = validate_file(path).problems
    assert any(p.startswith(f"{path}:2: id: duplicate id") for p in problems), problems
    assert any(p.startswith(f"{path}:3: query: near-duplicate of the query on line 1") for p in problems), problems


def test_empty_dataset_and_missing_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert validate_file(empty).problems == [f"{empty}: dataset: no items (the file is empty)"]
    with pytest.raises(BadInput, match="no items"):
        load_items(empty)
    assert "file not found" in validate_file(tmp_path / "nope.jsonl").problems[0]


def test_csv_dataset_loads(tmp_path: Path) -> None:
    import csv

    item = _other(4)
    path = tmp_path / "d.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(item))
        writer.writeheader()
        writer.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in item.items()})
    report = validate_file(path)
    assert report.problems == [] and report.items[0].id == item["id"]


def test_validate_command_exit_codes(tmp_path: Path) -> None:
    ok = run_cli("dataset", "validate", str(builtin_path()))
    assert ok.returncode == 0, ok.stderr
    assert "items" in ok.stdout and "chemicals_poisons" in ok.stdout
    bad = _write(tmp_path, [_other(1), '{"id": ', {**_other(2), "checklist": []}])
    result = run_cli("dataset", "validate", str(bad))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith(str(bad))]
    assert any(":2: line: invalid JSON" in line for line in lines)
    assert any(":3: checklist:" in line for line in lines)
    stats = run_cli("dataset", "stats", str(builtin_path()))
    assert stats.returncode == 0 and "misinformation" in stats.stdout


# -- hostile or unusual files: always exit 2 with file:line, never a traceback (issue 13) -------------------------


def _run_on(tmp_path: Path, dataset: Path):
    return run_cli("run", "--target", "testing/ideal", "--judge", "testing/judge", "--dataset", str(dataset),
                   "--out", str(tmp_path / "out"), "--quiet")  # fmt: skip


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'{"id": "caf\xe9"}', ":2: line: not UTF-8 (byte 0xe9 at column 12)"),
        (b"[" * 100_000 + b"]" * 100_000, ":2: line: invalid JSON (nested too deeply)"),
        (b'{"id": "\\ud83d"}', ":2: line: invalid text (a lone surrogate escape"),
    ],
    ids=["non-utf8", "deeply-nested", "lone-surrogate"],
)
def test_unreadable_lines_are_named_with_file_and_line(tmp_path: Path, line: bytes, expected: str) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(json.dumps(_other(1)).encode() + b"\n" + line + b"\n" + json.dumps(_other(2)).encode() + b"\n")
    report = validate_file(path)
    assert any(p.startswith(f"{path}{expected}") for p in report.problems), report.problems
    assert len(report.items) == 2  # the good lines around it are still read
    result = _run_on(tmp_path, path)
    assert result.returncode == 2, result.stderr
    assert f"{path}{expected}" in result.stderr and "Traceback" not in result.stderr


def test_line_separator_characters_inside_strings_are_text_not_line_ends(tmp_path: Path) -> None:
    item = _other(1)
    item["benign_intent"] += " \u2028 \u2029 \u0085 \x0c"
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(item, ensure_ascii=False) + "\n" + '{"id": ' + "\n", encoding="utf-8")
    report = validate_file(path)
    assert [i.id for i in report.items] == [item["id"]]
    assert [p.split(": line:")[0] for p in report.problems] == [f"{path}:2"]


def _csv(path: Path, items: list[dict], bom: bool = False) -> None:
    import csv
    import io

    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=list(items[0]), lineterminator="\n")
    writer.writeheader()
    for item in items:
        writer.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in item.items()})
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buf.getvalue().encode("utf-8"))


def test_csv_with_bom_and_multiline_fields_reports_the_record_first_line(tmp_path: Path) -> None:
    first = _other(1)
    first["benign_intent"] = "I teach chemistry.\nLine two of a quoted field.\nAnd three."
    bad = {**_other(2), "checklist": []}
    path = tmp_path / "d.csv"
    _csv(path, [first, bad, _other(3)], bom=True)
    report = validate_file(path)
    assert [i.id for i in report.items] == [first["id"], _other(3)["id"]]  # the BOM did not eat the `id` column
    assert report.items[0].benign_intent == first["benign_intent"]  # the multi-line field kept whole
    # the bad record starts on physical line 5: header 1, first record 2-4
    assert report.problems and all(p.startswith(f"{path}:5: checklist") for p in report.problems), report.problems
