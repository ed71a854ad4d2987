"""Render report.html: headline table, plots, failure modes and a filterable conversation browser.

Self-contained (plots inline, no CDN, no network), and every piece of model or dataset text goes through Jinja's
autoescaping — model output is untrusted text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from carryon.core.contracts import FAILURE_MODES, PAIR_MODES, ConversationRecord, read_records
from carryon.core.io import write_atomic
from carryon.metrics.categories import report_rows
from carryon.report.plots import all_plots
from carryon.simulate.plans import CONDITIONS, TWIN_CONDITION

_env = Environment(
    loader=PackageLoader("carryon.report", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _fmt(value: Any, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}"


def _ci(summary: dict[str, Any] | None) -> str:
    if not summary or summary.get("mean") is None:
        return "–"
    return f"{_fmt(summary['mean'])} [{_fmt(summary['ci_low'])}, {_fmt(summary['ci_high'])}]"


def _auc(summary: dict[str, Any] | None) -> str:
    """Discrimination (an AUROC in [0, 1]) with its CI, two decimals."""
    if not summary or summary.get("auroc") is None:
        return "–"
    return f"{summary['auroc']:.2f} [{summary['ci_low']:.2f}, {summary['ci_high']:.2f}]"


_env.filters["pct"] = _fmt
_env.filters["ci"] = _ci
_env.filters["auc"] = _auc


BROWSER_LIMIT = 600


def browser_picks(flagged: list[bool], limit: int = BROWSER_LIMIT) -> set[int]:
    """Which conversations (by position) the page shows, at most `limit`: every one with a failure mode first (up to
    the limit), then an even spread of the rest. A page holding tens of thousands of conversations helps no reader;
    all of them are in conversations.jsonl and turns.parquet."""
    if len(flagged) <= limit:
        return set(range(len(flagged)))
    picked = [i for i, f in enumerate(flagged) if f][:limit]
    rest = [i for i, f in enumerate(flagged) if not f]
    room = limit - len(picked)
    step = max(1, len(rest) // room) if room else len(rest) + 1
    return set(picked) | set(rest[::step][:room])


TwinKey = tuple[str, str, int, str]


def _twin_key(record: dict[str, Any] | ConversationRecord, condition: str | None = None) -> TwinKey:
    if isinstance(record, ConversationRecord):
        return record.model, record.item_id, record.sequence_index, condition or record.condition
    return record["model"], record["item_id"], record["sequence_index"], condition or record["condition"]


def browser_sample(paths: list[Path], flagged: list[bool] | None = None) -> tuple[list[dict[str, Any]], int]:
    """The conversations for the page, read from conversations.jsonl files (`flagged`: whether each line has a
    failure mode, if the caller already knows; otherwise one extra pass reads it), and how many there are in all.
    The twin (benign ↔ malicious, same model, item and sequence) of every conversation picked is shown too, so the
    browser can put them side by side."""
    if flagged is None:
        flagged = [bool(r.failure_modes) or r.user_off_script for r in read_records(paths)]
    picks = browser_picks(flagged)
    where: dict[TwinKey, int] = {}
    picked: dict[int, dict[str, Any]] = {}
    for i, r in enumerate(read_records(paths)):
        where[_twin_key(r)] = i
        if i in picks:
            picked[i] = r.model_dump(mode="json")
    twins = {where.get(_twin_key(r, TWIN_CONDITION.get(r["condition"], ""))) for r in picked.values()}
    extra = {i for i in twins if i is not None and i not in picked}
    if extra:
        picked.update((i, r.model_dump(mode="json")) for i, r in enumerate(read_records(paths)) if i in extra)
    return [picked[i] for i in sorted(picked)], len(flagged)


def twin_ids(conversations: list[dict[str, Any]]) -> dict[str, str]:
    """`model|conv_id` → the same of its twin on the page (benign ↔ malicious, same item and sequence)."""
    on_page = {_twin_key(c): f"{c['model']}|{c['conv_id']}" for c in conversations}
    out = {}
    for c in conversations:
        twin = on_page.get(_twin_key(c, TWIN_CONDITION.get(c["condition"], "")))
        if twin:
            out[f"{c['model']}|{c['conv_id']}"] = twin
    return out


def render(title: str, metrics_by_model: dict[str, dict[str, Any]], meta: dict[str, Any],
           conversations: list[dict[str, Any]], total: int) -> str:  # fmt: skip
    """The page as a string. `conversations`: the browser's sample, as written to conversations.jsonl; `total`:
    how many the run has."""
    filters = {
        "model": sorted({c["model"] for c in conversations}),
        "category": sorted({c["category"] for c in conversations}),
        "condition": [k for k in CONDITIONS if any(c["condition"] == k for c in conversations)],
        "sequence": sorted({" → ".join(c["moves"]) or "(upfront)" for c in conversations}),
        "failure": ["none", *FAILURE_MODES],
        "user": ["on script", "off script"],
    }
    from carryon.judge.validated import judge_notes

    return _env.get_template("report.html.j2").render(
        title=title,
        judge_notes=judge_notes(meta.get("judge")),
        meta=meta,
        meta_json=json.dumps(meta, indent=2, sort_keys=True),
        models=metrics_by_model,
        category_rows={name: report_rows(m.get("by_category") or {}) for name, m in metrics_by_model.items()},
        plots=all_plots(metrics_by_model),
        conversations=conversations,
        conversations_total=total,
        twins=twin_ids(conversations),
        malicious_conditions=("malicious", "malicious_upfront"),
        filters=filters,
        failure_modes=FAILURE_MODES,
        pair_modes=PAIR_MODES,
    )


def write_report(path: Path, title: str, metrics_by_model: dict[str, dict[str, Any]], meta: dict[str, Any],
                 conversations: list[dict[str, Any]], total: int) -> Path:  # fmt: skip
    write_atomic(path, render(title, metrics_by_model, meta, conversations, total))
    return path
