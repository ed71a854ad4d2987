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
from carryon.batching import BatchClient
from carryon.calls import CachedCaller
from carryon.config import IDENTITY_FIELDS, SCRIPTED, RunConfig
from carryon.data.load import builtin_path, load_items
from carryon.data.schema import Item
from carryon.errors import BadInput, CarryOnError, ModelCallError
from carryon.judge.runner import count_pending, prompt_versions, run_judges
from carryon.metrics.summary import compute_metrics
from carryon.models.base import ChatClient
from carryon.models.batch_api import batch_api
from carryon.models.endpoints import RoutedClient
from carryon.models.http import HttpChatClient
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

    def of(self, role: str) -> list[ModelSpec]:
        return {"target": [self.target], "user": [self.user] if self.user else [], "judge": self.judges}[role]


BATCH_PROVIDERS = frozenset({"openai", "openai-api", "anthropic"})
# Work in flight in batch mode: every pending conversation (one turn per round), judged responses by the thousand
# (about ten calls each: a round of up to 50,000 requests, in batches of 10,000).
BATCH_CONVERSATIONS = 20_000
BATCH_RESPONSES = 5_000


@dataclass
class RunOutcome:
    out: Path
    made: int
    from_cache: int
    failed_conversations: int
    unscored: int
    failed_judgements: int = 0
    batches: str = ""
    """With --batch: how many batches went to the provider, and how many of an earlier process were collected."""

    @property
    def summary(self) -> str:
        return f"model calls: {self.made} made, {self.from_cache} from cache"


def check_roles(config: RunConfig, *, require_keys: bool = True) -> Roles:
    def parse(name: str, role: str) -> ModelSpec:
        return parse_model_name(name, role=role, base_url=config.role_base_url(role), require_key=require_keys)

    target = parse(config.target, "target")
    user = None if config.user == SCRIPTED else parse(config.user, "user")
    judges = [parse(j, "judge") for j in config.judge]
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
    from carryon.hub import fingerprint, is_hf_ref, load_hf_items

    if is_hf_ref(path):
        assert path is not None
        return fingerprint(load_hf_items(path)), path
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
    checks = {(s.name, base): s for s in specs if s.provider == "openai-api" for base in s.base_urls}
    for (_, base), spec in checks.items():
        url = f"{base}/models"
        try:
            response = httpx.get(url, timeout=10.0)
        except httpx.HTTPError as error:
            raise BadInput(f"--base-url {base}: unreachable ({type(error).__name__})") from None
        if response.status_code != 200:
            continue  # some servers do not list models; the first call will tell
        try:
            served = [m["id"] for m in response.json().get("data", [])]
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        if served and spec.model not in served:
            raise BadInput(f"{spec.name}: not served at {base}; served: {', '.join(served[:10])}")


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
                 config: RunConfig, concurrency: int, tick: Tick | None, *,
                 parallel_kinds: bool = False) -> tuple[int, int]:  # fmt: skip
    """Judge what is pending; responses whose judging failed get one more pass. Returns (unscored, failed)."""
    total = count_pending(store, items, list(clients))
    mode = config.ben_util_mode
    unscored, failed = await run_judges(store, caller, clients, items, mode, concurrency,
                                        _counter(tick, "judgements", total), parallel_kinds=parallel_kinds)  # fmt: skip
    if failed:
        more, failed = await run_judges(store, caller, clients, items, mode, concurrency,
                                        parallel_kinds=parallel_kinds)  # fmt: skip
        unscored += more
    return unscored, failed


async def _execute(store: Store, config: RunConfig, roles: Roles, items: dict[str, Item], tick: Tick | None) -> RunOutcome:
    caller = CachedCaller(store)
    todo = [r for r in store.plan() if r["status"] != "done" and r["item_id"] in items]
    judges = [j.name for j in roles.judges]
    failed = unscored = judge_failed = 0
    if not todo and not count_pending(store, items, judges):
        return RunOutcome(config.out, 0, 0, 0, 0)  # finished: open no model at all
    preflight([roles.target, *([roles.user] if roles.user else []), *roles.judges])
    # llama.cpp serves one request at a time: keep a conversation's turns together (its KV cache makes turns 2+
    # fast) and judge one response after another (its judgements share their prompt prefix).
    conv_conc = 1 if roles.target.provider == "local" else config.concurrency
    judge_conc = 1 if any(j.provider == "local" for j in roles.judges) else config.concurrency
    batched = set(config.batch)
    if batched & {"target", "user"}:
        conv_conc = min(BATCH_CONVERSATIONS, max(1, len(todo)))  # turn-synchronous rounds: all advance together
    if "judge" in batched:
        judge_conc = BATCH_RESPONSES
    batch_clients: list[BatchClient] = []
    async with ModelPool(concurrency=config.concurrency, timeout_s=config.timeout_s) as pool:

        def client(role: str, spec: ModelSpec) -> ChatClient:
            plain = pool.client(role, spec)
            if role not in batched:
                return plain
            base = plain.endpoints[0].client if isinstance(plain, RoutedClient) else plain
            assert isinstance(base, HttpChatClient)
            batch = BatchClient(role, spec.name, batch_api(base, spec.provider), store, poll_s=config.batch_poll_s)
            batch_clients.append(batch)
            return batch

        target = client("target", roles.target)
        user: SimulatedUser = ScriptedUser() if roles.user is None else LLMUser(client("user", roles.user), caller)
        judge_clients = {j.name: client("judge", j) for j in roles.judges}
        settings = TargetSettings(max_tokens=config.max_tokens, temperature=config.temperature,
                                  system_prompt=config.system_prompt, max_responses=config.max_responses)  # fmt: skip
        try:
            if todo:
                engine = Engine(store, caller, target, user, items, settings)
                failed = await _rollout(engine, store, todo, items, conv_conc, tick)
            unscored, judge_failed = await _judge(store, caller, judge_clients, items, config, judge_conc, tick,
                                                  parallel_kinds="judge" in batched)  # fmt: skip
        except BaseExceptionGroup as group:
            raise _unwrap(group) from None
        finally:
            for batch in batch_clients:
                await batch.aclose()
            for key, plain in pool.clients.items():
                limiter = getattr(plain, "limiter", None)
                if limiter is not None and len(limiter.history) > 1:
                    store.add_limit_history(key.split(":", 1)[0], limiter.history)
    batches = ""
    if batch_clients:
        sent = sum(b.batches for b in batch_clients)
        adopted = sum(b.adopted for b in batch_clients)
        batches = (f"provider batches: {sent} submitted ({sum(b.submitted for b in batch_clients)} requests)"
                   + (f", {adopted} of an earlier run collected" if adopted else ""))  # fmt: skip
    return RunOutcome(config.out, caller.made, caller.from_cache, failed, unscored, judge_failed, batches)


def write_outputs(store: Store) -> dict[str, Any]:
    """metrics.json, conversations.jsonl, turns.parquet and report.html from the store alone (no model calls), in
    one streaming pass: each conversation goes to the exports as the analysis reads it."""
    out = store.run_dir
    target = (store.get_meta("config") or {}).get("target", "unknown")
    with ConversationExport(out, store.item_bodies(), target) as export:
        metrics = compute_metrics(store, export.add)
    write_json(out / "metrics.json", metrics)
    meta = {k: v for k, v in metrics.items() if k != "models"}
    sample, total = browser_sample([export.jsonl_path], export.flagged)
    write_report(out / "report.html", f"CarryOn report — {target}", metrics["models"], meta, sample, total)
    return metrics


def run(config: RunConfig, *, force_new: bool = False, rejudge: bool = False, tick: Tick | None = None) -> RunOutcome:
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
        write_outputs(store)
    return outcome


@contextmanager
def open_run(out: Path) -> Iterator[Store]:
    if not (out / STORE_FILE).is_file():
        raise BadInput(f"{out}: no CarryOn run here (missing {STORE_FILE})")
    with Store(out) as store:
        yield store


def remove_run(out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
