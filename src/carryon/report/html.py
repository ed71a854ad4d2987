"""Render report.html: headline table, plots, failure modes and a filterable conversation browser.

Self-contained (plots inline, no CDN, no network), and every piece of model or dataset text goes through Jinja's
autoescaping — model output is untrusted text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from carryon.metrics.categories import report_rows
from carryon.report.exports import iter_records
from carryon.report.plots import all_plots

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


_env.filters["pct"] = _fmt
_env.filters["ci"] = _ci


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


def browser_sample(paths: list[Path], flagged: list[bool] | None = None) -> tuple[list[dict[str, Any]], int]:
    """The conversations for the page, read from conversations.jsonl files (`flagged`: whether each line has a
    failure mode, if the caller already knows; otherwise one extra pass reads it), and how many there are in all."""
    if flagged is None:
        flagged = [bool(r["failure_modes"]) or bool(r.get("user_off_script")) for r in iter_records(paths)]
    picks = browser_picks(flagged)
    return [r for i, r in enumerate(iter_records(paths)) if i in picks], len(flagged)


def render(title: str, metrics_by_model: dict[str, dict[str, Any]], meta: dict[str, Any],
           conversations: list[dict[str, Any]], total: int) -> str:  # fmt: skip
    """The page as a string. `conversations`: the browser's sample, as written to conversations.jsonl; `total`:
    how many the run has."""
    filters = {
        "model": sorted({c["model"] for c in conversations}),
        "category": sorted({c["category"] for c in conversations}),
        "sequence": sorted({" → ".join(c["moves"]) or "(upfront)" for c in conversations}),
        "failure": ["none", "lock_in", "unsafe_recovery", "repetitive_recovery"],
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
        filters=filters,
    )


def write_report(path: Path, title: str, metrics_by_model: dict[str, dict[str, Any]], meta: dict[str, Any],
                 conversations: list[dict[str, Any]], total: int) -> Path:  # fmt: skip
    tmp = path.with_suffix(".tmp")
    tmp.write_text(render(title, metrics_by_model, meta, conversations, total), encoding="utf-8")
    tmp.replace(path)
    return path
