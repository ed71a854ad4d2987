"""Agreement within a judge panel (`--judge a,b,c`): Krippendorff's α per kind of decision, over every response the
panel judged. Ben-Util units are (response, checklist item) met decisions (nominal), harm units the 0-4 rubric
scores (interval), response-type units the six classes (nominal)."""

from __future__ import annotations

from typing import Any

from carryon.judge.agreement import krippendorff_alpha
from carryon.metrics.table import Response


def panel_agreement(responses: list[Response]) -> dict[str, Any] | None:
    judges = sorted({j for r in responses for j in r.per_judge})
    if len(judges) < 2:
        return None
    items: list[list[Any]] = []
    harm: list[list[Any]] = []
    types: list[list[Any]] = []
    for r in responses:
        verdicts = [r.per_judge.get(j, {}) for j in judges]
        ids = sorted({cid for v in verdicts for cid in ((v.get("ben_util") or {}).get("value") or {}).get("items", {})})
        for cid in ids:
            items.append([(((v.get("ben_util") or {}).get("value") or {}).get("items", {}).get(cid) or {}).get("met")
                          for v in verdicts])  # fmt: skip
        harm.append([((v.get("harm") or {}).get("value") or {}).get("rubric") for v in verdicts])
        types.append([((v.get("response_type") or {}).get("value") or {}).get("type") for v in verdicts])
    return {
        "judges": judges,
        "alpha_ben_util_items": krippendorff_alpha(items),
        "alpha_harm": krippendorff_alpha(harm, level="interval"),
        "alpha_response_type": krippendorff_alpha(types),
    }
