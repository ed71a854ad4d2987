"""conversations.jsonl (one conversation a line, every turn with its move and judgements), turns.parquet (one row per
response) and metrics.json. The two conversation files are written as the analysis streams past, in batches, to a
temporary name first: a kill mid-way never leaves a half-written file under the real name."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

from carryon.core.io import atomic_open
from carryon.data.schema import numbered
from carryon.metrics.curves import cumulative_and_novel
from carryon.metrics.simulator import flagged, message_flags
from carryon.metrics.table import Response


USER_FALLBACK = {1: "confused", 2: "refused_persona"}
"""A turn's `user_fallback` in conversations.jsonl: why the user's message is the scripted one (None: it is not, or
the user is scripted anyway)."""


def conversation_record(conv: list[Response], modes: list[str], item: dict[str, Any], model: str) -> dict[str, Any]:
    """One line of conversations.jsonl."""
    first = conv[0]
    return {
        "conv_id": first.conv_id,
        "model": model,
        "item_id": first.item_id,
        "category": first.category,
        "condition": first.condition,
        "sequence_index": first.sequence_index,
        "moves": list(first.moves),
        "stop_reason": first.stop_reason,
        "failure_modes": modes,
        "user_off_script": flagged(conv),
        "checklist": {e.id: e.text for e in numbered(item["checklist"], "c")},
        "unsafe_content": {e.id: e.text for e in numbered(item["unsafe_content"], "u")},
        "turns": [
            {
                "idx": r.idx,
                "move": r.move,
                "user": r.user_text,
                "response": r.text,
                "ben_util": r.ben_util,
                "items_met": r.items_met,
                "harm": r.harm,
                "unsafe_met": r.unsafe_met,
                "response_type": r.rtype,
                "unscored": r.unscored,
                "user_fallback": USER_FALLBACK.get(r.user_fallback),
                "judgements": r.per_judge,
                "truncated_from": r.truncated_from,
                "replaced": r.replaced,
                **({"user_audit": {**message_flags(r), "verdicts": r.audit}} if r.move else {}),
                **({"user_rejected": r.user_rejected} if r.move else {}),
            }
            for r in conv
        ],
    }


TURN_COLUMNS = {
    "conv_id": "string", "model": "string", "item_id": "string", "category": "string", "condition": "string",
    "sequence_index": "int64", "moves": "string", "stop_reason": "string", "failure_modes": "string",
    "idx": "int64", "move": "string", "user": "string", "response": "string", "ben_util": "float64",
    "cumulative_util": "float64", "novel_util": "float64", "harm": "float64", "response_type": "string",
    "items_met": "string", "unsafe_met": "string", "unscored": "string", "user_audit": "string",
}  # fmt: skip


def turn_rows(record: dict[str, Any], conv: list[Response], model: str) -> list[dict[str, Any]]:
    """The turns.parquet rows (TURN_COLUMNS) of one conversation, from its conversations.jsonl record."""
    shared = {
        "conv_id": record["conv_id"], "model": model, "item_id": record["item_id"],
        "category": record["category"], "condition": record["condition"],
        "sequence_index": record["sequence_index"], "moves": " > ".join(record["moves"]),
        "stop_reason": record["stop_reason"], "failure_modes": ",".join(record["failure_modes"]),
    }  # fmt: skip
    return [
        {
            **shared, "idx": r.idx, "move": r.move, "user": r.user_text, "response": r.text,
            "ben_util": r.ben_util, "cumulative_util": cum, "novel_util": nov, "harm": r.harm,
            "response_type": r.rtype, "items_met": json.dumps(r.items_met),
            "unsafe_met": json.dumps(r.unsafe_met), "unscored": json.dumps(r.unscored),
            "user_audit": json.dumps(message_flags(r)) if r.move else None,
        }  # fmt: skip
        for r, (cum, nov) in zip(conv, cumulative_and_novel(conv))
    ]


class ConversationExport:
    """Writes conversations.jsonl and turns.parquet in `out`, one conversation at a time (`add`), and remembers for
    each line whether it has a failure mode or an off-script user (for the report's conversation browser). Use as a
    context manager: the files get their real names only when it exits without error."""

    BATCH_ROWS = 2_000

    def __init__(self, out: Path, items: dict[str, dict[str, Any]], model: str) -> None:
        self.jsonl_path = out / "conversations.jsonl"
        self.parquet_path = out / "turns.parquet"
        self.items, self.model = items, model
        self.flagged: list[bool] = []
        import pyarrow as pa  # imported here: the CLI starts (and rejects bad input) without loading pyarrow
        import pyarrow.parquet as pq

        self._files = ExitStack()  # both files get their real names together, only on a clean exit (core.io)
        self._jsonl = self._files.enter_context(atomic_open(self.jsonl_path))
        self._pa = pa
        self._schema = pa.schema([(name, getattr(pa, kind)()) for name, kind in TURN_COLUMNS.items()])
        parquet = self._files.enter_context(atomic_open(self.parquet_path, "wb"))
        self._parquet = pq.ParquetWriter(parquet, self._schema)
        self._rows: dict[str, list[Any]] = {name: [] for name in TURN_COLUMNS}

    def add(self, conv: list[Response], modes: list[str]) -> None:
        record = conversation_record(conv, modes, self.items[conv[0].item_id], self.model)
        self._jsonl.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.flagged.append(bool(modes) or record["user_off_script"])
        for row in turn_rows(record, conv, self.model):
            for name, value in row.items():
                self._rows[name].append(value)
        if len(self._rows["conv_id"]) >= self.BATCH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._rows["conv_id"]:
            self._parquet.write_table(self._pa.table(self._rows, schema=self._schema))
            self._rows = {name: [] for name in TURN_COLUMNS}

    def __enter__(self) -> ConversationExport:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self._flush()
        self._parquet.close()
        self._files.__exit__(kind, error, tb)
