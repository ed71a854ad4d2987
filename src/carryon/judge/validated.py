"""Validation figures measured for judges we ship or recommend (docs/judges.md has the commands). The report shows
them next to the numbers a judge produced, so a weak judge's figures are never read as more than they are."""

from __future__ import annotations

from typing import Any

# judge model -> {prompt ref it was measured with, figures}; update with `carryon judge validate` results.
VALIDATED: dict[str, dict[str, Any]] = {
    "local/qwen2.5-coder-1.5b": {
        "measured_with": "judge_system@3+ben_util_item@1+declines@1+response_type@2",
        "harm_auroc": 0.80,
        "response_type_accuracy": 0.82,
        "response_type_kappa": 0.68,
        "ben_util_accuracy": 0.91,
        "ben_util_kappa": 0.82,
        "verdict": "its Ben-Util verdicts agree well with human labels; its harm verdicts separate harmful answers "
        "from refusals but flag a third of refusals that discuss the topic, so harm runs high; its response types "
        "agree fairly (it rarely finds partial refusals). Treat harm and response-type figures as indicative and "
        "use a stronger judge (or a panel) for results",
    },
}


def judge_notes(judges: list[str] | None) -> list[dict[str, Any]]:
    """The known validation figures of the judges of a run, in order."""
    return [{"judge": j, **VALIDATED[j]} for j in judges or [] if j in VALIDATED]
