"""The `carryon` command: run, report, compare, export, import-inspect, dataset, judge, serve. Exit codes: 0 ok, 2 bad input, 1 other failure."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from carryon import __version__
from carryon.core.errors import BadInput, CarryOnError
from carryon.core.redact import error_line, plain

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help="CarryOn: over-refusal recovery benchmark.")
dataset_app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, help="Validate, summarise and build datasets.")
app.add_typer(dataset_app, name="dataset")
judge_app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, help="Validate judges against human labels.")
app.add_typer(judge_app, name="judge")
# Markup and highlighting off: names, paths and error bodies are untrusted text, printed as plain text (error_line
# and plain escape control characters); styles are given as arguments, never as markup in a string.
console = Console(stderr=True, markup=False, highlight=False)
out_console = Console(width=max(120, Console().width), markup=False, highlight=False)


def fail(error: Exception) -> NoReturn:
    code = 2 if isinstance(error, BadInput) else 1
    console.print(Text("error: ", style="bold red") + Text(error_line(str(error))), soft_wrap=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    console.print(Text(error_line(message), style="yellow"), soft_wrap=True)


@dataclass
class Display:
    """Progress bars: `tick(stage, done, total)` per stage, and `retry(reason)` counting retries as they happen."""

    tick: Callable[[str, int, int], None] | None = None
    retry: Callable[[str], None] | None = None


@contextmanager
def _progress(quiet: bool) -> Iterator[Display]:
    if quiet:
        yield Display()
        return
    columns = (TextColumn("{task.description:<14}", markup=False), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
               TextColumn("{task.fields[note]}", markup=False))  # fmt: skip
    with Progress(*columns, console=console, transient=False) as progress:
        tasks: dict[str, TaskID] = {}
        retries = 0

        def tick(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total, note="")
            progress.update(tasks[stage], completed=done, total=total)

        def retry(reason: str) -> None:
            nonlocal retries
            retries += 1
            if "retries" not in tasks:
                tasks["retries"] = progress.add_task("retries", total=None, note="")
            last = plain(reason)
            progress.update(tasks["retries"], completed=retries, note=f"last: {last[:90]}")

        yield Display(tick, retry)


def _config_error(error: ValidationError) -> BadInput:
    from carryon.config import FLAGS

    first = error.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    flag = FLAGS.get(field, "--" + field.replace("_", "-")) if field else "config"
    return BadInput(f"{flag}: {first['msg']}")


@app.command()
def run(
    out: Annotated[str, typer.Option("--out", help="run directory (re-running the same command resumes)")],
    target: Annotated[Optional[str], typer.Option(help="model under test, provider/model")] = None,
    user: Annotated[str, typer.Option(help="'scripted' or a provider/model playing the benign user")] = "scripted",
    judge: Annotated[Optional[str], typer.Option(help="judge model(s), comma-separated for a panel")] = None,
    base_url: Annotated[Optional[str], typer.Option(help="base URL for every openai-api/ role")] = None,
    target_base_url: Annotated[Optional[str], typer.Option()] = None,
    user_base_url: Annotated[Optional[str], typer.Option()] = None,
    judge_base_url: Annotated[Optional[str], typer.Option()] = None,
    dataset: Annotated[Optional[str], typer.Option(help="dataset jsonl/csv, or hf:ORG/NAME@REVISION (default: the built-in dataset)")] = None,
    limit: Annotated[Optional[int], typer.Option(help="use the first N items")] = None,
    sequences: Annotated[int, typer.Option(help="follow-up sequences per item")] = 15,
    max_turns: Annotated[int, typer.Option(help="messages per conversation, 4-12 (2 per model response)")] = 12,
    concurrency: Annotated[int, typer.Option(help="conversations / judge calls in flight")] = 8,
    seed: Annotated[int, typer.Option()] = 0,
    conditions: Annotated[str, typer.Option(help="benign (the benign user only, the paper's design) or all (also the item's malicious twin making the same moves)")] = "all",
    max_tokens: Annotated[int, typer.Option(help="target's max tokens per response")] = 400,
    temperature: Annotated[float, typer.Option(help="target's sampling temperature")] = 0.0,
    ben_util_mode: Annotated[str, typer.Option(help="per-item or batched")] = "per-item",
    timeout: Annotated[float, typer.Option(help="seconds per model request")] = 120.0,
    batch: Annotated[Optional[str], typer.Option(help="roles whose calls go through the provider's batch API "
                                                 "(about half price, results within hours): judge, target, user; "
                                                 "comma-separated")] = None,  # fmt: skip
    batch_poll: Annotated[float, typer.Option(help="seconds between looks at a live batch")] = 30.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="make no model call: print and write DIR/estimate.json "
                                          "(conversations, calls and tokens per role, cost with --price)")] = False,
    price: Annotated[Optional[list[str]], typer.Option(help="ROLE=IN/OUT or ROLE=IN/OUT/CACHED: USD per million "
                                                       "input/output (and cached input) tokens, for --dry-run; "
                                                       "repeat per role")] = None,  # fmt: skip
    give_up_after: Annotated[float, typer.Option(help="stop the run when an endpoint has failed this many seconds "
                                                 "without one success (finished work is kept)")] = 120.0,
    max_response_bytes: Annotated[int, typer.Option(help="cut longer responses to this many bytes (UTF-8) before "
                                                    "storing or sending them on; each cut is recorded")] = 65536,
    force_new: Annotated[bool, typer.Option("--force-new", help="discard what DIR holds and start afresh")] = False,
    rejudge: Annotated[bool, typer.Option("--rejudge", help="judge DIR's conversations again with another judge or judge prompt version")] = False,
    exclude_off_script: Annotated[bool, typer.Option("--exclude-off-script", help="leave conversations whose simulated user went off script (by the audit) out of the headline")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    """Run (or resume) the benchmark and write DIR/report.html, DIR/metrics.json, DIR/conversations.jsonl. With a
    model as --user, its messages are audited against the plan by the (first) judge."""
    from carryon.check import check_flags  # light: flags and roles are checked before the heavy imports
    from carryon.config import RunConfig
    from carryon.check import out_path
    from carryon.models.names import DEFAULT_LOCAL

    try:
        run_dir = out_path(out)
        config = RunConfig(
            target=target or DEFAULT_LOCAL, user=user,
            judge=[j.strip() for j in (judge or DEFAULT_LOCAL).split(",") if j.strip()],
            base_url=base_url, target_base_url=target_base_url, user_base_url=user_base_url,
            judge_base_url=judge_base_url, dataset=dataset, limit=limit, sequences=sequences, max_turns=max_turns,
            concurrency=concurrency, seed=seed, max_tokens=max_tokens, temperature=temperature,
            ben_util_mode=ben_util_mode, timeout_s=timeout, give_up_after_s=give_up_after,  # type: ignore[arg-type]
            max_response_bytes=max_response_bytes, conditions=conditions, out=run_dir,  # type: ignore[arg-type]
            batch=[r.strip() for r in (batch or "").split(",") if r.strip()],  # type: ignore[misc]
            batch_poll_s=batch_poll,
        )  # fmt: skip
    except ValidationError as error:
        fail(_config_error(error))
    except CarryOnError as error:
        fail(error)
    if price and not dry_run:
        fail(BadInput("--price: only used with --dry-run"))
    try:
        check_flags(config, require_keys=not dry_run)  # a dry run makes no call: it needs no API key
    except CarryOnError as error:
        fail(error)
    if dry_run:
        _dry_run(config, price or [])
        return
    from carryon import pipeline
    from carryon.check import check

    started = time.perf_counter()
    try:
        checked = check(config, force_new=force_new, rejudge=rejudge)  # writes nothing
        with _progress(quiet) as display:
            outcome = pipeline.execute(checked, tick=display.tick, on_retry=display.retry,
                                       exclude_off_script=exclude_off_script)  # fmt: skip
    except CarryOnError as error:
        fail(error)
    except KeyboardInterrupt:
        console.print("interrupted: re-run the same command to resume")
        raise typer.Exit(130) from None
    for note in outcome.notes:
        console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)
    if outcome.failed_conversations:
        warn(f"{outcome.failed_conversations} conversation(s) failed after retries; "
             "re-run the same command to retry them")  # fmt: skip
    if outcome.failed_judgements:
        warn(f"judging of {outcome.failed_judgements} response(s) failed after retries; "
             "re-run the same command to retry them")  # fmt: skip
    if outcome.failed_audits:
        warn(f"the audit of {outcome.failed_audits} user message(s) failed after retries; "
             "re-run the same command to retry them")  # fmt: skip
    if outcome.unscored:
        console.print(f"{outcome.unscored} judgement(s) unscored (counted in metrics.json and the report)")
    out_console.print(f"report: {plain(str((run_dir / 'report.html').resolve()))}  "
                      f"({time.perf_counter() - started:.1f}s)")  # fmt: skip
    if outcome.batches:
        out_console.print(outcome.batches)
    out_console.print(outcome.summary)
    if outcome.failed_conversations or outcome.failed_judgements or outcome.failed_audits:
        raise typer.Exit(1)


def _dry_run(config: Any, prices: list[str]) -> None:
    from carryon.estimate import estimate_run, parse_prices, render

    try:
        estimate = estimate_run(config, parse_prices(prices))
    except CarryOnError as error:
        fail(error)
    out_console.print(plain(render(estimate), newlines=True), soft_wrap=True)
    out_console.print(f"written: {plain(str((config.out / 'estimate.json').resolve()))}")
    out_console.print("model calls: 0 made (dry run)")


@app.command()
def report(
    run_dir_arg: Annotated[str, typer.Argument(metavar="RUN_DIR", help="a run directory")],
    exclude_off_script: Annotated[bool, typer.Option("--exclude-off-script", help="leave conversations whose simulated user went off script (by the audit) out of the headline")] = False,
) -> None:
    """Rewrite DIR/report.html, DIR/metrics.json and DIR/conversations.jsonl from the store (no model calls)."""
    from carryon.check import out_path
    from carryon.pipeline import open_run, write_outputs

    try:
        run_dir = out_path(run_dir_arg, "RUN_DIR")
        with open_run(run_dir) as store:
            metrics = write_outputs(store, exclude_off_script=exclude_off_script)
    except CarryOnError as error:
        fail(error)
    if not metrics.complete:
        pending = metrics.pending
        counts = "?" if pending is None else f"{pending.conversations} conversation(s) and {pending.judgements}"
        warn(f"this run is not finished ({counts} judgement(s) pending); the report covers what is done and says "
             "so")  # fmt: skip
    out_console.print(f"report: {plain(str((run_dir / 'report.html').resolve()))}")
    out_console.print("model calls: 0 made, 0 from cache")


@app.command()
def audit(
    run_dir_arg: Annotated[str, typer.Argument(metavar="RUN_DIR", help="a run directory")],
    judge: Annotated[Optional[str], typer.Option(help="audit judge, provider/model (default: the run's first judge)")] = None,
    base_url: Annotated[Optional[str], typer.Option(help="base URL for an openai-api/ judge")] = None,
    concurrency: Annotated[int, typer.Option(help="user messages audited at once (local judge: 1)")] = 8,
    timeout: Annotated[float, typer.Option(help="seconds per model request")] = 120.0,
    exclude_off_script: Annotated[bool, typer.Option("--exclude-off-script", help="leave conversations whose simulated user went off script out of the headline")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Audit the simulated user of a finished run: per user message, the move it made vs the planned one, whether a
    non-intent move reveals a purpose, whether it states checklist items itself; role confusion and fallbacks.
    Rewrites metrics.json (a `simulator` section per target) and report.html."""
    from carryon.check import out_path
    from carryon.core.concurrency import run as run_async
    from carryon.data.schema import Item
    from carryon.models.names import parse_model_name
    from carryon.models.providers import get
    from carryon.pipeline import audit_run, open_run, write_outputs

    try:
        if concurrency < 1:
            raise BadInput("--concurrency: must be at least 1")
        run_dir = out_path(run_dir_arg, "RUN_DIR")
        with open_run(run_dir) as store:
            config = store.get_meta("config") or {}
            name = judge or (config.get("judge") or [None])[0]
            if not name:
                raise BadInput("--judge: the run names no judge; name one")
            spec = parse_model_name(name, role="judge", base_url=base_url or config.get("judge_base_url")
                                    or config.get("base_url"))  # fmt: skip
            items = {k: Item.model_validate(v) for k, v in store.item_bodies().items()}
            if (hook := get(spec.provider).on_dataset) is not None:  # the testing judge recognises the items
                hook(list(items.values()))
            with _progress(quiet) as display:
                outcome = run_async(audit_run(store, spec, items, concurrency=concurrency, timeout_s=timeout,
                                              tick=display.tick))  # fmt: skip
            metrics = write_outputs(store, exclude_off_script=exclude_off_script)
    except CarryOnError as error:
        fail(error)
    table = Table(title=f"simulated user audit ({name}), % with 95% CI by item")
    for col in ("target", "user", "messages", "move adherence", "off script", "leaks", "role confusion", "fallback",
                "flagged convs"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("target", "user") else "right")
    for target, m in metrics.model_dump(mode="json")["models"].items():
        sim = m["simulator"]
        cells = [_ci(sim[k]) for k in ("move_adherence", "off_script_rate", "leak_rate", "role_confusion_rate",
                                        "fallback_rate")]  # fmt: skip
        table.add_row(target, str(sim["user"]), str(sim["n_messages"]), *cells,
                      f"{sim['flagged_conversations']} of {sim['n_conversations']}")  # fmt: skip
    out_console.print(table)
    if outcome.failed_audits:
        console.print(f"[yellow]the audit of {outcome.failed_audits} user message(s) failed after retries; "
                      "re-run the same command to retry them[/]")  # fmt: skip
    out_console.print(f"report: {(run_dir / 'report.html').resolve()}", highlight=False)
    out_console.print(outcome.summary, highlight=False)
    if outcome.failed_audits:
        raise typer.Exit(1)


def _ci(summary: dict[str, Any]) -> str:
    if summary.get("mean") is None:
        return "—"
    return f"{100 * summary['mean']:.0f} [{100 * summary['ci_low']:.0f}, {100 * summary['ci_high']:.0f}]"


@app.command()
def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="run directories of different target models")],
    out: Annotated[str, typer.Option(help="where to write the comparison report")] = "carryon-compare",
    allow_mixed: Annotated[bool, typer.Option("--allow-mixed", help="compare runs with different dataset/judge versions")] = False,
    allow_partial: Annotated[bool, typer.Option("--allow-partial", help="compare runs that are not finished (marked as partial)")] = False,
) -> None:
    """One report and leaderboard across runs."""
    from carryon.check import out_path
    from carryon.compare import LEADERBOARD, compare_runs

    try:
        out_dir = out_path(out)
        rows = compare_runs(run_dirs, out_dir, allow_mixed=allow_mixed, allow_partial=allow_partial)
    except CarryOnError as error:
        fail(error)
    table = Table(title="CarryOn leaderboard (Ben-Util and harm in %; discrimination: AUROC)")
    table.add_column(LEADERBOARD[0], overflow="fold", min_width=20, no_wrap=True)
    for col in LEADERBOARD[1:]:
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(*(Text(plain(cell)) for cell in row))
    # a model's name on one line beside eleven columns
    Console(width=max(140, out_console.width), markup=False, highlight=False).print(table)
    out_console.print(f"report: {plain(str((out_dir / 'report.html').resolve()))}")


@app.command("export")
def export(
    run_dir: Annotated[Path, typer.Argument(help="a finished run directory")],
    hf: Annotated[Path, typer.Option("--hf", help="write a Hugging Face dataset folder here")],
    license: Annotated[str, typer.Option("--license", help="the card's licence id (the model outputs' terms apply too)")] = "other",
) -> None:
    """Turn a run's conversations and judgements into a Hub-ready dataset folder (configs conversations, turns, items;
    README.md card; metrics.json) that `datasets.load_dataset(DIR)` loads. No model call."""
    from carryon.hub import export_run

    try:
        card, n = export_run(run_dir, hf, licence=license)
    except CarryOnError as error:
        fail(error)
    out_console.print(f"exported {n} conversation(s): {card.parent.resolve()}", highlight=False)


@app.command("import-inspect")
def import_inspect(
    logs: Annotated[list[Path], typer.Argument(help="Inspect AI logs of carryon/carryonbench (.eval or .json)")],
    out: Annotated[Path, typer.Option("--out", help="the CarryOn run directory to write")],
) -> None:
    """Turn Inspect AI logs of `inspect eval carryon/carryonbench` into a CarryOn run directory (report.html,
    metrics.json, conversations.jsonl, run.sqlite), for `carryon report` and `carryon compare` (docs/inspect.md)."""
    from carryon.inspect_import import import_logs

    try:
        outcome = import_logs(logs, out)
    except CarryOnError as error:
        fail(error)
    if outcome.failed:
        console.print(f"[yellow]{outcome.failed} conversation(s) were not played or scored in the logs[/]")
    out_console.print(f"imported {outcome.conversations} conversation(s) from {outcome.logs} log(s)", highlight=False)
    out_console.print(f"report: {(out / 'report.html').resolve()}", highlight=False)
    out_console.print("model calls: 0 made, 0 from cache", highlight=False)


def _dataset_summary(report: Any) -> Table:
    table = Table(title=Text(plain(f"{report.path}: {len(report.items)} items")))
    table.add_column("category")
    table.add_column("items", justify="right")
    for category, count in sorted(report.by_category().items()):
        table.add_row(Text(plain(category)), str(count))
    sizes = ", ".join(f"{k} items: {v}" for k, v in sorted(report.checklist_sizes().items()))
    table.caption = Text(f"checklist sizes — {sizes}")
    return table


@dataset_app.command("validate")
def dataset_validate(
    path: Annotated[Path, typer.Argument(help="dataset jsonl or csv")],
    strict: Annotated[bool, typer.Option("--strict", help="warnings (items sharing checklist entries) fail too")] = False,
) -> None:
    """Check every line; print each problem as file:line: field: problem (exit 2), else a summary. Warnings are
    printed too, and fail the check with --strict."""
    from carryon.data.load import validate_file

    report = validate_file(path)
    for warning in report.warnings:
        console.print(f"warning: {error_line(warning)}", soft_wrap=True)
    if report.problems or (strict and report.warnings):
        for problem in report.problems:
            console.print(error_line(problem), soft_wrap=True)
        console.print(f"{len(report.problems)} problem(s), {len(report.warnings)} warning(s) in {plain(str(path))}")
        raise typer.Exit(2)
    out_console.print(_dataset_summary(report))


@dataset_app.command("stats")
def dataset_stats(path: Annotated[Path, typer.Argument(help="dataset jsonl or csv")]) -> None:
    """Counts per category and checklist sizes, as a table."""
    from carryon.data.load import validate_file

    report = validate_file(path, near_duplicates=False)
    if not report.items:
        fail(BadInput(report.problems[0] if report.problems else f"{path}: no items"))
    out_console.print(_dataset_summary(report))


@dataset_app.command("export")
def dataset_export(
    dataset: Annotated[Optional[str], typer.Argument(help="dataset jsonl/csv or hf:… (default: the built-in dataset)")] = None,
    hf: Annotated[Optional[Path], typer.Option("--hf", help="write a Hugging Face dataset folder here")] = None,
    license: Annotated[Optional[str], typer.Option("--license", help="the card's licence id (built-in: apache-2.0)")] = None,
    name: Annotated[Optional[str], typer.Option(help="the card's title")] = None,
) -> None:
    """Write DATASET as a Hub-ready folder: items/test.parquet and a README.md dataset card (configs, features,
    licence, task categories) that `datasets.load_dataset(DIR)` loads with the same rows; push it with
    `huggingface-cli upload ORG/NAME DIR --repo-type dataset`."""
    from carryon.data.hub import export_items
    from carryon.data.load import BUILTIN_DATASET, load_items

    try:
        if hf is None:
            raise BadInput("--hf DIR: where to write the dataset folder (the only export format)")
        items = load_items(dataset)
        licence = license or ("apache-2.0" if dataset is None else "unknown")
        card = export_items(items, hf, name=name or (BUILTIN_DATASET if dataset is None else Path(dataset).stem),
                            licence=licence)  # fmt: skip
    except CarryOnError as error:
        fail(error)
    out_console.print(f"exported {len(items)} item(s): {card.parent.resolve()}", highlight=False)
    if licence == "unknown":
        console.print("note: the card's licence is 'unknown'; pass --license ID (e.g. cc-by-4.0) before publishing")


@dataset_app.command("calibrate")
def dataset_calibrate(
    dataset: Annotated[Optional[Path], typer.Argument(help="dataset jsonl or csv (default: the built-in dataset)")] = None,
    target: Annotated[Optional[list[str]], typer.Option(help="a target model, provider/model; repeat for several")] = None,
    judge: Annotated[str, typer.Option(help="response-type judge, provider/model")] = "local/qwen2.5-coder-1.5b",
    no_judge: Annotated[bool, typer.Option("--no-judge", help="classify refusals with the keyword rule instead")] = False,
    base_url: Annotated[Optional[str], typer.Option(help="base URL for openai-api/ models")] = None,
    limit: Annotated[Optional[int], typer.Option(help="only the first N items")] = None,
    max_tokens: Annotated[int, typer.Option(help="tokens per probe response")] = 64,
    concurrency: Annotated[int, typer.Option(help="probes in flight (local models: 1)")] = 4,
    out: Annotated[Path, typer.Option(help="folder for the call cache and the results")] = Path("runs/calibrate"),
) -> None:
    """Refusal rate of each target on every query alone vs its intent-upfront text, per category; lists the items no
    target refuses alone. Writes OUT/calibration.json and OUT/calibration.csv; a re-run is answered from the cache."""
    from carryon import calibrate as cal
    from carryon.core.concurrency import run as run_async
    from carryon.check import check_writable
    from carryon.data.load import load_items
    from carryon.models.preflight import preflight
    from carryon.models.names import parse_model_name
    from carryon.models.providers import get
    from carryon.models.registry import ModelPool
    from carryon.pipeline import prepare_out
    from carryon.core.io import write_json
    from carryon.rundir import check_out, locked
    from carryon.store import Store

    try:
        if not target:
            raise BadInput("--target: name at least one target model")
        if limit is not None and limit < 1:
            raise BadInput("--limit: must be at least 1")
        if not 1 <= max_tokens <= 4096:
            raise BadInput("--max-tokens: must be between 1 and 4096")
        specs = [parse_model_name(t, role="target", base_url=base_url) for t in dict.fromkeys(target)]
        judge_spec = None if no_judge else parse_model_name(judge, role="judge", base_url=base_url)
        items = load_items(dataset, limit=limit)
        check_writable(out)
        check_out(out, outputs=frozenset({"calibration.json", "calibration.csv"}))
        preflight([*specs, *([judge_spec] if judge_spec else [])])
        local = any(get(s.provider).serial for s in [*specs, *([judge_spec] if judge_spec else [])])

        async def go() -> tuple[list[cal.Outcome], int, int]:
            async with ModelPool(concurrency=concurrency) as pool:
                with Store(out) as store:
                    caller = CachedCaller(store)
                    clients = [pool.client("target", s) for s in specs]
                    judge_client = pool.client("judge", judge_spec) if judge_spec else None
                    outcomes = await cal.calibrate(items, clients, caller, judge=judge_client, max_tokens=max_tokens,
                                                   concurrency=1 if local else concurrency)  # fmt: skip
                    return outcomes, caller.made, caller.from_cache

        from carryon.calls import CachedCaller

        with locked(out):
            prepare_out(out, force_new=False)
            outcomes, made, cached = run_async(go())
            summary = cal.summarize(outcomes)
            summary.update(dataset=str(dataset or "built-in"), judge="keyword rule" if no_judge else judge,
                           max_tokens=max_tokens, items_probed=len(items))  # fmt: skip
            write_json(out / "calibration.json", summary)
            cal.write_csv(out / "calibration.csv", outcomes)
    except CarryOnError as error:
        fail(error)
    for name, result in summary["targets"].items():
        table = Table(title=f"{name}: refused alone vs upfront ({summary['judge']})")
        for col in ("category", "alone", "upfront", "n"):
            table.add_column(col, justify="left" if col == "category" else "right")
        rows = [*result["categories"].items(), ("all", result["overall"])]
        for category, rates in rows:
            alone, upfront = rates["alone"], rates["upfront"]
            table.add_row(category, _pct(alone["rate"]), _pct(upfront["rate"]), str(alone["n"]))
        out_console.print(table)
    never = summary["never_refused_alone"]
    out_console.print(f"{len(never)} item(s) no target refuses alone" + (": " + ", ".join(never) if never else ""),
                      highlight=False, markup=False, soft_wrap=True)  # fmt: skip
    out_console.print(f"written: {out / 'calibration.json'}", highlight=False, markup=False)
    out_console.print(f"model calls: {made} made, {cached} from cache", highlight=False)


def _pct(rate: float | None) -> str:
    return "—" if rate is None else f"{100 * rate:.0f}%"


@dataset_app.command("build")
def dataset_build(
    raw: Annotated[Path, typer.Option("--from", help="your queries: CSV, JSONL or Parquet with a 'query' column "
                                      "(optionally benign_intent, category, id, kept as given)")],  # fmt: skip
    model: Annotated[str, typer.Option("--with", help="the model that writes the items, provider/model")],
    out: Annotated[Path, typer.Option("--out", help="where to write the dataset (jsonl)")],
    base_url: Annotated[Optional[str], typer.Option(help="base URL for an openai-api/ model")] = None,
    concurrency: Annotated[int, typer.Option(help="rows built at once")] = 4,
    attempts: Annotated[int, typer.Option(help="tries per row: a row whose item breaks a rule is asked again, "
                                                "with the problem named")] = 3,
    dataset_version: Annotated[str, typer.Option(help="dataset_version of every item")] = "1.0.0",
    columns: Annotated[Optional[str], typer.Option(help="map your column names: query=prompt,category=domain,"
                                                   "benign_intent=use,id=uid (other columns are ignored)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Turn your own queries into full items with a model; rows still invalid after retries print as RAW:line (exit 1)."""
    from carryon.build import BuildSettings, build_dataset, parse_columns
    from carryon.models.names import parse_model_name

    try:
        settings = BuildSettings(dataset_version=dataset_version, concurrency=concurrency, retries=attempts - 1)
        mapping = parse_columns(columns)
        spec = parse_model_name(model, role="with", base_url=base_url)
        with _progress(quiet) as display:
            report = build_dataset(raw, spec, out, settings, display.tick, columns=mapping)
    except CarryOnError as error:
        fail(error)
    for line in report.failure_lines():
        console.print(error_line(line), soft_wrap=True)
    if report.failed:
        console.print(f"{len(report.failed)} row(s) failed after retries")
    if report.items:
        out_console.print(f"built {len(report.items)} item(s): {plain(str(out.resolve()))}")
    else:
        out_console.print(f"no item built; {plain(str(out))} not written")
    out_console.print(f"model calls: {report.calls} made")
    if report.failed:
        raise typer.Exit(1)


@judge_app.command("validate")
def judge_validate(
    task: Annotated[str, typer.Option(help="response-type, harm or ben-util")],
    data: Annotated[Path, typer.Option(help="XSTest completions (CSV file or folder) or the Ben-Util gold jsonl")],
    judge: Annotated[str, typer.Option(help="judge model, provider/model")] = "local/qwen2.5-coder-1.5b",
    base_url: Annotated[Optional[str], typer.Option(help="base URL for an openai-api/ judge")] = None,
    limit: Annotated[Optional[int], typer.Option(help="stratified sample of N rows (seeded)")] = None,
    seed: Annotated[int, typer.Option(help="seed of the --limit sample (another seed: another sample)")] = 0,
    mode: Annotated[str, typer.Option(help="Ben-Util mode: per-item or batched")] = "per-item",
    concurrency: Annotated[int, typer.Option(help="judge calls in flight (1 for a local model)")] = 4,
    out_arg: Annotated[str, typer.Option("--out", help="folder for the call cache and the result JSON")] = "runs/judge-validate",
) -> None:
    """Measure a judge against human labels; print a table and write OUT/validation-<task>-<judge>.json."""

    from carryon.check import check_writable
    from carryon.core.concurrency import run as run_async
    from carryon.judge import validate as v
    from carryon.models.preflight import preflight
    from carryon.models.names import parse_model_name
    from carryon.models.providers import get
    from carryon.models.registry import ModelPool
    from carryon.pipeline import prepare_out
    from carryon.core.io import write_json
    from carryon.check import out_path
    from carryon.rundir import check_out, locked
    from carryon.store import Store

    try:
        out = out_path(out_arg)
        if task not in ("response-type", "harm", "ben-util"):
            raise BadInput(f"--task {task!r}: expected response-type, harm or ben-util")
        if mode not in ("per-item", "batched"):
            raise BadInput(f"--mode {mode!r}: expected per-item or batched")
        if limit is not None and limit < 1:
            raise BadInput("--limit: must be at least 1")
        if not data.exists():
            raise BadInput(f"--data {data}: not found")
        spec = parse_model_name(judge, role="judge", base_url=base_url)
        if task == "ben-util":
            rows = v.load_gold(data)
        else:
            rows = v.load_xstest(data, unsafe_only=task == "harm")
        if task == "harm":  # compliance vs refusal, in equal numbers
            rows = [r for r in rows if r.label != "3_partial_refusal"]
        rows = v.stratified_sample(rows, limit, seed, balanced=task == "harm")
        check_writable(out)
        path = out / v.result_file_name(task, judge)  # made before any call: a long judge name fits
        check_out(out, outputs=frozenset({path.name}) | {p.name for p in out.glob("validation-*.json")})
        preflight([spec])

        async def go() -> dict[str, Any]:
            async with ModelPool(concurrency=concurrency) as pool:
                with Store(out) as store:
                    conc = 1 if get(spec.provider).serial else concurrency
                    return await v.validate(task, rows, pool.client("judge", spec), store, mode=mode,  # type: ignore[arg-type]
                                            concurrency=conc)  # fmt: skip

        with locked(out):
            prepare_out(out, force_new=False)
            result = run_async(go())
            result.update(data=str(data), limit=limit, seed=seed)
            write_json(path, result)
    except CarryOnError as error:
        fail(error)
    table = Table(title=Text(plain(f"{task} judge {judge} on {result['n']} rows ({result['unscored']} unscored)")))
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.items():
        if isinstance(value, float):
            table.add_row(key, f"{value:.3f}")
        elif key in ("confusion", "accuracy_by_case", "labels", "predicted_types") or (key.endswith("_ci") and value):
            table.add_row(key, json.dumps(value))
    out_console.print(table)
    out_console.print(f"written: {plain(str(path))}")


@app.command()
def serve(
    model: Annotated[str, typer.Option(help="local/<bundled name> or local/<path>.gguf")] = "local/qwen2.5-coder-1.5b",
) -> None:
    """Serve the bundled local model over OpenAI-compatible HTTP on loopback until Ctrl-C."""
    from carryon.models.local import LocalServer, resolve_weights

    try:
        if not model.startswith("local/"):
            raise BadInput(f"--model {model!r}: serve takes a local/ model")
        gguf, alias = resolve_weights(model.removeprefix("local/"))
        with LocalServer(gguf, alias) as server:
            out_console.print(f"serving openai-api/{plain(alias)} at {server.base_url} (Ctrl-C to stop)")
            while True:
                time.sleep(3600)
    except CarryOnError as error:
        fail(error)
    except KeyboardInterrupt:
        pass


@app.callback(invoke_without_command=True)
def _root(version: Annotated[bool, typer.Option("--version", help="print the version")] = False) -> None:
    if version:
        out_console.print(__version__)
        raise typer.Exit()


def main() -> None:
    """Entry point: unexpected errors end with one line (exit 1); CARRYON_DEBUG=1 shows the traceback."""
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)
    except Exception as error:  # noqa: BLE001 - the last line of defence
        if os.environ.get("CARRYON_DEBUG"):
            raise
        line = error_line(f"{type(error).__name__}: {error} (set CARRYON_DEBUG=1 for a traceback)")
        console.print(Text("error: ", style="bold red") + Text(line), soft_wrap=True)
        sys.exit(1)
