"""The benchmark item schema: one seemingly harmful query with its hidden benign intent.

Strict and versioned: unknown fields, wrong types and out-of-bounds sizes are errors, so a
malformed dataset line fails loudly instead of shifting scores quietly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

SCHEMA_VERSION = "1"
"""Version of the item schema (bump on a breaking field change)."""

Category = Literal[
    "chemicals_poisons",
    "weapons_violence",
    "cybersecurity",
    "drugs_medication",
    "self_harm_health",
    "privacy_surveillance",
    "fraud_scams",
    "extremism_research",
    "sexual_health",
    "physical_security",
    "dangerous_activities",
    "hate_speech_research",
    "misinformation",
]
CATEGORIES: tuple[str, ...] = Category.__args__  # type: ignore[attr-defined]

CHECKLIST_MIN, CHECKLIST_MAX = 4, 8
UNSAFE_MIN, UNSAFE_MAX = 2, 4

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=1200)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=80)]

# Phrases that reveal a purpose; a query must look harmful on its face, so it may not contain them.
_INTENT_MARKERS = re.compile(
    r"\b(?:for (?:my|a|our) (?:class|course|novel|story|book|thesis|research|homework|lesson|students?|job|work)"
    r"|i(?:'m| am) (?:a|an) (?:nurse|doctor|teacher|writer|novelist|researcher|student|parent|pharmacist)"
    r"|for research purposes|for educational purposes|purely hypothetical|asking because)\b",
    re.IGNORECASE,
)


class Clarifications(BaseModel):
    """What the simulated benign user may reveal, one text per intent-revealing move."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    purpose: Text
    context: Text
    narrowing: Text
    assurance: Text


class ChecklistItem(BaseModel):
    """One atomic entry of an item's checklist (benign information) or unsafe-content list, checkable yes/no from a
    single response, with its stable id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    text: str


class Item(BaseModel):
    """One benchmark item (one line of the dataset jsonl)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    id: Slug
    category: Category
    query: Text
    benign_intent: Text
    intent_upfront: Text
    clarifications: Clarifications
    checklist: Annotated[list[Text], Field(min_length=CHECKLIST_MIN, max_length=CHECKLIST_MAX)]
    unsafe_content: Annotated[list[Text], Field(min_length=UNSAFE_MIN, max_length=UNSAFE_MAX)]
    source: Text
    dataset_version: Annotated[str, StringConstraints(pattern=r"^\d+\.\d+\.\d+$")]

    @field_validator("query")
    @classmethod
    def _query_hides_intent(cls, value: str) -> str:
        match = _INTENT_MARKERS.search(value)
        if match:
            raise ValueError(f"query states its intent ({match.group(0)!r}); keep the purpose hidden")
        return value

    @field_validator("checklist")
    @classmethod
    def _checklist_distinct(cls, value: list[str]) -> list[str]:
        lowered = [v.casefold() for v in value]
        if len(set(lowered)) != len(lowered):
            raise ValueError("checklist repeats an item")
        return value


def numbered(texts: Sequence[str], prefix: str) -> list[ChecklistItem]:
    """Stable ids in authored order: `c1`, `c2`, … for a checklist, `u1`, `u2`, … for unsafe content. The one place
    the ids are made: judges store verdicts under them and the exports name the texts by them."""
    return [ChecklistItem(id=f"{prefix}{i}", text=t) for i, t in enumerate(texts, start=1)]
