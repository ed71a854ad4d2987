"""The stages end to end on one run directory: check → plan → rollout → judge → analyze → report.

Every stage reads and writes the run store, so re-running the same command resumes: finished conversations and
judgements are skipped, and any call already answered is served from the call cache. A finished run re-run opens
no model at all.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from carryon import __version__, aio
from carryon.calls import CachedCaller
from carryon.config import IDENTITY_FIELDS, SCRIPTED, RunConfig
from carryon.data.load import builtin_path, load_items
from carryon.data.schema import Item
from carryon.errors import BadInput, CarryOnError, ModelCallError
from carryon.judge.audit import count_pending_audits, run_audit
from carryon.judge.audit import prompt_versions as audit_prompt_versions
from carryon.judge.runner import count_pending, prompt_versions, run_judges
from carryon.metrics.summary import compute_metrics
from carryon.models.base import ChatClient
from carryon.models.registry import ModelPool, ModelSpec, parse_model_name
from carryon.report.exports import ConversationExport, write_json
from carryon.report.html import browser_sample, write_report
from carryon.simulate.engine import Engine, TargetSettings
from carryon.simulate.plans import plan_item
from carryon.simulate.user import LLMUser, ScriptedUser, SimulatedUser
from carryon.store import STORE_FILE, Store

Tick = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class Roles:
    target: ModelSpec
    user: ModelSpec | None
    judges: list[ModelSpec]


@dataclass
class RunOutcome:
    out: Path
    made: int
    from_cache: int
    failed_conversations: int
    unscored: int
    failed_judgements: int = 0
    failed_audits: int = 0

    @property
    def summary(self) -> str:
        return f"model calls: {self.made} made, {self.from_cache} from cache"


def check_roles(config: RunConfig) -> Roles:
    target = parse_model_name(config.target, role="target", base_url=config.role_base_url("target"))
    user = None if config.user == SCRIPTED else parse_model_name(
        config.user, role="user", base_url=config.role_base_url("user"))  # fmt: skip
    judges = [parse_model_name(j, role="judge", base_url=config.role_base_url("judge")) for j in config.judge]
    return Roles(target, user, judges)


def dataset_fingerprint(path: str | None) -> tuple[str, str]:
    """(sha256 of the dataset file, the path it was read from)."""
    file = Path(path) if path else builtin_path()
    if not file.is_file():
        raise BadInput(f"--dataset {path}: file not found")
    return hashlib.sha256(file.read_bytes()).hexdigest(), str(file)


def prepare_out(out: Path, force_new: bool) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise BadInput(f"--out {out}: not writable ({error.strerror or error})") from None
    if force_new:
        for name in (STORE_FILE, f"{STORE_FILE}-wal", f"{STORE_FILE}-shm"):
            (out / name).unlink(missing_ok=True)


def identity(config: RunConfig, dataset_sha: str, dataset_version: str) -> dict[str, Any]:
    values = config.model_dump(mode="json")
    values.update(dataset_sha256=dataset_sha, dataset_version=dataset_version,
                  judge_prompt_versions=prompt_versions(config.ben_util_mode))  # fmt: skip
    return {k: values[k] for k in IDENTITY_FIELDS}


JUDGE_FIELDS = frozenset({"judge", "judge_prompt_versions", "ben_util_mode"})


def guard_mixing(store: Store, ident: dict[str, Any], *, rejudge: bool = False) -> None:
    """Refuse to mix runs: a stored identity must match, field by field. With `rejudge`, judge fields may differ:
    the old judgements are dropped and the stored conversations are judged again (no target call is repeated)."""
    stored = store.get_meta("identity")
    if stored is None:
        store.set_meta("identity", ident)
        return
    differing = [key for key in IDENTITY_FIELDS if stored.get(key) != ident.get(key)]
    if rejudge and differing and set(differing) <= JUDGE_FIELDS:
        store.drop_judgements()
        store.set_meta("identity", ident)
        return
    for key in differing:
        hint = " or --rejudge" if key in JUDGE_FIELDS else ""
        raise BadInput(
            f"--out {store.run_dir}: this directory holds a run with a different {key} "
            f"({stored.get(key)!r} there, {ident.get(key)!r} now); use a new --out DIR, --force-new{hint}"
        )


def preflight(specs: list[ModelSpec]) -> None:
    """Check each OpenAI-compatible server is reachable and serves the model, before any paid call."""
    for spec in {s.name + str(s.base_url): s for s in specs if s.provider == "openai-api"}.values():
        url = f"{spec.base_url}/models"
        try:
            response = httpx.get(url, timeout=10.0)
        except httpx.HTTPError as error:
            raise BadInput(f"--base-url {spec.base_url}: unreachable ({type(error).__name__})") from None
        if response.status_code != 200:
            continue  # some servers do not list models; the first call will tell
        try:
            served = [m["id"] for m in response.json().get("data", [])]
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        if served and spec.model not in served:
            raise BadInput(f"{spec.name}: not served at {spec.base_url}; served: {', '.join(served[:10])}")


def _unwrap(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def plan_run(store: Store, items: list[Item], config: RunConfig) -> None:
    store.add_items((i.id, i.model_dump_json()) for i in items)
    rows = []
    for item in items:
        for p in plan_item(item.id, config.sequences, config.seed, max_moves=config.max_responses - 1):
            rows.append((p.conv_id, p.item_id, p.condition, p.sequence_index, [m.value for m in p.moves]))
    store.add_plan(rows)


def _counter(tick: Tick | None, stage: str, total: int) -> Callable[[], None]:
    """A progress callback for one stage (a no-op without progress display)."""
    done = 0
    if tick:
        tick(stage, 0, total)

    def step() -> None:
        nonlocal done
        done += 1
        if tick:
            tick(stage, done, total)

    return step


async def _rollout(engine: Engine, store: Store, todo: list[Any], items: dict[str, Item], concurrency: int,
                   tick: Tick | None) -> int:  # fmt: skip
    """Play the pending conversations; failed ones get one more pass. Returns how many still failed."""
    failed = await engine.run(todo, concurrency, _counter(tick, "conversations", len(todo)))
    if failed:  # transient failures rarely strike the same conversation twice
        failed = await engine.run([r for r in store.plan("failed") if r["item_id"] in items], concurrency)
    return failed


async def _judge(store: Store, caller: CachedCaller, clients: dict[str, ChatClient], items: dict[str, Item],
                 config: RunConfig, concurrency: int, tick: Tick | None) -> tuple[int, int]:  # fmt: skip
    """Judge what is pending; responses whose judging failed get one more pass. Returns (unscored, failed)."""
    total = count_pending(store, items, list(clients))
    mode = config.ben_util_mode
    unscored, failed = await run_judges(store, caller, clients, items, mode, concurrency,
                                        _counter(tick, "judgements", total))  # fmt: skip
    if failed:
        more, failed = await run_judges(store, caller, clients, items, mode, concurrency)
        unscored += more
    return unscored, failed


async def _audit(store: Store, caller: CachedCaller, client: ChatClient, items: dict[str, Item], concurrency: int,
                 tick: Tick | None) -> tuple[int, int]:  # fmt: skip
    """Audit the simulated user's messages not yet audited; messages whose audit failed get one more pass."""
    total = count_pending_audits(store, items, client.name)
    unscored, failed = await run_audit(store, caller, client, items, concurrency, _counter(tick, "user audit", total))
    if failed:
        more, failed = await run_audit(store, caller, client, items, concurrency)
        unscored += more
    return unscored, failed


async def audit_run(store: Store, judge: ModelSpec, items: dict[str, Item], *, concurrency: int = 8,
                    timeout_s: float = 120.0, tick: Tick | None = None) -> RunOutcome:  # fmt: skip
    """`carryon audit DIR`: audit a finished run's simulated user with `judge` (model calls only for messages not yet
    audited by it)."""
    caller = CachedCaller(store)
    if count_pending_audits(store, items, judge.name):
        preflight([judge])
        async with ModelPool(concurrency=concurrency, timeout_s=timeout_s) as pool:
            conc = 1 if judge.provider == "local" else concurrency
            try:
                unscored, failed = await _audit(store, caller, pool.client("judge", judge), items, conc, tick)
            except BaseExceptionGroup as group:
                raise _unwrap(group) from None
        return RunOutcome(store.run_dir, caller.made, caller.from_cache, 0, unscored, failed_audits=failed)
    store.set_meta("audit", {"judge": judge.name, "prompt_versions": audit_prompt_versions()})
    return RunOutcome(store.run_dir, 0, 0, 0, 0)


async def _execute(store: Store, config: RunConfig, roles: Roles, items: dict[str, Item], tick: Tick | None) -> RunOutcome:
    caller = CachedCaller(store)
    todo = [r for r in store.plan() if r["status"] != "done" and r["item_id"] in items]
    judges = [j.name for j in roles.judges]
    failed = unscored = judge_failed = audit_failed = 0
    # a model plays the user: its messages are audited against the plan by the first judge
    auditor = roles.judges[0].name if roles.user is not None else None
    audits_pending = bool(auditor) and bool(count_pending_audits(store, items, auditor or ""))
    if not todo and not count_pending(store, items, judges) and not audits_pending:
        return RunOutcome(config.out, 0, 0, 0, 0)  # finished: open no model at all
    preflight([roles.target, *([roles.user] if roles.user else []), *roles.judges])
    # llama.cpp serves one request at a time: keep a conversation's turns together (its KV cache makes turns 2+
    # fast) and judge one response after another (its judgements share their prompt prefix).
    conv_conc = 1 if roles.target.provider == "local" else config.concurrency
    judge_conc = 1 if any(j.provider == "local" for j in roles.judges) else config.concurrency
    async with ModelPool(concurrency=config.concurrency, timeout_s=config.timeout_s) as pool:
        target = pool.client("target", roles.target)
        user: SimulatedUser = ScriptedUser() if roles.user is None else LLMUser(pool.client("user", roles.user), caller)
        judge_clients = {j.name: pool.client("judge", j) for j in roles.judges}
        settings = TargetSettings(max_tokens=config.max_tokens, temperature=config.temperature,
                                  system_prompt=config.system_prompt, max_responses=config.max_responses)  # fmt: skip
        try:
            if todo:
                engine = Engine(store, caller, target, user, items, settings)
                failed = await _rollout(engine, store, todo, items, conv_conc, tick)
            unscored, judge_failed = await _judge(store, caller, judge_clients, items, config, judge_conc, tick)
            if auditor:
                more, audit_failed = await _audit(store, caller, judge_clients[auditor], items, judge_conc, tick)
                unscored += more
        except BaseExceptionGroup as group:
            raise _unwrap(group) from None
        finally:
            for key, client in pool.clients.items():
                limiter = getattr(client, "limiter", None)
                if limiter is not None and len(limiter.history) > 1:
                    store.add_limit_history(key.split(":", 1)[0], limiter.history)
    return RunOutcome(config.out, caller.made, caller.from_cache, failed, unscored, judge_failed, audit_failed)


def write_outputs(store: Store, *, exclude_off_script: bool = False) -> dict[str, Any]:
    """metrics.json, conversations.jsonl, turns.parquet and report.html from the store alone (no model calls), in
    one streaming pass: each conversation goes to the exports as the analysis reads it. `exclude_off_script`: leave
    conversations whose simulated user went off script out of the aggregates (metrics/simulator.py)."""
    out = store.run_dir
    target = (store.get_meta("config") or {}).get("target", "unknown")
    with ConversationExport(out, store.item_bodies(), target) as export:
        metrics = compute_metrics(store, export.add, exclude_off_script=exclude_off_script)
    write_json(out / "metrics.json", metrics)
    meta = {k: v for k, v in metrics.items() if k != "models"}
    sample, total = browser_sample([export.jsonl_path], export.flagged)
    write_report(out / "report.html", f"CarryOn report — {target}", metrics["models"], meta, sample, total)
    return metrics


def run(config: RunConfig, *, force_new: bool = False, rejudge: bool = False, tick: Tick | None = None,
        exclude_off_script: bool = False) -> RunOutcome:  # fmt: skip
    """Run (or resume) the benchmark described by `config`; raises BadInput before any call on bad input."""
    roles = check_roles(config)
    dataset_sha, dataset_path = dataset_fingerprint(config.dataset)
    items = load_items(dataset_path, config.limit)
    if any(r.provider == "testing" for r in [roles.target, *roles.judges]):
        from carryon.testing.models import register_items

        register_items(items)
    prepare_out(config.out, force_new)
    versions = {i.dataset_version for i in items}
    dataset_version = versions.pop() if len(versions) == 1 else "mixed"
    with Store(config.out) as store:
        guard_mixing(store, identity(config, dataset_sha, dataset_version), rejudge=rejudge)
        store.set_meta("config", {**config.model_dump(mode="json", exclude={"out"}), "dataset_sha256": dataset_sha,
                                  "judge_prompt_versions": prompt_versions(config.ben_util_mode),
                                  "carryon_version": __version__})  # fmt: skip
        store.set_meta("dataset_version", dataset_version)
        plan_run(store, items, config)
        try:
            outcome = aio.run(_execute(store, config, roles, {i.id: i for i in items}, tick))
        except ModelCallError as error:
            raise CarryOnError(str(error)) from None
        write_outputs(store, exclude_off_script=exclude_off_script)
    return outcome


@contextmanager
def open_run(out: Path) -> Iterator[Store]:
    if not (out / STORE_FILE).is_file():
        raise BadInput(f"{out}: no CarryOn run here (missing {STORE_FILE})")
    with Store(out) as store:
        yield store


def remove_run(out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
