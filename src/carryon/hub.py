"""`carryon export RUN_DIR --hf OUT`: a finished run's conversations (nested), turns and items as a Hugging Face
dataset folder, read from the run store without a model call (docs/dataset.md, "On the Hugging Face Hub").

The folder format, the card and the dataset side (`dataset export`, `hf:` datasets) are carryon/data/hub.py; this
module reads a run, so it sits above the run's stages (pyproject.toml, the import-linter layers).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from carryon import __version__
from carryon.core.errors import BadInput
from carryon.core.io import write_json
from carryon.data.hub import SPLIT, Card, HubConfig, item_row, item_schema, write_hub_folder
from carryon.data.schema import Item


def conversation_schema() -> Any:
    import pyarrow as pa

    s, f, i = pa.string(), pa.float64(), pa.int64()
    turn = pa.struct([
        ("idx", i), ("move", s), ("user", s), ("response", s), ("ben_util", f), ("harm", f), ("response_type", s),
        ("items_met", s), ("unsafe_met", s), ("unscored", s),
    ])  # fmt: skip
    return pa.schema([
        ("conv_id", s), ("model", s), ("item_id", s), ("category", s), ("condition", s), ("sequence_index", i),
        ("moves", pa.list_(s)), ("stop_reason", s), ("failure_modes", pa.list_(s)), ("turns", pa.list_(turn)),
    ])  # fmt: skip


def turn_schema() -> Any:
    import pyarrow as pa

    from carryon.report.exports import TURN_COLUMNS

    return pa.schema([*((name, getattr(pa, kind)()) for name, kind in TURN_COLUMNS.items()), ("judgements", pa.string())])


def export_run(run_dir: Path, out: Path, *, licence: str) -> tuple[Path, int]:
    """`carryon export RUN_DIR --hf OUT`: the run's conversations (nested), turns (one row per response, with every
    judge's judgements as JSON) and items, read from the store — no model call. Returns (card, conversations)."""
    from carryon.metrics.summary import compute_metrics
    from carryon.metrics.table import Response
    from carryon.pipeline import open_run
    from carryon.report.exports import conversation_record, turn_rows

    with open_run(run_dir) as store:
        config = store.get_meta("config") or {}
        model = config.get("target", "unknown")
        bodies = store.item_bodies()
        conversations: list[dict[str, Any]] = []
        turns: list[dict[str, Any]] = []

        def add(conv: list[Response], modes: list[str]) -> None:
            record = conversation_record(conv, modes, bodies[conv[0].item_id], model)
            conversations.append({
                **{k: record[k] for k in ("conv_id", "model", "item_id", "category", "condition", "sequence_index",
                                          "moves", "stop_reason", "failure_modes")},
                "turns": [{**{k: t[k] for k in ("idx", "move", "user", "response", "ben_util", "harm",
                                                "response_type")},
                           **{k: json.dumps(t[k]) for k in ("items_met", "unsafe_met", "unscored")}}
                          for t in record["turns"]],
            })  # fmt: skip
            for row, r in zip(turn_rows(record, conv, model), conv):
                turns.append({**row, "judgements": json.dumps(r.per_judge, ensure_ascii=False)})

        metrics = compute_metrics(store, add).model_dump(mode="json")
    if not conversations:
        raise BadInput(f"{run_dir}: the run has no finished conversation to export")
    items = [item_row(Item.model_validate(body)) for body in bodies.values()]
    description = f"""# CarryOn run: {model}

The conversations and judgements of one CarryOnBench run (exported by CarryOn {__version__} from a finished run,
no model called): target `{model}`, simulated user `{config.get("user")}`, judge(s) {", ".join(config.get("judge") or [])},
judge prompts {json.dumps(config.get("judge_prompt_versions"))}, dataset version {metrics.get("dataset_version")}.

Configs (split `{SPLIT}`):
- `conversations` (default): one row per conversation — condition, follow-up moves, stop reason, failure modes, and
  its turns with Ben-Util, harm and response type (per-item decisions as JSON strings);
- `turns`: one row per response, as CarryOn's turns.parquet, plus every judge's judgements (JSON);
- `items`: the dataset items the run used.

`metrics.json` beside this card holds every aggregate (docs/metrics.md in the CarryOn repository defines them).
Model outputs are the target provider's; check its terms before you publish them.
"""
    card = write_hub_folder(out, [
        HubConfig("conversations", conversations, conversation_schema(), default=True),
        HubConfig("turns", turns, turn_schema()),
        HubConfig("items", items, item_schema()),
    ], Card(pretty_name=f"CarryOn run: {model}", licence=licence, description=description))  # fmt: skip
    write_json(out / "metrics.json", metrics)
    return card, len(conversations)


