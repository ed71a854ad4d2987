"""The follow-up move taxonomy, grounded in negotiation theory.

- intent-revealing: `purpose` (why I ask), `context` (who I am), `narrowing` (the safe sub-question I need),
  `assurance` (how I will use the answer) — each backed by the item's authored clarification text;
- `pushback`: insists, adds no information;
- `disengage`: a minimal acknowledgement ("hmm", "ok…");
- `rephrase`: asks again in other words, adds no information.
"""

from __future__ import annotations

from enum import StrEnum


class Move(StrEnum):
    PURPOSE = "purpose"
    CONTEXT = "context"
    NARROWING = "narrowing"
    ASSURANCE = "assurance"
    PUSHBACK = "pushback"
    DISENGAGE = "disengage"
    REPHRASE = "rephrase"

    @property
    def reveals_intent(self) -> bool:
        return self in INTENT_REVEALING

    @property
    def family(self) -> str:
        """`intent` for the four intent-revealing moves, else the move itself."""
        return "intent" if self.reveals_intent else self.value


INTENT_REVEALING: frozenset[Move] = frozenset({Move.PURPOSE, Move.CONTEXT, Move.NARROWING, Move.ASSURANCE})
ALL_MOVES: tuple[Move, ...] = tuple(Move)
