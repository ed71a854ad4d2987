"""The stages end to end on one run directory: check → plan → rollout → judge → analyze → report.

Every stage reads and writes the run store, so re-running the same command resumes: finished conversations and
judgements are skipped, and any call already answered is served from the call cache. A finished run re-run opens
no model at all.
"""

from __future__ import annotations

import hashlib
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
from carryon.judge.runner import KINDS, count_pending, prompt_versions, run_judges
from carryon.metrics.summary import compute_metrics
from carryon.models.base import ChatClient
from carryon.models.batch_api import batch_api
from carryon.models.endpoints import RoutedClient
from carryon.models.http import HttpChatClient, RetryHook
from carryon.models.registry import ModelPool, ModelSpec, parse_model_name
from carryon.redact import error_line, redact_url, split_url
from carryon.report.exports import ConversationExport, write_json
from carryon.report.html import browser_sample, write_report
from carryon.rundir import check_out, locked, shown, store_is_ours
from carryon.simulate.engine import Engine, TargetSettings
from carryon.simulate.plans import plan_item
from carryon.simulate.user import LLMUser, ScriptedUser, SimulatedUser
from carryon.store import STORE_FILE, Store

Tick = Callable[[str, int, int], None]  # (stage, done, total)
OUTPUT_FILES = frozenset({"report.html", "metrics.json", "conversations.jsonl", "turns.parquet", f"{STORE_FILE}-wal",
                          f"{STORE_FILE}-shm", "estimate.json"})  # fmt: skip
URL_FIELDS = ("base_url", "target_base_url", "user_base_url", "judge_base_url")


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


def _spec(config: RunConfig, name: str, role: str, require_keys: bool = True) -> ModelSpec:
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
    from carryon.hub import fingerprint, is_hf_ref, load_hf_items

    if is_hf_ref(path):
        assert path is not None
        return fingerprint(load_hf_items(path)), path
    file = Path(path) if path else builtin_path()
    if not file.is_file():
        raise BadInput(f"--dataset {path}: file not found")
    return hashlib.sha256(file.read_bytes()).hexdigest(), str(file)


def prepare_out(out: Path, force_new: bool, flag: str = "--out") -> None:
    """Check `out` is writable (call with its lock held, after `check_out`); `force_new` drops its run store."""
    try:
        probe = out / ".carryon.write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise BadInput(f"{flag} {shown(out)}: not writable ({error.strerror or error})") from None
    if force_new:
        for name in (STORE_FILE, f"{STORE_FILE}-wal", f"{STORE_FILE}-shm"):
            (out / name).unlink(missing_ok=True)


def stored_config(config: RunConfig) -> dict[str, Any]:
    """The config as stored in the run and shown in reports: base URLs with their credentials masked."""
    values = config.model_dump(mode="json", exclude={"out"})
    for key in URL_FIELDS:
        if values.get(key):
            values[key] = redact_url(values[key])
    return values


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
        url = split_url(base)
        auth = {"Authorization": url.basic_auth} if url.basic_auth else {}
        try:
            response = httpx.get(f"{url.base}/models", params=url.params, headers=auth, timeout=10.0)
        except httpx.HTTPError as error:
            raise BadInput(f"--base-url {url.display}: unreachable ({type(error).__name__})") from None
        if response.status_code != 200:
            continue  # some servers do not list models; the first call will tell
        try:
            served = [m["id"] for m in response.json().get("data", [])]
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        if served and spec.model not in served:
            listed = ", ".join(str(m)[:80] for m in served[:10])
            raise BadInput(error_line(f"{spec.name}: not served at {url.display}; served: {listed}"))


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


async def _execute(store: Store, config: RunConfig, roles: Roles, items: dict[str, Item], tick: Tick | None,
                   on_retry: RetryHook | None) -> RunOutcome:  # fmt: skip
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
    async with ModelPool(concurrency=config.concurrency, timeout_s=config.timeout_s, on_retry=on_retry,
                         give_up_after_s=config.give_up_after_s,
                         max_response_bytes=config.max_response_bytes) as pool:  # fmt: skip

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


def run_status(store: Store, items: frozenset[str] | None) -> dict[str, Any]:
    """Whether the run is finished over the items in scope, and what is still pending: conversations not done
    (pending or failed) and judgements not made (per response, judge and kind)."""
    config = store.get_meta("config") or {}
    ids = sorted(items) if items is not None else list(store.item_bodies())
    plan = store.plan_counts(ids)
    conversations = sum(n for status, n in plan.items() if status != "done")
    judgements = store.count_missing_judgements(ids, list(config.get("judge") or []), KINDS) if ids else 0
    return {"complete": conversations == 0 and judgements == 0,
            "pending": {"conversations": conversations, "judgements": judgements}}  # fmt: skip


def write_outputs(store: Store) -> dict[str, Any]:
    """metrics.json, conversations.jsonl, turns.parquet and report.html from the store alone (no model calls), in
    one streaming pass: each conversation goes to the exports as the analysis reads it. They cover the items of the
    last `carryon run` (its --limit), and say whether the run is complete."""
    out = store.run_dir
    target = (store.get_meta("config") or {}).get("target", "unknown")
    scope = store.get_meta("scope")
    items = frozenset(scope) if scope is not None else None
    with ConversationExport(out, store.item_bodies(), target) as export:
        metrics = compute_metrics(store, export.add, items=items)
    metrics.update(run_status(store, items))
    write_json(out / "metrics.json", metrics)
    meta = {k: v for k, v in metrics.items() if k != "models"}
    sample, total = browser_sample([export.jsonl_path], export.flagged)
    write_report(out / "report.html", f"CarryOn report — {target}", metrics["models"], meta, sample, total)
    return metrics


def run(config: RunConfig, *, force_new: bool = False, rejudge: bool = False, tick: Tick | None = None,
        on_retry: RetryHook | None = None) -> RunOutcome:  # fmt: skip
    """Run (or resume) the benchmark described by `config`; raises BadInput before any call on bad input. The run
    directory is locked for the whole run (carryon/rundir.py)."""
    roles = check_roles(config)
    dataset_sha, dataset_path = dataset_fingerprint(config.dataset)
    items = load_items(dataset_path, config.limit)
    if any(r.provider == "testing" for r in [roles.target, *roles.judges]):
        from carryon.testing.models import register_items

        register_items(items)
    check_out(config.out, outputs=OUTPUT_FILES)
    with locked(config.out):
        check_out(config.out, outputs=OUTPUT_FILES)  # again, now that no other command can change it
        prepare_out(config.out, force_new)
        return _run_locked(config, roles, items, dataset_sha, rejudge, tick, on_retry)


def _run_locked(config: RunConfig, roles: Roles, items: list[Item], dataset_sha: str, rejudge: bool,
                tick: Tick | None, on_retry: RetryHook | None) -> RunOutcome:  # fmt: skip
    versions = {i.dataset_version for i in items}
    dataset_version = versions.pop() if len(versions) == 1 else "mixed"
    with Store(config.out) as store:
        guard_mixing(store, identity(config, dataset_sha, dataset_version), rejudge=rejudge)
        store.set_meta("config", {**stored_config(config), "dataset_sha256": dataset_sha,
                                  "judge_prompt_versions": prompt_versions(config.ben_util_mode),
                                  "carryon_version": __version__})  # fmt: skip
        store.set_meta("dataset_version", dataset_version)
        store.set_meta("scope", sorted(i.id for i in items))
        plan_run(store, items, config)
        try:
            outcome = aio.run(_execute(store, config, roles, {i.id: i for i in items}, tick, on_retry))
        except ModelCallError as error:
            _outputs_after_a_stop(store)
            raise CarryOnError(error_line(str(error))) from None
        write_outputs(store)
    return outcome


def _outputs_after_a_stop(store: Store) -> None:
    """After a stop (breaker, permanent error) the outputs are rewritten when anything finished, so they show what
    did, marked `complete: false`, instead of an earlier state. Best effort: the stop's own message matters more."""
    if not store.plan_counts().get("done"):
        return
    try:
        write_outputs(store)
    except Exception:  # noqa: BLE001 - never hide the error that stopped the run
        pass


@contextmanager
def open_run(out: Path) -> Iterator[Store]:
    """The run store of `out`, its lock held; BadInput if `out` holds no CarryOn run (a foreign store is refused
    before it is opened for writing)."""
    store_path = out / STORE_FILE
    if not store_path.is_file():
        raise BadInput(f"{shown(out)}: no CarryOn run here (missing {STORE_FILE})")
    if not store_is_ours(store_path):
        raise BadInput(f"{shown(out)}: its {STORE_FILE} is not a CarryOn run store; refusing to touch it")
    with locked(out, "run directory"), Store(out) as store:
        yield store


def remove_run(out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
