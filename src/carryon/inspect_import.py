"""`carryon import-inspect LOG… --out DIR`: Inspect AI logs of `carryon/carryonbench` → a CarryOn run directory.

The logs carry everything `carryon run` stores: each sample's planned conversation (item, condition, sequence,
moves, plan position), every turn with its finish reason and every judgement (judge, prompt version, score, value,
raw output). The import writes them to DIR/run.sqlite with the run's identity and then the same outputs as `carryon
run` (metrics.json, report.html, conversations.jsonl, turns.parquet), so `carryon report DIR` and `carryon compare`
work on it, and the figures equal a `carryon run` with the same models. Several logs (a run split in parts) merge;
logs of another target, dataset or settings are refused. Only the first epoch of each sample is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carryon.config import IDENTITY_FIELDS
from carryon.core.errors import BadInput
from carryon.core.chat import ChatResult
from carryon.simulate.plans import BENIGN_CONDITIONS, CONDITIONS
from carryon.store import Store

SETTINGS_MUST_MATCH = ("settings", "dataset_sha256", "dataset_version", "judge_prompt_versions")


@dataclass
class ImportOutcome:
    out: Path
    conversations: int
    failed: int
    logs: int


def _read(path: Path) -> Any:
    try:
        from inspect_ai.log import read_eval_log
    except ImportError:
        raise BadInput("import-inspect needs Inspect AI: pip install 'carryonbench[inspect]'") from None
    if not path.is_file():
        raise BadInput(f"{path}: no such Inspect log")
    try:
        log = read_eval_log(str(path))
    except Exception as error:  # noqa: BLE001 - any unreadable file is bad input, named
        raise BadInput(f"{path}: not a readable Inspect log ({type(error).__name__}: {error})") from None
    if not log.eval.task.endswith("carryonbench") or "carryon" not in (log.eval.metadata or {}):
        raise BadInput(f"{path}: a log of task {log.eval.task!r}, not carryon/carryonbench")
    return log


def import_logs(paths: list[Path], out: Path) -> ImportOutcome:
    """Write the run directory `out` from the Inspect logs `paths` (raises BadInput naming the log at fault)."""
    from carryon.check import check_writable, differing_fields
    from carryon.pipeline import prepare_out, write_outputs

    if not paths:
        raise BadInput("import-inspect: name at least one Inspect log")
    logs = [(path, _read(path)) for path in paths]
    first_path, first = logs[0]
    run = first.eval.metadata["carryon"]
    target = first.eval.model
    samples: dict[str, Any] = {}
    for path, log in logs:
        meta = log.eval.metadata["carryon"]
        if log.eval.model != target:
            raise BadInput(f"{path}: target {log.eval.model} differs from {target} in {first_path}; one run "
                           "directory holds one target (import each into its own DIR, then carryon compare)")  # fmt: skip
        for key in SETTINGS_MUST_MATCH:
            if meta.get(key) != run.get(key):
                raise BadInput(f"{path}: {key} differs from {first_path} ({meta.get(key)!r} vs {run.get(key)!r})")
        for sample in log.samples or []:
            if sample.epoch != 1:
                continue
            conv_id = str(sample.id)
            if conv_id not in samples or _played(sample):  # a later log's finished sample wins
                samples[conv_id] = sample
    if not samples:
        raise BadInput(f"{first_path}: the log holds no samples (was it written with --no-log-samples?)")
    ordered = sorted(samples.values(), key=lambda s: s.metadata["plan_ord"])
    played = [_played(s) for s in ordered]
    users = {p["user"] for p in played if p}
    judges = {tuple(p["judges"]) for p in played if p}
    if len(users) > 1 or len(judges) > 1:
        raise BadInput(f"the logs mix simulated users {sorted(users)} or judge panels {sorted(judges)}")
    settings = run["settings"]
    config = {
        **settings, "target": target, "user": users.pop() if users else "scripted",
        "judge": list(judges.pop()) if judges else [], "dataset_sha256": run["dataset_sha256"],
        "judge_prompt_versions": run["judge_prompt_versions"], "carryon_version": run["carryon_version"],
        "source": "inspect", "inspect_logs": [str(p) for p in paths],
        "conditions": _condition_set(run.get("conditions")),
    }  # fmt: skip
    values = {**config, "dataset_version": run["dataset_version"]}
    identity = {key: values.get(key) for key in IDENTITY_FIELDS}
    check_writable(out)
    prepare_out(out, force_new=False)
    failed = 0
    with Store(out) as store:
        stored = store.get_meta("identity")
        if stored is not None:  # refuse to mix runs, as `carryon run` does (check.differing_fields)
            differing_fields(stored, identity, out, rejudge=False)
        store.set_meta("identity", identity)
        store.set_meta("config", config)
        store.set_meta("dataset_version", run["dataset_version"])
        items = {s.metadata["item_id"]: s.metadata["item"] for s in ordered}
        store.add_items((item_id, _json(body)) for item_id, body in items.items())
        store.add_plan((s.metadata["conv_id"], s.metadata["item_id"], s.metadata["condition"],
                        s.metadata["sequence_index"], s.metadata["moves"]) for s in ordered)  # fmt: skip
        for sample, conv in zip(ordered, played):
            conv_id = sample.metadata["conv_id"]
            store.reset_conversation(conv_id)
            if conv is None:
                failed += 1
                reason = sample.error.message if sample.error else "not scored"
                store.finish_conversation(conv_id, "failed", f"error: {reason}"[:500])
                continue
            for turn in conv["turns"]:
                result = ChatResult(text=turn["response"], finish_reason=turn["finish_reason"])
                store.add_turn(conv_id, turn["idx"], turn["move"], turn["user"], result,
                               user_fallback=turn["user_fallback"], user_rejected=turn.get("user_rejected", 0))  # fmt: skip
                for j in turn["judgements"]:
                    store.add_judgement(conv_id, j["idx"], j["kind"], j["judge"], j["prompt"], j["score"],
                                        _value(j["value"]), j["unscored_reason"], j["raw"])  # fmt: skip
            store.finish_conversation(conv_id, "done", conv["stop_reason"])
        store.commit()
        write_outputs(store)
    return ImportOutcome(out, len(ordered), failed, len(logs))


def _condition_set(planned: list[str] | None) -> str | list[str] | None:
    """The task's conditions as `carryon run` names them (`all`, `benign`), so an import and a run of the same plan
    have the same identity; another subset stays a list."""
    if planned is not None and set(planned) == set(CONDITIONS):
        return "all"
    if planned is not None and set(planned) == set(BENIGN_CONDITIONS):
        return "benign"
    return planned


def _played(sample: Any) -> dict[str, Any] | None:
    """The scored conversation of a sample (its turns and judgements), or None when it errored or was not scored."""
    for score in (sample.scores or {}).values():
        if score.metadata and score.metadata.get("turns") and all("judgements" in t for t in score.metadata["turns"]):
            return dict(score.metadata)
    return None


def _json(body: Any) -> str:
    import json

    return json.dumps(body, ensure_ascii=False)


def _value(value: Any) -> Any:
    """A judgement's value as the store takes it (the log keeps it as the JSON text the store would hold)."""
    import json

    return json.loads(value) if isinstance(value, str) else value
