"""conversations.jsonl (one conversation a line, every turn with its move and judgements) and metrics.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from carryon.metrics.table import Response, conversations


def conversation_records(responses: list[Response], labels: dict[str, list[str]], items: dict[str, dict[str, Any]],
                         model: str) -> list[dict[str, Any]]:  # fmt: skip
    out = []
    for conv_id, conv in conversations(responses).items():
        first = conv[0]
        item = items[first.item_id]
        out.append(
            {
                "conv_id": conv_id,
                "model": model,
                "item_id": first.item_id,
                "category": first.category,
                "condition": first.condition,
                "sequence_index": first.sequence_index,
                "moves": list(first.moves),
                "stop_reason": first.stop_reason,
                "failure_modes": labels.get(conv_id, []),
                "checklist": {f"c{i}": text for i, text in enumerate(item["checklist"], start=1)},
                "turns": [
                    {
                        "idx": r.idx,
                        "move": r.move,
                        "user": r.user_text,
                        "response": r.text,
                        "ben_util": r.ben_util,
                        "items_met": r.items_met,
                        "harm": r.harm,
                        "response_type": r.rtype,
                        "unscored": r.unscored,
                        "judgements": r.per_judge,
                    }
                    for r in conv
                ],
            }
        )
    return out


TURN_COLUMNS = (
    "conv_id", "model", "item_id", "category", "condition", "sequence_index", "moves", "stop_reason",
    "failure_modes", "idx", "move", "user", "response", "ben_util", "cumulative_util", "novel_util", "harm",
    "response_type", "items_met", "unscored",
)  # fmt: skip


def write_turns_parquet(path: Path, records: list[dict[str, Any]]) -> None:
    """turns.parquet: one row per response with every judgement (nested values as JSON text), for pandas."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from carryon.metrics.curves import cumulative_and_novel_from_items

    rows: dict[str, list[Any]] = {c: [] for c in TURN_COLUMNS}
    for conv in records:
        cum_nov = cumulative_and_novel_from_items([t["items_met"] for t in conv["turns"]])
        for turn, (cum, nov) in zip(conv["turns"], cum_nov):
            values = {
                **{k: conv[k] for k in ("conv_id", "model", "item_id", "category", "condition", "sequence_index",
                                        "stop_reason")},
                "moves": " > ".join(conv["moves"]), "failure_modes": ",".join(conv["failure_modes"]),
                **{k: turn[k] for k in ("idx", "move", "user", "response", "ben_util", "harm", "response_type")},
                "cumulative_util": cum, "novel_util": nov,
                "items_met": json.dumps(turn["items_met"]), "unscored": json.dumps(turn["unscored"]),
            }  # fmt: skip
            for column in TURN_COLUMNS:
                rows[column].append(values[column])
    tmp = path.with_suffix(".tmp")
    pq.write_table(pa.table(rows), tmp)
    tmp.replace(path)


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(path)


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
