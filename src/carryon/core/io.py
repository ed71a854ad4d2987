"""File helpers every layer shares: one JSONL reader that keeps line numbers, one atomic writer."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal


@dataclass(frozen=True)
class BadLine:
    """A JSONL line that is not JSON; `problem` says why (`invalid JSON (Expecting value at column 1)`)."""

    problem: str


def parse_line(line: str) -> Any:
    """One JSON value from a line, or a BadLine saying why not: not valid JSON, nested too deeply, or holding a lone
    surrogate escape (valid JSON, but not text UTF-8 can store)."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError as error:
        return BadLine(f"invalid JSON ({error.msg} at column {error.colno})")
    except RecursionError:
        return BadLine("invalid JSON (nested too deeply)")
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as error:
        return BadLine(f"invalid text (a lone surrogate escape, \\u{ord(error.object[error.start]):04x}, is not a "
                       "character)")  # fmt: skip
    except RecursionError:
        return BadLine("invalid JSON (nested too deeply)")
    return value


def json_line(line: str) -> Any:
    """`parse_line`, with a problem as a str (the dataset loader's convention)."""
    value = parse_line(line)
    return value.problem if isinstance(value, BadLine) else value


def jsonl_records(lines: Iterable[str]) -> Iterator[tuple[int, Any]]:
    """(line number from 1, parsed object or BadLine) for every non-blank line. Give it lines split at newlines only
    (a file's lines, not `str.splitlines()`: U+2028 and friends inside a JSON string are text)."""
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield number, parse_line(line)


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """`jsonl_records` of a file, streamed (one line in memory at a time)."""
    with path.open(encoding="utf-8") as lines:
        yield from jsonl_records(lines)


def temp_path(path: Path) -> Path:
    """Where `atomic_open` writes `path` until it is complete: a hidden sibling."""
    return path.with_name(f".{path.name}.tmp")


@contextmanager
def atomic_open(path: Path, mode: Literal["w", "wb"] = "w") -> Iterator[IO[Any]]:
    """Write `path` through a temporary sibling that replaces it only when the block ends without error: a kill or
    an exception mid-way never leaves a half-written file under the real name."""
    tmp = temp_path(path)
    file = tmp.open(mode, encoding=None if "b" in mode else "utf-8")
    try:
        yield file
    except BaseException:
        file.close()
        tmp.unlink(missing_ok=True)
        raise
    file.close()
    tmp.replace(path)


def write_atomic(path: Path, text: str) -> None:
    with atomic_open(path) as file:
        file.write(text)


def write_json(path: Path, data: Any) -> None:
    """Pretty, sorted, UTF-8 JSON, written atomically (byte-identical for equal data)."""
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
