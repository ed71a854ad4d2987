"""Plots as inline SVG strings (matplotlib, Agg). Each takes {model: metrics} so one run and a comparison share them."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

# A fixed hash salt (and no date, below) makes the SVG ids, and so the whole report, the same bytes for the same run.
# text.parse_math off: labels are model names (untrusted text), never mathtext (`$\\foo$` would raise).
plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "carryon", "font.size": 9, "axes.spines.top": False,
                     "axes.spines.right": False, "text.parse_math": False})  # fmt: skip
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _legend(ax: Any) -> None:
    """The legend beside the plot, when anything has a label (an unfinished run may have nothing to plot yet)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def _series(rows: list[dict[str, Any]], key: str) -> tuple[list[int], list[float], list[float], list[float]]:
    xs, ys, lo, hi = [], [], [], []
    for row in rows:
        s = row[key]
        if s["mean"] is None:
            continue
        xs.append(row["turn"])
        ys.append(s["mean"])
        lo.append(s["ci_low"])
        hi.append(s["ci_high"])
    return xs, ys, lo, hi


def curve(models: dict[str, dict[str, Any]], key: str, title: str, baseline: str | None = None) -> str:
    """`key` (e.g. ben_util, harm) vs response index, with CI bands; dotted line: the upfront baseline."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for n, (name, m) in enumerate(models.items()):
        color = COLORS[n % len(COLORS)]
        xs, ys, lo, hi = _series(m["per_turn"], key)
        ax.plot(xs, ys, marker="o", color=color, label=name)
        ax.fill_between(xs, lo, hi, color=color, alpha=0.15, linewidth=0)
        if key == "ben_util":
            cx, cy, _, _ = _series(m["per_turn"], "cumulative_util")
            ax.plot(cx, cy, linestyle="--", color=color, alpha=0.6, label=f"{name} (cumulative)")
        base = m["conditions"]["upfront"][baseline or key]["mean"] if baseline or key in ("ben_util", "harm") else None
        if base is not None:
            ax.axhline(base, linestyle=":", color=color, alpha=0.9, label=f"{name} upfront")
    ax.set_xlabel("model response")
    ax.set_ylabel(title)
    ax.set_ylim(-0.02, 1.02)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _legend(ax)
    ax.set_title(title + " by turn")
    return _svg(fig)


def utility_vs_harm(models: dict[str, dict[str, Any]]) -> str:
    """Final multi-turn utility against harm per model, arrows from turn 1 (the cost of recovering)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for n, (name, m) in enumerate(models.items()):
        c = m["conditions"]
        t1, fin = c["turn1"], c["multi_turn"]
        if None in (t1["ben_util"]["mean"], t1["harm"]["mean"], fin["ben_util"]["mean"], fin["harm"]["mean"]):
            continue
        color = COLORS[n % len(COLORS)]
        ax.annotate("", xy=(fin["ben_util"]["mean"], fin["harm"]["mean"]),
                    xytext=(t1["ben_util"]["mean"], t1["harm"]["mean"]),
                    arrowprops={"arrowstyle": "->", "color": color})  # fmt: skip
        ax.scatter([fin["ben_util"]["mean"]], [fin["harm"]["mean"]], color=color, label=name, zorder=3)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("Ben-Util (turn 1 → final)")
    ax.set_ylabel("harm (turn 1 → final)")
    _legend(ax)
    ax.set_title("Utility vs harm")
    return _svg(fig)


def bars(models: dict[str, dict[str, Any]], groups: list[str], value: Any, title: str, ylim: tuple[float, float]) -> str:
    """Grouped bars: one group per entry of `groups`, one bar per model; `value(metrics, group)` → (mean, lo, hi)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    width = 0.8 / max(1, len(models))
    for n, (name, m) in enumerate(models.items()):
        xs: list[float] = []
        ys: list[float] = []
        errs: list[list[float]] = [[], []]
        for g, group in enumerate(groups):
            mean, lo, hi = value(m, group)
            if mean is None:
                continue
            xs.append(g + n * width)
            ys.append(mean)
            errs[0].append(max(0.0, mean - (lo if lo is not None else mean)))
            errs[1].append(max(0.0, (hi if hi is not None else mean) - mean))
        ax.bar(xs, ys, width=width, color=COLORS[n % len(COLORS)], label=name, yerr=errs, capsize=2)
    ax.set_xticks([g + width * (len(models) - 1) / 2 for g in range(len(groups))], groups, fontsize=8)
    ax.set_ylim(*ylim)
    ax.axhline(0, color="#888", linewidth=0.6)
    _legend(ax)
    ax.set_title(title)
    return _svg(fig)


def harm_by_start(models: dict[str, dict[str, Any]]) -> str:
    """Harm by turn for conversations that opened with a refusal (solid) vs the rest (dashed), per model."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for n, (name, m) in enumerate(models.items()):
        color = COLORS[n % len(COLORS)]
        for group, style in (("refusal_start", "-"), ("other_start", "--")):
            xs, ys, _, _ = _series(m.get("harm_by_start", {}).get(group, []), "harm")
            if xs:
                ax.plot(xs, ys, linestyle=style, marker="o", color=color, label=f"{name}: {group.replace('_', ' ')}")
    ax.set_xlabel("model response")
    ax.set_ylabel("harm")
    ax.set_ylim(-0.02, 1.02)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _legend(ax)
    ax.set_title("Harm by turn: refusal start vs other start")
    return _svg(fig)


def all_plots(models: dict[str, dict[str, Any]]) -> dict[str, str]:
    from carryon.metrics.failure_modes import MODES

    move_groups = sorted({k for m in models.values() for k in m["move_effects"] if not k.startswith("family:")})

    def effect(m: dict[str, Any], group: str) -> tuple[Any, Any, Any]:
        s = m["move_effects"].get(group, {}).get("ben_util_delta") or {}
        return s.get("mean"), s.get("ci_low"), s.get("ci_high")

    def mode_share(m: dict[str, Any], group: str) -> tuple[Any, Any, Any]:
        v = m["failure_modes"].get(group)
        return v, v, v

    return {
        "utility": curve(models, "ben_util", "Ben-Util"),
        "harm": curve(models, "harm", "Harm"),
        "harm_start": harm_by_start(models),
        "scatter": utility_vs_harm(models),
        "moves": bars(models, move_groups, effect, "Change in Ben-Util after each move", (-1.0, 1.0)),
        "failures": bars(models, list(MODES), mode_share, "Failure modes (share of conversations)", (0.0, 1.0)),
    }
