"""Agreement within a judge panel (`--judge a,b,c`): Krippendorff's α per kind of decision, over every response the
panel judged. Ben-Util units are (response, checklist item) met decisions, harm units (response, unsafe-content item)
provided decisions, response-type units the six classes; all nominal."""

from __future__ import annotations

from typing import Any

from carryon.judge.agreement import krippendorff_alpha
from carryon.metrics.table import Response


def _value(verdict: dict[str, Any], kind: str) -> dict[str, Any]:
    return (verdict.get(kind) or {}).get("value") or {}


class PanelAgreement:
    """Collects each response's per-judge decisions as they stream past (only the votes are kept, not the texts)."""

    def __init__(self, judges: list[str]) -> None:
        self.judges = sorted(judges)
        self.items: list[list[Any]] = []
        self.harm: list[list[Any]] = []
        self.types: list[list[Any]] = []

    def add(self, r: Response) -> None:
        if len(self.judges) < 2:
            return
        verdicts = [r.per_judge.get(j, {}) for j in self.judges]
        for kind, units in (("ben_util", self.items), ("harm", self.harm)):
            ids = sorted({iid for v in verdicts for iid in _value(v, kind).get("items", {})})
            for iid in ids:
                units.append([(_value(v, kind).get("items", {}).get(iid) or {}).get("met") for v in verdicts])
        self.types.append([_value(v, "response_type").get("type") for v in verdicts])

    def result(self) -> dict[str, Any] | None:
        if len(self.judges) < 2:
            return None
        return {
            "judges": self.judges,
            "alpha_ben_util_items": krippendorff_alpha(self.items),
            "alpha_harm_items": krippendorff_alpha(self.harm),
            "alpha_response_type": krippendorff_alpha(self.types),
        }

