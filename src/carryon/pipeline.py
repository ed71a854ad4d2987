"""The stages end to end on one checked run directory (`carryon.check`): identity → plan → rollout → judge →
analyze/report.

Every stage reads and writes the run store, so re-running the same command resumes: finished conversations and
judgements are skipped, and any call already answered is served from the call cache. A finished run re-run opens
no model at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carryon import __version__
from carryon.batching import BatchClient
from carryon.core import concurrency as aio
from carryon.calls import CachedCaller
from carryon.check import OUTPUT_FILES, CheckedRun, check, differing_fields, planned
from carryon.config import RunConfig
from carryon.core.contracts import RunMetrics
from carryon.data.schema import Item
from carryon.core.errors import BadInput, CarryOnError, ModelCallError
from carryon.judge.audit import count_pending_audits, run_audit
from carryon.judge.audit import prompt_versions as audit_prompt_versions
from carryon.judge.kinds import kinds
from carryon.judge.runner import count_pending, prompt_versions, run_judges
from carryon.metrics.summary import compute_metrics
from carryon.core.chat import ChatClient
from carryon.core.contracts import Pending
from carryon.core.redact import error_line, redact_url
from carryon.models.batch_api import batch_api
from carryon.models.names import ModelSpec
from carryon.models.preflight import preflight
from carryon.models.providers import get
from carryon.models.registry import ModelPool
from carryon.core.io import write_json
from carryon.report.exports import ConversationExport
from carryon.report.html import browser_sample, write_report
from carryon.rundir import check_out, locked, shown, store_is_ours
from carryon.simulate.engine import Engine, TargetSettings
from carryon.simulate.user import LLMUser, ScriptedUser, SimulatedUser
from carryon.store import STORE_FILE, Store

Tick = Callable[[str, int, int], None]  # (stage, done, total)
RetryHook = Callable[[str], None]  # models.http.RetryHook: told a one-line reason each time a call is retried
URL_FIELDS = ("base_url", "target_base_url", "user_base_url", "judge_base_url")


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
    failed_audits: int = 0
    notes: list[str] = field(default_factory=list)
    batches: str = ""
    """With --batch: how many batches went to the provider, and how many of an earlier process were collected."""

    @property
    def summary(self) -> str:
        return f"model calls: {self.made} made, {self.from_cache} from cache"


def prepare_out(out: Path, force_new: bool, flag: str = "--out") -> None:
    """Make the run directory (checked by `check`: writable, new or ours) and check it is writable (call with its
    lock held, `rundir.locked`); with `force_new`, drop the store it holds."""
    try:
        out.mkdir(parents=True, exist_ok=True)
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


def store_identity(store: Store, checked: CheckedRun) -> None:
    """Record the checked run's identity; with --rejudge and other judge fields, drop the old judgements first."""
    stored = store.get_meta("identity")
    if stored is not None:
        if not differing_fields(stored, checked.identity, store.run_dir, rejudge=checked.rejudge):
            return
        store.drop_judgements()
    store.set_meta("identity", checked.identity)


def _unwrap(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


def plan_run(store: Store, items: list[Item], config: RunConfig) -> list[str]:
    """Store the items and the plan (`--conditions all`: each item with a malicious twin is played by it too);
    return notes on what was planned otherwise than asked, also kept in the store's meta for metrics.json."""
    store.add_items((i.id, i.model_dump_json()) for i in items)
    rows = []
    for item in items:
        for p in planned(item, config):
            rows.append((p.conv_id, p.item_id, p.condition, p.sequence_index, [m.value for m in p.moves]))
    store.add_plan(rows)
    notes = []
    untwinned = [i.id for i in items if i.malicious is None]
    if config.conditions == "all" and untwinned:
        notes.append(f"{len(untwinned)} of {len(items)} items have no malicious twin (a version-1 dataset?): planned "
                     "benign-only, so the intent-discrimination metrics cover the others only")  # fmt: skip
    store.set_meta("notes", notes)
    return notes


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
        failed = await engine.run([r for r in store.plan("failed") if r.item_id in items], concurrency)
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
            conc = 1 if get(judge.provider).serial else concurrency
            try:
                unscored, failed = await _audit(store, caller, pool.client("judge", judge), items, conc, tick)
            except BaseExceptionGroup as group:
                raise _unwrap(group) from None
        return RunOutcome(store.run_dir, caller.made, caller.from_cache, 0, unscored, failed_audits=failed)
    store.set_meta("audit", {"judge": judge.name, "prompt_versions": audit_prompt_versions()})
    return RunOutcome(store.run_dir, 0, 0, 0, 0)


async def _execute(store: Store, checked: CheckedRun, tick: Tick | None, on_retry: RetryHook | None) -> RunOutcome:
    config, roles = checked.config, checked.roles
    items = {i.id: i for i in checked.items}
    caller = CachedCaller(store)
    todo = [r for r in store.plan() if r.status != "done" and r.item_id in items]
    judges = [j.name for j in roles.judges]
    failed = unscored = judge_failed = audit_failed = 0
    # a model plays the user: its messages are audited against the plan by the first judge
    auditor = roles.judges[0].name if roles.user is not None else None
    audits_pending = bool(auditor) and bool(count_pending_audits(store, items, auditor or ""))
    if not todo and not count_pending(store, items, judges) and not audits_pending:
        return RunOutcome(config.out, 0, 0, 0, 0)  # finished: open no model at all
    # llama.cpp serves one request at a time: keep a conversation's turns together (its KV cache makes turns 2+
    # fast) and judge one response after another (its judgements share their prompt prefix).
    conv_conc = 1 if get(roles.target.provider).serial else config.concurrency
    judge_conc = 1 if any(get(j.provider).serial for j in roles.judges) else config.concurrency
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
            from carryon.models.endpoints import RoutedClient
            from carryon.models.http import HttpChatClient

            base = plain.endpoints[0].client if isinstance(plain, RoutedClient) else plain
            assert isinstance(base, HttpChatClient)
            batch = BatchClient(role, spec.name, batch_api(base, spec.provider), store, poll_s=config.batch_poll_s)
            batch_clients.append(batch)
            return batch

        target = client("target", roles.target)
        user: SimulatedUser = ScriptedUser() if roles.user is None else LLMUser(client("user", roles.user), caller)
        judge_clients = {j.name: client("judge", j) for j in roles.judges}
        settings = TargetSettings(max_tokens=config.max_tokens, temperature=config.temperature,
                                  system_prompt=config.system_prompt)  # fmt: skip
        try:
            if todo:
                engine = Engine(store, caller, target, user, items, settings)
                failed = await _rollout(engine, store, todo, items, conv_conc, tick)
            unscored, judge_failed = await _judge(store, caller, judge_clients, items, config, judge_conc, tick,
                                                  parallel_kinds="judge" in batched)  # fmt: skip
            if auditor:
                more, audit_failed = await _audit(store, caller, judge_clients[auditor], items, judge_conc, tick)
                unscored += more
        except BaseExceptionGroup as group:
            raise _unwrap(group) from None
        finally:
            for batch in batch_clients:
                await batch.aclose()
            for endpoint, limiter in pool.limiters.items():
                if len(limiter.history) > 1:
                    store.add_limit_history(endpoint, limiter.history)
    batches = ""
    if batch_clients:
        sent = sum(b.batches for b in batch_clients)
        adopted = sum(b.adopted for b in batch_clients)
        batches = (f"provider batches: {sent} submitted ({sum(b.submitted for b in batch_clients)} requests)"
                   + (f", {adopted} of an earlier run collected" if adopted else ""))  # fmt: skip
    return RunOutcome(config.out, caller.made, caller.from_cache, failed, unscored, judge_failed, audit_failed,
                      batches=batches)  # fmt: skip


def run_status(store: Store, items: frozenset[str] | None) -> tuple[bool, Pending]:
    """Whether the run is finished over the items in scope, and what is still pending: conversations not done
    (pending or failed) and judgements not made (per response, judge and registered kind)."""
    config = store.get_meta("config") or {}
    ids = sorted(items) if items is not None else list(store.item_bodies())
    plan = store.plan_counts(ids)
    conversations = sum(n for status, n in plan.items() if status != "done")
    judgements = (store.count_missing_judgements(ids, list(config.get("judge") or []), tuple(kinds()))
                  if ids else 0)  # fmt: skip
    return conversations == 0 and judgements == 0, Pending(conversations=conversations, judgements=judgements)


def write_outputs(store: Store, *, exclude_off_script: bool = False) -> RunMetrics:
    """metrics.json, conversations.jsonl, turns.parquet and report.html from the store alone (no model calls), in
    one streaming pass: each conversation goes to the exports as the analysis reads it. They cover the items of the
    last `carryon run` (its --limit), and say whether the run is complete."""
    out = store.run_dir
    target = (store.get_meta("config") or {}).get("target", "unknown")
    scope = store.get_meta("scope")
    items = frozenset(scope) if scope is not None else None
    with ConversationExport(out, store.item_bodies(), target) as export:
        metrics = compute_metrics(store, export.add, items=items, exclude_off_script=exclude_off_script)
    complete, pending = run_status(store, items)
    metrics = metrics.model_copy(update={"complete": complete, "pending": pending})
    data = metrics.model_dump(mode="json")
    write_json(out / "metrics.json", data)
    meta = {k: v for k, v in data.items() if k != "models"}
    sample, total = browser_sample([export.jsonl_path], export.flagged)
    write_report(out / "report.html", f"CarryOn report — {target}", data["models"], meta, sample, total)
    return metrics


def execute(checked: CheckedRun, *, tick: Tick | None = None, on_retry: RetryHook | None = None,
            exclude_off_script: bool = False) -> RunOutcome:  # fmt: skip
    """Run (or resume) a checked run; the first write to its directory happens here, with its lock held for the
    whole run (carryon/rundir.py). The stages, in order: identity → plan → rollout → judge (the two share one model
    pool) → outputs (analyze + report)."""
    config = checked.config
    for name in dict.fromkeys(spec.provider for spec in checked.roles.all()):
        if (hook := get(name).on_dataset) is not None:
            hook(checked.items)
    with locked(config.out):
        check_out(config.out, outputs=OUTPUT_FILES)  # again, now that no other command can change it
        prepare_out(config.out, checked.force_new)
        return _execute_locked(checked, tick, on_retry, exclude_off_script)


def _execute_locked(checked: CheckedRun, tick: Tick | None, on_retry: RetryHook | None,
                    exclude_off_script: bool = False) -> RunOutcome:  # fmt: skip
    config = checked.config
    with Store(config.out) as store:
        store_identity(store, checked)
        store.set_meta("config", {**stored_config(config), "dataset_sha256": checked.dataset_sha256,
                                  "judge_prompt_versions": prompt_versions(config.ben_util_mode),
                                  "carryon_version": __version__})  # fmt: skip
        store.set_meta("dataset_version", checked.dataset_version)
        store.set_meta("scope", sorted(i.id for i in checked.items))
        notes = plan_run(store, checked.items, config)
        try:
            outcome = aio.run(_execute(store, checked, tick, on_retry))
        except ModelCallError as error:
            _outputs_after_a_stop(store)
            raise CarryOnError(error_line(str(error))) from None
        store.commit()  # a stage boundary: what rollout and judging derived is durable before the outputs
        write_outputs(store, exclude_off_script=exclude_off_script)
    outcome.notes = notes
    return outcome


def _outputs_after_a_stop(store: Store) -> None:
    """After a stop (breaker, permanent error) the outputs are rewritten when anything finished, so they show what
    did, marked `complete: false`, instead of an earlier state. Best effort: the stop's own message matters more."""
    if not store.plan_counts().get("done"):
        return
    try:
        store.commit()
        write_outputs(store)
    except Exception:  # noqa: BLE001 - never hide the error that stopped the run
        pass


def run(config: RunConfig, *, force_new: bool = False, rejudge: bool = False, tick: Tick | None = None,
        on_retry: RetryHook | None = None, exclude_off_script: bool = False) -> RunOutcome:  # fmt: skip
    """check, then execute: raises BadInput before anything is written on bad input."""
    return execute(check(config, force_new=force_new, rejudge=rejudge), tick=tick, on_retry=on_retry,
                   exclude_off_script=exclude_off_script)


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

