"""The simulator section of metrics.json: did the simulated user do what the plan asked? Per user message (every
follow-up of a multi-turn conversation), from the audit verdicts (judge/audit.py) and the user's own guard:

- `move_adherence`: the judged move is in the planned move's family (intent / pushback / disengage / rephrase);
- `off_script_rate`: the message is off script — its move is not the planned family, or a non-intent move (pushback,
  disengage, rephrase) reveals a purpose or context;
- `leak_rate`: the message itself states at least one checklist item (the Ben-Util question asked of its text);
- `role_confusion_rate`: at least one draft of the user model was rejected as written in the assistant's voice or
  copying it (or every draft was, and the scripted fallback was used);
- `fallback_rate`: the message is the scripted fallback.

Each is a mean over messages with a 95% CI bootstrapped over items (`stats.summarize`). A conversation is
**flagged** when any of its messages is off script or leaks: its numbers are not the model's alone, and
`--exclude-off-script` leaves such conversations out of the headline.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from carryon.core.stats import summarize
from carryon.metrics.table import Response
from carryon.core.moves import Move


def message_flags(r: Response) -> dict[str, bool | None]:
    """The audit flags of the user message that response `r` answers (None where undecided or not audited)."""
    move = (r.audit.get("user_move") or {}).get("value") or {}
    reveals = ((r.audit.get("user_reveals") or {}).get("value") or {}).get("reveals")
    leak_items = ((r.audit.get("user_leak") or {}).get("value") or {}).get("items") or {}
    adheres = move.get("adheres")
    intent = Move(r.move).reveals_intent if r.move else False
    if adheres is False or (not intent and reveals is True):
        off_script: bool | None = True
    elif adheres is True and (intent or reveals is False):
        off_script = False
    else:
        off_script = None
    mets = [(v or {}).get("met") for v in leak_items.values()]
    leak = True if any(m is True for m in mets) else (False if mets and all(m is not None for m in mets) else None)
    return {"adheres": adheres, "reveals": reveals, "off_script": off_script, "leak": leak,
            "role_confused": r.user_rejected > 0 or r.user_fallback == 1, "fallback": r.user_fallback > 0}  # fmt: skip


def user_messages(conv: list[Response]) -> list[Response]:
    """The responses that follow a simulated user message (each carries that message's move and audit)."""
    return [r for r in conv[1:] if r.move]


def flagged(conv: list[Response]) -> bool:
    """Whether any user message of the conversation went off script or leaked checklist content."""
    return any(f["off_script"] or f["leak"] for f in map(message_flags, user_messages(conv)))


class SimulatorAudit:
    """Collects the per-message flags of every conversation as the analysis streams past."""

    RATES = (("move_adherence", "adheres"), ("off_script_rate", "off_script"), ("leak_rate", "leak"),
             ("role_confusion_rate", "role_confused"), ("fallback_rate", "fallback"))  # fmt: skip

    def __init__(self, user: str | None, audit: dict[str, Any] | None) -> None:
        self.user, self.audit = user, audit or {}
        self.values: dict[str, list[tuple[str, float | None]]] = defaultdict(list)
        self.by_move: dict[str, list[tuple[str, float | None]]] = defaultdict(list)
        self.conversations = 0
        self.flagged: list[str] = []
        self.excluded = 0

    def add(self, conv: list[Response]) -> bool:
        """Count one conversation; return whether it is flagged (off script or leaking)."""
        messages = user_messages(conv)
        if not messages:
            return False
        self.conversations += 1
        for r in messages:
            flags = message_flags(r)
            for _, key in self.RATES:
                value = flags[key]
                self.values[key].append((r.item_id, None if value is None else float(value)))
            adheres = flags["adheres"]
            self.by_move[r.move or ""].append((r.item_id, None if adheres is None else float(adheres)))
        is_flagged = flagged(conv)
        if is_flagged:
            self.flagged.append(conv[0].conv_id)
        return is_flagged

    def result(self) -> dict[str, Any]:
        n = len(self.values["fallback"])
        out: dict[str, Any] = {
            "user": self.user,
            "audited": bool(self.audit),
            "audit_judge": self.audit.get("judge"),
            "audit_prompt_versions": self.audit.get("prompt_versions"),
            "n_messages": n,
            "n_conversations": self.conversations,
            "flagged_conversations": len(self.flagged),
            "flagged_conversation_ids": self.flagged[:200],
            "excluded_from_headline": self.excluded,
        }
        for name, key in self.RATES:
            out[name] = summarize(self.values[key])
        out["adherence_by_move"] = {m: summarize(v) for m, v in sorted(self.by_move.items())}
        return out
