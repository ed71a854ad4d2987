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


def jsonl_records(lines: Iterable[str]) -> Iterator[tuple[int, Any]]:
    """(line number from 1, parsed object or BadLine) for every non-blank line."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as error:
            yield number, BadLine(f"invalid JSON ({error.msg} at column {error.colno})")
        except RecursionError:
            yield number, BadLine("invalid JSON (too deeply nested)")


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
