"""Load and validate datasets (jsonl or csv). Every problem is reported as `file:line: field: problem`, all of them,
not just the first; a bad line among good ones does not stop the others from being checked."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from carryon.data.duplicates import duplicate_pairs
from carryon.data.schema import Item, v2_problems
from carryon.errors import BadInput
from carryon.text import similar_at_least

BUILTIN_DATASET = "carryon_v2"
NEAR_DUPLICATE_RATIO = 0.85


def builtin_path() -> Path:
    return Path(str(resources.files("carryon.data").joinpath(f"{BUILTIN_DATASET}.jsonl")))


@dataclass
class DatasetReport:
    path: str
    items: list[Item] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.items)

    def by_category(self) -> Counter[str]:
        return Counter(i.category for i in self.items)

    def checklist_sizes(self) -> Counter[int]:
        return Counter(len(i.checklist) for i in self.items)


def text_lines(data: bytes) -> list[tuple[int, str | None, str]]:
    """(line number, the line decoded, or None and why not) for each line of a file. Lines end at `\n` only (JSONL
    and CSV): U+2028, U+2029, U+0085 and form feeds inside a JSON string are text, not line ends. A UTF-8 BOM at the
    start is dropped; a line that is not UTF-8 is reported with the column of its first bad byte."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    out: list[tuple[int, str | None, str]] = []
    for n, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.removesuffix(b"\r")
        try:
            out.append((n, raw.decode("utf-8"), ""))
        except UnicodeDecodeError as error:
            out.append((n, None, f"not UTF-8 (byte 0x{raw[error.start]:02x} at column {error.start + 1})"))
    if out and out[-1][1] == "":
        out.pop()
    return out


def json_line(line: str) -> Any:
    """One JSON value from a line; a str saying what is wrong if it is not valid JSON, nests too deeply, or holds a
    lone surrogate escape (valid JSON, but not text UTF-8 can store)."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError as error:
        return f"invalid JSON ({error.msg} at column {error.colno})"
    except RecursionError:
        return "invalid JSON (nested too deeply)"
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as error:
        return f"invalid text (a lone surrogate escape, \\u{ord(error.object[error.start]):04x}, is not a character)"
    except RecursionError:
        return "invalid JSON (nested too deeply)"
    return value


def _csv_records(path: Path, lines: list[tuple[int, str | None, str]]) -> list[tuple[int, Any]]:
    """(first line of the record, dict or a str error) per CSV record; quoted fields may span lines."""
    bad = [(n, why) for n, line, why in lines if line is None]
    if bad:
        return [(n, why) for n, why in bad]
    reader = csv.reader(io.StringIO("\n".join(line or "" for _, line, _ in lines), newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return []
    out: list[tuple[int, Any]] = []
    end = reader.line_num
    try:
        for row in reader:
            start, end = end + 1, reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(header):
                out.append((start, f"more values ({len(row)}) than columns ({len(header)})"))
                continue
            obj: dict[str, Any] = {k: v for k, v in zip(header, row)}
            for key in ("clarifications", "checklist", "unsafe_content", "malicious"):
                if isinstance(obj.get(key), str):
                    parsed = json_line(obj[key])
                    if not isinstance(parsed, str):
                        obj[key] = parsed
            out.append((start, obj))
    except csv.Error as error:
        out.append((reader.line_num, f"invalid CSV ({error})"))
    return out


def _rows(path: Path) -> list[tuple[int, Any]]:
    """(line number, parsed object or a str error) for every non-blank record."""
    try:
        lines = text_lines(path.read_bytes())
    except OSError as error:
        return [(0, f"unreadable ({error.strerror or error})")]
    if path.suffix.lower() == ".csv":
        return _csv_records(path, lines)
    rows: list[tuple[int, Any]] = []
    for n, line, why in lines:
        if line is None:
            rows.append((n, why))
        elif line.strip():
            rows.append((n, json_line(line)))
    return rows


def field_problems(error: ValidationError) -> list[str]:
    """An item's validation errors as `field: problem`, one each (the wording of every dataset error message)."""
    return [
        f"{'.'.join(str(p) for p in err['loc']) or 'item'}: "
        f"{'unknown field' if err['type'] == 'extra_forbidden' else err['msg']}"
        for err in error.errors()
    ]


def normalise_query(query: str) -> str:
    """Lower-case, punctuation stripped: the form near-duplicate checks compare."""
    return re.sub(r"[^a-z0-9 ]", "", query.lower())


def validate_file(path: str | Path, *, near_duplicates: bool = True) -> DatasetReport:
    """Check every line of a dataset file; collect items and all problems. `near_duplicates` adds the cross-item
    checks: near-duplicate queries (an error) and items sharing checklist entries (a warning)."""
    path = Path(path)
    report = DatasetReport(str(path))
    if not path.is_file():
        report.problems.append(f"{path}: file not found")
        return report
    seen_ids: dict[str, int] = {}
    queries: list[tuple[int, str]] = []
    for n, obj in _rows(path):
        where = f"{path}:{n}"
        if isinstance(obj, str):
            report.problems.append(f"{where}: line: {obj}")
            continue
        if not isinstance(obj, dict):
            report.problems.append(f"{where}: line: expected a JSON object")
            continue
        try:
            item = Item.model_validate(obj)
        except ValidationError as error:
            report.problems.extend(f"{where}: {problem}" for problem in field_problems(error))
            continue
        rule_problems = v2_problems(item)
        if rule_problems:
            report.problems.extend(f"{where}: {problem} (item {item.id})" for problem in rule_problems)
            continue
        if item.id in seen_ids:
            report.problems.append(f"{where}: id: duplicate id {item.id!r} (first on line {seen_ids[item.id]})")
            continue
        seen_ids[item.id] = n
        if near_duplicates:
            norm = normalise_query(item.query)
            for m, other in queries:
                if similar_at_least(norm, other, NEAR_DUPLICATE_RATIO):
                    report.problems.append(f"{where}: query: near-duplicate of the query on line {m}")
                    break
            queries.append((n, norm))
        report.items.append(item)
    if near_duplicates:
        lines = {item_id: n for item_id, n in seen_ids.items()}
        report.warnings.extend(
            f"{path}:{lines[pair.second]}: checklist: {pair.message()} (first on line {lines[pair.first]})"
            for pair in duplicate_pairs(report.items)
        )
    if not report.items and not report.problems:
        report.problems.append(f"{path}: dataset: no items (the file is empty)")
    return report


def load_items(path: str | Path | None = None, limit: int | None = None) -> list[Item]:
    """Load a dataset, raising BadInput listing every problem; `None` loads the built-in dataset, `hf:ORG/NAME@REV`
    (or `hf:LOCAL_FOLDER`) a Hugging Face dataset through `datasets` (carryon/hub.py)."""
    from carryon.hub import is_hf_ref, load_hf_items

    if is_hf_ref(path):
        assert isinstance(path, str)
        return list(load_hf_items(path))[:limit] if limit else list(load_hf_items(path))
    report = validate_file(path or builtin_path(), near_duplicates=False)
    if report.problems:
        shown = report.problems[:20]
        more = f"\n… and {len(report.problems) - 20} more" if len(report.problems) > 20 else ""
        raise BadInput("invalid dataset:\n" + "\n".join(shown) + more)
    return report.items[:limit] if limit else report.items
