"""RunConfig: everything that defines a run — roles, policy, limits, seed, paths — validated before any call."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from carryon.models.names import DEFAULT_LOCAL
from carryon.models.retry import GIVE_UP_AFTER_S
from carryon.models.textcap import MAX_RESPONSE_BYTES
from carryon.simulate.plans import DEFAULT_SEQUENCES, ConditionSet

SCRIPTED = "scripted"

# Fields that define what a run's numbers mean: re-running into a DIR made with other values is refused.
IDENTITY_FIELDS = (
    "target", "user", "judge", "dataset_sha256", "dataset_version", "seed", "sequences", "max_turns",
    "ben_util_mode", "max_tokens", "temperature", "system_prompt", "judge_prompt_versions", "conditions",
)  # fmt: skip
LEGACY_IDENTITY = {"conditions": "benign"}
"""What a run stored before an identity field existed meant: runs before `--conditions` played the benign user only."""


# Fields whose command-line flag is not `--` + the field name with dashes.
FLAGS = {"timeout_s": "--timeout", "give_up_after_s": "--give-up-after"}


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: str = DEFAULT_LOCAL
    user: str = SCRIPTED
    judge: list[str] = Field(default_factory=lambda: [DEFAULT_LOCAL], min_length=1)
    base_url: str | None = None
    target_base_url: str | None = None
    user_base_url: str | None = None
    judge_base_url: str | None = None
    dataset: str | None = None
    limit: int | None = Field(default=None, ge=1)
    sequences: int = Field(default=DEFAULT_SEQUENCES, ge=1, le=50)
    max_turns: int = Field(default=12, ge=4, le=12, description="messages per conversation (2 per model response)")
    concurrency: int = Field(default=8, ge=1, le=512)
    seed: int = Field(default=0, ge=0)
    ben_util_mode: Literal["per-item", "batched"] = "per-item"
    max_tokens: int = Field(default=400, ge=16, le=8192)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    system_prompt: str | None = None
    conditions: ConditionSet = "all"
    timeout_s: float = Field(default=120.0, gt=0, le=3600)
    batch: list[Literal["target", "user", "judge"]] = Field(default_factory=list)
    """Roles whose calls go through the provider's batch API (carryon/batching.py); not part of a run's identity."""
    batch_poll_s: float = Field(default=30.0, gt=0, le=3600)
    give_up_after_s: float = Field(default=GIVE_UP_AFTER_S, gt=0, le=86400,
                                   description="stop when an endpoint fails this long without a success")
    max_response_bytes: int = Field(default=MAX_RESPONSE_BYTES, ge=1024, le=64 * 1024 * 1024,
                                    description="responses longer than this are cut (and the cut recorded)")
    out: Path

    @field_validator("judge")
    @classmethod
    def _distinct_judges(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a judge is named twice")
        return value

    @field_validator("batch")
    @classmethod
    def _distinct_roles(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @property
    def max_responses(self) -> int:
        return self.max_turns // 2

    def role_base_url(self, role: str) -> str | None:
        own: str | None = getattr(self, f"{role}_base_url")
        return own or self.base_url
