"""Check, then write: every check a run needs that writes nothing — flags, roles, dataset, the run directory's
identity, and the servers whenever work is pending — done before the run directory is touched.

`check(config)` returns a `CheckedRun`; only `pipeline.execute(checked)` writes (identity, plan, turns, outputs).
So a typo (`--target openai-api/idael`) exits 2 and leaves DIR as it was, and the corrected command runs in the same
DIR. (Before, the run's identity was stored before the server check, and the corrected command was refused as a
different run.)"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

from carryon.config import IDENTITY_FIELDS, LEGACY_IDENTITY, SCRIPTED, RunConfig
from carryon.core.errors import BadInput
from carryon.models.names import ModelSpec, parse_model_name
from carryon.simulate.plans import PlannedConversation, max_sequences, plan_item

if TYPE_CHECKING:
    from carryon.data.schema import Item

# Everything `check_flags` needs is imported above and is light; the rest (dataset, judges, store, HTTP) is imported
# inside `check`, so a bad flag is rejected before any of it loads (docs/performance.md, "bad flag").
STORE_FILE = "run.sqlite"  # carryon.store.STORE_FILE, without importing the store
JUDGE_FIELDS = frozenset({"judge", "judge_prompt_versions", "ben_util_mode"})
# Files of ours that may stand in a run directory without its store (rundir.check_out).
OUTPUT_FILES = frozenset({"report.html", "metrics.json", "conversations.jsonl", "turns.parquet", f"{STORE_FILE}-wal",
                          f"{STORE_FILE}-shm", "estimate.json"})  # fmt: skip
# Providers with a batch API (`--batch`, carryon/batching.py, models/batch_api.py).
BATCH_PROVIDERS = frozenset({"openai", "openai-api", "anthropic"})


@dataclass(frozen=True)
class Roles:
    target: ModelSpec
    user: ModelSpec | None
    judges: list[ModelSpec]

    def all(self) -> list[ModelSpec]:
        return [self.target, *([self.user] if self.user else []), *self.judges]

    def of(self, role: str) -> list[ModelSpec]:
        return {"target": [self.target], "user": [self.user] if self.user else [], "judge": self.judges}[role]


@dataclass(frozen=True)
class CheckedRun:
    """A run whose inputs passed every check; `pipeline.execute` runs it."""

    config: RunConfig
    roles: Roles
    items: list[Item]
    dataset_sha256: str
    dataset_version: str
    identity: dict[str, Any]
    pending: bool
    """whether any conversation or judgement is still to be made (else no model is opened)"""
    force_new: bool = False
    rejudge: bool = False


def check_plan_fits(config: RunConfig) -> None:
    """--sequences K must fit --max-turns T: with T = 4 or 5 a conversation has room for one follow-up move, and only
    7 distinct one-move sequences exist. Refused rather than silently planning fewer conversations."""
    room = max_sequences(config.max_responses - 1)
    if config.sequences > room:
        raise BadInput(
            f"--sequences {config.sequences}: --max-turns {config.max_turns} leaves room for "
            f"{config.max_responses - 1} follow-up move(s), and only {room} distinct follow-up sequences fit; "
            f"pass --sequences {room} or fewer, or a larger --max-turns"
        )


def check_flags(config: RunConfig, *, require_keys: bool = True) -> Roles:
    """The checks that need neither the dataset nor the network: the plan fits, every role names a known model, the
    batched roles have a batch API. `require_keys=False` (a dry run) lets a missing API key pass."""
    check_plan_fits(config)
    return check_roles(config, require_keys=require_keys)


def _spec(config: RunConfig, name: str, role: str, require_keys: bool = True) -> ModelSpec:
    """`name` parsed for `role`; a problem with the base URL names the flag that gave it."""
    flag = f"--{role}-base-url" if getattr(config, f"{role}_base_url") else "--base-url"
    return parse_model_name(name, role=role, base_url=config.role_base_url(role), url_flag=flag,
                            require_key=require_keys)  # fmt: skip


def check_roles(config: RunConfig, *, require_keys: bool = True) -> Roles:
    target = _spec(config, config.target, "target", require_keys)
    user = None if config.user == SCRIPTED else _spec(config, config.user, "user", require_keys)
    judges = [_spec(config, j, "judge", require_keys) for j in config.judge]
    roles = Roles(target, user, judges)
    for role in config.batch:
        specs = roles.of(role)
        if not specs:
            raise BadInput(f"--batch {role}: the scripted user makes no model calls; batch a model user (--user)")
        for spec in specs:
            if spec.provider not in BATCH_PROVIDERS:
                raise BadInput(f"--batch {role}: {spec.name} has no batch API; batch mode takes openai/, anthropic/ "
                               "or openai-api/ models (a server offering OpenAI's /files and /batches)")  # fmt: skip
    return roles


def dataset_fingerprint(path: str | None) -> tuple[str, str]:
    """(sha256 of the dataset file, the path it was read from); for an `hf:` dataset, the sha256 of its items'
    canonical JSON lines and the reference (with its pinned revision)."""
    from carryon.data.hub import fingerprint, is_hf_ref, load_hf_items
    from carryon.data.load import builtin_path

    if is_hf_ref(path):
        assert path is not None
        return fingerprint(load_hf_items(path)), path
    file = Path(path) if path else builtin_path()
    if not file.is_file():
        raise BadInput(f"--dataset {path}: file not found")
    return hashlib.sha256(file.read_bytes()).hexdigest(), str(file)


def out_path(value: str, flag: str = "--out") -> Path:
    """The path a flag names; an empty value (which would mean the current folder) is refused."""
    if not value.strip():
        raise BadInput(f"{flag}: empty path; name a folder (e.g. {flag} runs/mine)")
    return Path(value)


def check_writable(out: Path, flag: str = "--out") -> None:
    """`out` is a writable directory, or can be made one (its nearest existing ancestor is a writable directory)."""
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise BadInput(f"{flag} {out}: not writable ({probe} is not a directory)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise BadInput(f"{flag} {out}: not writable (permission denied on {probe})")


def identity(config: RunConfig, dataset_sha: str, dataset_version: str) -> dict[str, Any]:
    from carryon.judge.runner import prompt_versions

    values = config.model_dump(mode="json")
    values.update(dataset_sha256=dataset_sha, dataset_version=dataset_version,
                  judge_prompt_versions=prompt_versions(config.ben_util_mode))  # fmt: skip
    return {k: values[k] for k in IDENTITY_FIELDS}


def differing_fields(stored: dict[str, Any], ident: dict[str, Any], out: Path, *, rejudge: bool) -> list[str]:
    """The identity fields that differ from the stored run's; raises BadInput unless `rejudge` allows them all."""
    differing = [key for key in IDENTITY_FIELDS if stored.get(key, LEGACY_IDENTITY.get(key)) != ident.get(key)]
    if rejudge and set(differing) <= JUDGE_FIELDS:
        return differing
    for key in differing:
        hint = " or --rejudge" if key in JUDGE_FIELDS else ""
        raise BadInput(
            f"--out {out}: this directory holds a run with a different {key} "
            f"({stored.get(key, LEGACY_IDENTITY.get(key))!r} there, {ident.get(key)!r} now); "
            f"use a new --out DIR, --force-new{hint}"
        )
    return differing


def planned(item: Item, config: RunConfig) -> list[PlannedConversation]:
    """The conversations the run plans for `item`: the benign ones, and with `--conditions all` the malicious twin's
    too when the item has a twin."""
    return plan_item(item.id, config.sequences, config.seed, max_moves=config.max_responses - 1,
                     malicious=config.conditions == "all" and item.malicious is not None)  # fmt: skip


def _read_only(out: Path) -> sqlite3.Connection | None:
    from carryon.store import store_version

    path = out / STORE_FILE
    if not path.is_file():
        return None
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise BadInput(f"--out {out}: {STORE_FILE} cannot be read ({error})") from None
    try:
        store_version(db, path)  # a store from a newer CarryOn is refused before anything else
    except BadInput:
        db.close()
        raise
    return db


def _work_pending(db: sqlite3.Connection, config: RunConfig, items: list[Item]) -> bool:
    """Whether a conversation of the plan is not done, or a response of a done one lacks a judgement (read only)."""
    from carryon.judge.kinds import kinds

    conv_ids = {p.conv_id for item in items for p in planned(item, config)}
    done = {row[0] for row in db.execute("SELECT conv_id FROM plan WHERE status='done'")}
    if conv_ids - done:
        return True
    marks = ",".join("?" * len(items))
    missing = (
        f"SELECT 1 FROM plan p JOIN turns t USING (conv_id) WHERE p.status='done' AND p.item_id IN ({marks}) AND NOT "
        "EXISTS (SELECT 1 FROM judgements j WHERE j.conv_id=t.conv_id AND j.idx=t.idx AND j.kind=? AND j.judge=?) LIMIT 1"
    )
    ids = [item.id for item in items]
    return any(db.execute(missing, (*ids, kind, judge)).fetchone() for judge in config.judge for kind in kinds())


def check(config: RunConfig, *, force_new: bool = False, rejudge: bool = False) -> CheckedRun:
    """Every check of a run that needs no write; raises BadInput (exit 2) naming the flag and the problem."""
    from carryon.data.load import load_items
    from carryon.models.preflight import preflight
    from carryon.rundir import check_out

    roles = check_flags(config)
    dataset_sha, dataset_path = dataset_fingerprint(config.dataset)
    items = load_items(dataset_path, config.limit)
    versions = {i.dataset_version for i in items}
    dataset_version = versions.pop() if len(versions) == 1 else "mixed"
    ident = identity(config, dataset_sha, dataset_version)
    check_writable(config.out)
    check_out(config.out, outputs=OUTPUT_FILES)  # a foreign folder or run.sqlite is refused before it is read
    pending = True
    db = None if force_new else _read_only(config.out)
    if db is not None:
        try:
            row = db.execute("SELECT value FROM meta WHERE key='identity'").fetchone()
            if row is not None:
                changed = differing_fields(json.loads(row[0]), ident, config.out, rejudge=rejudge)
                pending = bool(changed) or _work_pending(db, config, items)
        except sqlite3.OperationalError:
            pass  # a store from before identities or half-made: the run checks it when it opens it
        finally:
            db.close()
    if pending:
        preflight(roles.all())
    return CheckedRun(config, roles, items, dataset_sha, dataset_version, ident, pending, force_new, rejudge)
