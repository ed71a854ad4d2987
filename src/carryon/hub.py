"""Hugging Face Hub folders (docs/dataset.md, "On the Hugging Face Hub"):

- `carryon dataset export DATASET --hf DIR`: the items as a Hub-ready dataset;
- `carryon export RUN_DIR --hf OUT`: a finished run's conversations and judgements, without re-running anything;
- `--dataset hf:ORG/NAME@REVISION` (or `hf:./local/folder`): items loaded through `datasets` (extra `hf`).

A folder holds one Parquet file per config (`<config>/test.parquet`) and a dataset card `README.md` whose YAML
front matter names the configs and their data files, the features, the licence and the task categories, so
`datasets.load_dataset(DIR)` — or the Hub, once pushed — loads the same rows. Writing a folder needs only pyarrow;
loading one needs `datasets`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carryon import __version__
from carryon.data.schema import Item
from carryon.errors import BadInput

HF_PREFIX = "hf:"
SPLIT = "test"
TASK_CATEGORIES = ("text-generation",)
TAGS = ("safety", "over-refusal", "multi-turn", "llm-evaluation", "carryonbench")


@dataclass
class HubConfig:
    """One config of a Hub folder: its rows and their Arrow schema."""

    name: str
    rows: list[dict[str, Any]]
    schema: Any  # pyarrow.Schema
    default: bool = False


@dataclass
class Card:
    pretty_name: str
    licence: str
    description: str
    extra_yaml: dict[str, Any] = field(default_factory=dict)


# -- Arrow schemas --------------------------------------------------------------------------------------------------
def item_schema() -> Any:
    """The Arrow schema of an item row (data/schema.py's Item, every field, nested)."""
    import pyarrow as pa

    s = pa.string()
    clar = pa.struct([(k, s) for k in ("purpose", "context", "narrowing", "assurance")])
    malicious = pa.struct([("intent", s), ("clarifications", clar)])
    return pa.schema([
        ("id", s), ("category", s), ("query", s), ("benign_intent", s), ("intent_upfront", s),
        ("clarifications", clar), ("checklist", pa.list_(s)), ("unsafe_content", pa.list_(s)), ("source", s),
        ("dataset_version", s), ("malicious", malicious), ("schema_version", s),
    ])  # fmt: skip


def features_yaml(schema: Any) -> list[dict[str, Any]]:
    """An Arrow schema as the dataset card's `features` list (the form `datasets` reads)."""
    return [_feature(f.name, f.type) for f in schema]


def _feature(name: str, kind: Any) -> dict[str, Any]:
    return {"name": name, **_kind(kind)}


def _kind(kind: Any) -> dict[str, Any]:
    import pyarrow as pa

    if pa.types.is_struct(kind):
        return {"struct": [_feature(kind.field(i).name, kind.field(i).type) for i in range(kind.num_fields)]}
    if pa.types.is_list(kind):
        inner = _kind(kind.value_type)
        return {"list": inner["dtype"] if "dtype" in inner else inner["struct"]}
    names = {pa.string(): "string", pa.int64(): "int64", pa.float64(): "float64", pa.bool_(): "bool"}
    if kind not in names:
        raise ValueError(f"no card dtype for Arrow type {kind}")
    return {"dtype": names[kind]}


def to_yaml(value: Any, indent: int = 0) -> str:
    """A small YAML emitter for the card's front matter: mappings, lists, and scalars (strings JSON-quoted, which
    YAML reads as the same strings)."""
    pad = " " * indent
    if isinstance(value, dict):
        lines = []
        for key, inner in value.items():
            if isinstance(inner, (dict, list)) and inner:
                lines.append(f"{pad}{key}:\n{to_yaml(inner, indent + 2)}")
            else:
                lines.append(f"{pad}{key}: {_scalar(inner)}")
        return "\n".join(lines)
    if isinstance(value, list):
        lines = []
        for inner in value:
            if isinstance(inner, dict) and inner:
                body = to_yaml(inner, indent + 2)
                lines.append(f"{pad}- {body[indent + 2:]}")
            else:
                lines.append(f"{pad}- {_scalar(inner)}")
        return "\n".join(lines)
    return pad + _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (dict, list)):
        return "{}" if isinstance(value, dict) else "[]"
    if value is None:
        return "null"
    return json.dumps(str(value), ensure_ascii=False)


def size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "n>1M"


# -- writing a folder -------------------------------------------------------------------------------------------------
def write_hub_folder(out: Path, configs: list[HubConfig], card: Card) -> Path:
    """Write one Parquet file per config and the dataset card README.md into `out`; return the card's path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BadInput(f"--hf {out}: cannot create ({error.strerror or error})") from None
    tables = {c.name: pa.Table.from_pylist(c.rows, schema=c.schema) for c in configs}
    front: dict[str, Any] = {
        "pretty_name": card.pretty_name,
        "license": card.licence,
        "language": ["en"],
        "task_categories": list(TASK_CATEGORIES),
        "tags": list(TAGS),
        "size_categories": [size_category(max(len(c.rows) for c in configs))],
        **card.extra_yaml,
        "configs": [
            {"config_name": c.name, "data_files": [{"split": SPLIT, "path": f"{c.name}/{SPLIT}.parquet"}],
             **({"default": True} if c.default else {})}
            for c in configs
        ],  # fmt: skip
        "dataset_info": [
            {"config_name": c.name, "features": features_yaml(c.schema),
             "splits": [{"name": SPLIT, "num_bytes": tables[c.name].nbytes, "num_examples": len(c.rows)}],
             "dataset_size": tables[c.name].nbytes}
            for c in configs
        ],  # fmt: skip
    }
    for c in configs:
        (out / c.name).mkdir(exist_ok=True)
        tmp = out / c.name / f"{SPLIT}.parquet.tmp"
        pq.write_table(tables[c.name], tmp)
        tmp.replace(out / c.name / f"{SPLIT}.parquet")
    readme = out / "README.md"
    readme.write_text(f"---\n{to_yaml(front)}\n---\n\n{card.description.strip()}\n", encoding="utf-8")
    return readme


def item_row(item: Item) -> dict[str, Any]:
    return item.model_dump(mode="json")


def export_items(items: list[Item], out: Path, *, name: str, licence: str) -> Path:
    """`carryon dataset export DATASET --hf DIR`."""
    categories = sorted({i.category for i in items})
    versions = sorted({i.dataset_version for i in items})
    description = f"""# {name}

A CarryOnBench dataset: {len(items)} seemingly harmful queries in {len(categories)} categories, each with the benign
intent behind it, an intent-upfront twin, the clarifications a simulated benign user may give, a checklist of
benign information a helpful answer contains, and descriptions of what would be harmful to hand over
(dataset version {", ".join(versions)}; exported by CarryOn {__version__}).

One config, `items`, split `{SPLIT}`: one row per item, every field of CarryOn's item schema. Run it with CarryOn:

```bash
carryon run --dataset hf:ORG/NAME@REVISION --target provider/model --out runs/mine
```

or load it with `datasets.load_dataset("ORG/NAME", revision=...)`. How the items were written, checked and what
they cannot do: CarryOn's dataset card (docs/dataset.md in the CarryOn repository).
"""
    return write_hub_folder(out, [HubConfig("items", [item_row(i) for i in items], item_schema(), default=True)],
                            Card(pretty_name=name, licence=licence, description=description))  # fmt: skip


# -- a finished run ------------------------------------------------------------------------------------------------
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
    from carryon.report.exports import conversation_record, turn_rows, write_json

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

        metrics = compute_metrics(store, add)
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


# -- loading `hf:` datasets -------------------------------------------------------------------------------------------
def is_hf_ref(value: str | Path | None) -> bool:
    return isinstance(value, str) and value.startswith(HF_PREFIX)


def parse_hf_ref(ref: str) -> tuple[str, str | None]:
    """`hf:ORG/NAME@REVISION` → (ORG/NAME, REVISION); a local folder (`hf:./dir`) may go without a revision, a Hub
    dataset may not: a run must name the exact dataset it read."""
    body = ref[len(HF_PREFIX):]
    name, sep, revision = body.rpartition("@") if "@" in body else (body, "", "")
    if not name or (sep and not revision):
        raise BadInput(f"--dataset {ref}: expected hf:ORG/NAME@REVISION or hf:LOCAL_FOLDER")
    if not sep and not Path(name).expanduser().is_dir():
        raise BadInput(f"--dataset {ref}: pin a revision (hf:{name}@<commit sha or tag>): an unpinned Hub dataset "
                       "can change under a run")  # fmt: skip
    return name, revision or None


@functools.cache
def load_hf_items(ref: str) -> tuple[Item, ...]:
    """The items of an `hf:` dataset, loaded through `datasets` (split `test`, or its only split)."""
    name, revision = parse_hf_ref(ref)
    try:
        import datasets
    except ImportError:
        raise BadInput(f"--dataset {ref}: Hugging Face datasets need: pip install 'carryonbench[hf]'") from None
    path = str(Path(name).expanduser()) if Path(name).expanduser().is_dir() else name
    try:
        loaded = datasets.load_dataset(path, revision=revision)
    except Exception as error:  # noqa: BLE001 - offline, unknown repo or revision, bad card: all name the ref
        raise BadInput(f"--dataset {ref}: could not load ({type(error).__name__}: {str(error)[:300]})") from None
    splits = list(loaded)
    split = SPLIT if SPLIT in splits else splits[0] if len(splits) == 1 else None
    if split is None:
        raise BadInput(f"--dataset {ref}: no '{SPLIT}' split among {', '.join(splits)}")
    from pydantic import ValidationError

    from carryon.data.load import field_problems

    items: list[Item] = []
    problems: list[str] = []
    for n, row in enumerate(loaded[split]):
        try:
            items.append(Item.model_validate(row))
        except ValidationError as error:
            problems.extend(f"{ref}:row {n}: {p}" for p in field_problems(error))
    if problems:
        raise BadInput("invalid dataset:\n" + "\n".join(problems[:20]))
    return tuple(items)


def fingerprint(items: list[Item] | tuple[Item, ...]) -> str:
    """sha256 of the items' canonical JSON lines: an `hf:` dataset's identity in the run store (there is no file)."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(json.dumps(item_row(item), sort_keys=True, ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()
