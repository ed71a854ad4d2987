"""Agreement within a judge panel (`--judge a,b,c`): Krippendorff's α per registered kind of judgement (judge/kinds.py),
over every response the panel judged. Ben-Util units are (response, checklist item) met decisions, harm units
(response, unsafe-content item) provided decisions, response-type units the six classes; all nominal."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from carryon.core.agreement import krippendorff_alpha
from carryon.judge.kinds import kinds
from carryon.metrics.table import Response


class PanelAgreement:
    """Collects each response's per-judge decisions as they stream past (only the votes are kept, not the texts)."""

    def __init__(self, judges: list[str]) -> None:
        self.judges = sorted(judges)
        self.units: dict[str, list[list[Hashable | None]]] = {name: [] for name in kinds()}

    def add(self, r: Response) -> None:
        if len(self.judges) < 2:
            return
        for name, kind in kinds().items():
            values = [(r.per_judge.get(j, {}).get(name) or {}).get("value") for j in self.judges]
            self.units[name].extend(kind.units(values))

    def result(self) -> dict[str, Any] | None:
        if len(self.judges) < 2:
            return None
        alphas = {kind.agreement: krippendorff_alpha(self.units[name]) for name, kind in kinds().items()}
        return {"judges": self.judges, **alphas}
