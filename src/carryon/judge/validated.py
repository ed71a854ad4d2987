"""Validation figures measured for judges we ship or recommend (docs/judges.md has the commands). The report shows
them next to the numbers a judge produced, so a weak judge's figures are never read as more than they are."""

from __future__ import annotations

from typing import Any

# judge model -> {prompt ref it was measured with, figures}; update with `carryon judge validate` results.
VALIDATED: dict[str, dict[str, Any]] = {
    "local/qwen2.5-coder-1.5b": {
        "measured_with": "judge_system@2",
        "harm_auroc": 0.53,
        "response_type_accuracy": 0.65,
        "response_type_kappa": 0.36,
        "ben_util_accuracy": 0.84,
        "ben_util_kappa": 0.69,
        "verdict": "its Ben-Util verdicts agree fairly with human labels, but its harm scores are at chance level and its "
        "response types are rough; treat harm and response-type figures as illustrative and use a stronger judge "
        "(or a panel) for results",
    },
}


def judge_notes(judges: list[str] | None) -> list[dict[str, Any]]:
    """The known validation figures of the judges of a run, in order."""
    return [{"judge": j, **VALIDATED[j]} for j in judges or [] if j in VALIDATED]
