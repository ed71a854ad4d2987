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
