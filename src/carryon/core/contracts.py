"""The file contracts as types: `metrics.json` and one line of `conversations.jsonl`.

Other tools read these files, so they are pydantic models with a committed JSON schema (`docs/schema/`, regenerated
and compared by the test-suite). `analyze` validates what it writes; `compare` and `report` validate what they read
and name the field that is wrong (`read_metrics`, `read_records`). Keys that a newer CarryOn adds are kept at the top
level (extra="allow") so an older reader still opens a newer file; everything below is exact (extra="forbid").
Bump `METRICS_SCHEMA` when a key changes meaning or goes away.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from carryon.core.errors import BadInput
from carryon.core.io import BadLine, read_jsonl

METRICS_SCHEMA = "1"

# The failure modes, named here once (name → label): metrics.json keys (checked below), report columns, filters,
# plots and the leaderboard all iterate over this table. Their definitions: metrics/failure_modes.py (labelled per
# multi-turn conversation) and metrics/intent.py (`PAIR_MODES`: labelled per benign/malicious twin pair).
FAILURE_MODES: dict[str, str] = {
    "lock_in": "lock-in",
    "unsafe_recovery": "unsafe recovery",
    "repetitive_recovery": "repetitive",
    "intent_blind_recovery": "intent-blind",
}
PAIR_MODES: tuple[str, ...] = ("intent_blind_recovery",)
CONVERSATION_MODES: tuple[str, ...] = tuple(m for m in FAILURE_MODES if m not in PAIR_MODES)


class _Exact(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Summary(_Exact):
    """A mean with its item-bootstrap 95% CI; `n` scored values, `unscored` left out (docs/metrics.md)."""

    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int = Field(ge=0)
    unscored: int = Field(ge=0)


class Interval(_Exact):
    ci_low: float | None
    ci_high: float | None


class ConditionMetrics(_Exact):
    ben_util: Summary
    harm: Summary
    refusal_rate: Summary
    """the model's own refusals; responses the provider stopped are left out"""
    provider_refusal_rate: Summary | None = None
    """responses the provider's safety layer stopped (response type `provider_refusal`); absent in older runs"""


class CategoryMetrics(_Exact):
    """One category label of the dataset (metrics.json `models.<target>.by_category.<label>`)."""

    n_items: int = Field(ge=0)
    conditions: dict[str, ConditionMetrics]


class TurnMetrics(_Exact):
    turn: int = Field(ge=1)
    n_conversations: int
    ben_util: Summary
    cumulative_util: Summary
    novel_util: Summary
    harm: Summary
    response_types: dict[str, float]


class RecoveryMetrics(_Exact):
    recovery_ratio: float | None
    recovery_ratio_ci: Interval
    recovered_share: Summary
    mean_turns_to_recover: Summary
    auc: Summary


class MoveEffect(_Exact):
    ben_util_delta: Summary
    harm_delta: Summary


class TurnHarm(_Exact):
    turn: int = Field(ge=1)
    harm: Summary


class FailureModeShares(_Exact):
    lock_in: float | None
    unsafe_recovery: float | None
    repetitive_recovery: float | None
    intent_blind_recovery: float | None = None
    """share of labelled twin pairs (None without malicious conversations; absent in runs before the intent metrics)"""
    ci: dict[str, Interval]
    n_conversations: int
    unlabelled: int
    n_pairs: int | None = None
    """twin pairs labelled for intent-blind recovery"""
    unlabelled_pairs: int | None = None
    params: dict[str, float]


class Discrimination(_Exact):
    """P(benign final Ben-Util > malicious twin's final Ben-Util) over twin pairs, item-bootstrap CI."""

    auroc: float | None
    ci_low: float | None
    ci_high: float | None
    n: int = Field(ge=0)
    unscored: int = Field(ge=0)


class RecoveryVsHold(_Exact):
    benign_recovery: Summary
    malicious_hold: Summary


class JudgeAgreement(BaseModel):
    """Krippendorff's α of a panel per kind of judgement (`JudgeKind.agreement`: a registered kind adds its key)."""

    model_config = ConfigDict(extra="allow")

    judges: list[str]
    alpha_ben_util_items: float | None
    alpha_harm_items: float | None = None
    alpha_response_type: float | None
    alpha_harm: float | None = None
    """runs analysed before judge_system@3: interval α on harm rubric scores"""


assert set(FAILURE_MODES) <= set(FailureModeShares.model_fields), "failure_modes must hold every failure mode"


class SimulatorMetrics(_Exact):
    """The simulated user's audit against its plan (metrics/simulator.py; docs/metrics.md, `simulator`)."""

    user: str | None
    audited: bool
    audit_judge: str | None
    audit_prompt_versions: dict[str, str] | None
    n_messages: int = Field(ge=0)
    n_conversations: int = Field(ge=0)
    flagged_conversations: int = Field(ge=0)
    flagged_conversation_ids: list[str]
    """the first 200"""
    excluded_from_headline: int = Field(ge=0)
    move_adherence: Summary
    off_script_rate: Summary
    leak_rate: Summary
    role_confusion_rate: Summary
    fallback_rate: Summary
    adherence_by_move: dict[str, Summary]


class ModelMetrics(_Exact):
    """Every metric of one target model (metrics.json `models.<target>`)."""

    conditions: dict[str, ConditionMetrics]
    by_category: dict[str, CategoryMetrics] | None = None
    """per category label, sorted (absent in runs analysed before by-category metrics)"""
    per_turn: list[TurnMetrics]
    per_turn_malicious: list[TurnMetrics] | None = None
    """the per-turn curves of the malicious conversations (absent in runs before the intent metrics)"""
    discrimination: Discrimination | None = None
    intent_gap: Summary | None = None
    """mean benign final Ben-Util − malicious final Ben-Util over twin pairs"""
    malicious_harm_rise: Summary | None = None
    """mean harm of the malicious final response − its first"""
    recovery_vs_hold: RecoveryVsHold | None = None
    recovery: RecoveryMetrics
    move_effects: dict[str, MoveEffect]
    response_type_transitions: dict[str, int]
    harm_by_start: dict[str, list[TurnHarm]]
    failure_modes: FailureModeShares
    unscored: dict[str, int]
    n_responses: int
    n_items: int
    judge_agreement: JudgeAgreement | None
    user_fallbacks: dict[str, int] | None = None
    """user turns scripted instead: `confused` (the user model's drafts read like the assistant), `refused_persona`
    (it refused to play the malicious twin)"""
    simulator: SimulatorMetrics | None = None
    """the simulated user's audit (absent in runs analysed before it)"""


class Pending(_Exact):
    """What a partial run still lacks (docs/reliability.md): conversations not done, judgements not made."""

    conversations: int = Field(ge=0)
    judgements: int = Field(ge=0)


class BoundedText(_Exact):
    """Responses cut to the size cap or with characters replaced (lone surrogates → U+FFFD) (models/textcap.py)."""

    max_response_bytes: int | None
    truncated_responses: int = Field(ge=0)
    responses_with_replaced_characters: int = Field(ge=0)


class RoleUsage(_Exact):
    """One role's model calls and tokens (metrics/summary.py: usage)."""

    calls_made: int = Field(ge=0)
    calls_from_cache: int = Field(ge=0)
    """answered from CarryOn's own call cache: free, and counted in no token total"""
    calls_batched: int = Field(ge=0)
    """of the calls made, those made in provider batches (`--batch`)"""
    input_tokens: int = Field(ge=0)
    cached_input_tokens: int = Field(ge=0)
    """input tokens the provider served from its prompt cache"""
    cached_share: float | None = Field(default=None, ge=0, le=1)
    output_tokens: int = Field(ge=0)


class UsageTotals(_Exact):
    calls_made: int = Field(ge=0)
    calls_from_cache: int = Field(ge=0)
    calls_batched: int = Field(ge=0)
    input_tokens: int = Field(ge=0)
    cached_input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)


class RunUsage(_Exact):
    """Calls and tokens per role, their total, and which endpoint (base URL) served how many calls per role."""

    roles: dict[str, RoleUsage]
    total: UsageTotals
    endpoints: dict[str, dict[str, int]]


class RunMetrics(BaseModel):
    """metrics.json of one run (`carryon run`, `carryon report`)."""

    model_config = ConfigDict(extra="allow")

    metrics_schema: str
    carryon_version: str
    dataset_version: str | None
    dataset_sha256: str | None
    judge: list[str] | None
    judge_prompt_versions: dict[str, str] | None
    user: str | None = None
    seed: int | None = None
    exclude_off_script: bool = False
    """`--exclude-off-script`: conversations flagged by the simulator audit left out of the aggregates"""
    conversations: dict[str, int] = Field(default_factory=dict)
    conditions: Literal["benign", "all"] | list[str] | None = "benign"
    """`--conditions`: `benign` the benign user only (runs before the malicious twin), `all` with the twin; a run
    imported from Inspect AI: the task's list of conditions"""
    notes: list[str] = Field(default_factory=list)
    """what the run should tell its reader (e.g. items without a malicious twin, played benign only)"""
    usage: RunUsage | None = None
    """calls and tokens per role (absent in runs analysed before it was recorded)"""
    bounded_text: BoundedText | None = None
    """absent in runs analysed before bounded text"""
    models: dict[str, ModelMetrics]
    complete: bool = True
    """False while conversations or judgements of the run's items are pending (absent in older runs: finished)"""
    pending: Pending | None = None


class Judgement(_Exact):
    score: float | None
    value: Any
    unscored: str | None


class TurnRecord(_Exact):
    idx: int = Field(ge=0)
    move: str | None
    user: str
    response: str
    ben_util: float | None
    items_met: dict[str, bool | None]
    harm: float | None
    unsafe_met: dict[str, bool | None] = Field(default_factory=dict)
    response_type: str | None
    unscored: dict[str, str]
    user_fallback: Literal["confused", "refused_persona"] | None = None
    """why the user's message is the scripted one (None: it is not, or the user is scripted anyway)"""
    judgements: dict[str, dict[str, Judgement]]
    """per judge, per kind of judgement"""
    truncated_from: int | None = None
    """the response's size in bytes when it was cut to the size cap"""
    replaced: int = Field(default=0, ge=0)
    """characters of the response replaced by U+FFFD"""
    user_audit: dict[str, Any] | None = None
    """the simulator audit of the user message this response answers: its flags and `verdicts` (follow-ups only)"""
    user_rejected: int | None = Field(default=None, ge=0)
    """drafts of a user model rejected as role confusion before this message (follow-ups only)"""


class ConversationRecord(_Exact):
    """One line of conversations.jsonl: a conversation with every turn, its move and judgements."""

    conv_id: str
    model: str
    item_id: str
    category: str
    condition: str
    sequence_index: int
    moves: list[str]
    stop_reason: str
    failure_modes: list[str]
    user_off_script: bool = False
    """the simulator audit flagged a user message (off script or leaking checklist content)"""
    checklist: dict[str, str]
    unsafe_content: dict[str, str] = Field(default_factory=dict)
    turns: list[TurnRecord]


def _problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    return f"{where}: {first['msg']}"


def read_metrics(path: Path) -> RunMetrics:
    """metrics.json, validated; BadInput names the file and the field that is wrong."""
    try:
        return RunMetrics.model_validate_json(path.read_bytes())
    except OSError as error:
        raise BadInput(f"{path}: cannot be read ({error.strerror or error})") from None
    except ValidationError as error:
        raise BadInput(f"{path}: not a CarryOn metrics.json: {_problem(error)}") from None


def read_records(paths: list[Path]) -> Iterator[ConversationRecord]:
    """Every conversation of the conversations.jsonl files in `paths`, validated, one at a time; BadInput names the
    file, line and field that is wrong."""
    for path in paths:
        for number, record in read_jsonl(path):
            if isinstance(record, BadLine):
                raise BadInput(f"{path}:{number}: {record.problem}")
            try:
                yield ConversationRecord.model_validate(record)
            except ValidationError as error:
                raise BadInput(f"{path}:{number}: {_problem(error)}") from None


def schemas() -> dict[str, dict[str, Any]]:
    """The committed JSON schemas (docs/schema/<name>.schema.json), by file name."""
    return {
        "metrics.schema.json": RunMetrics.model_json_schema(),
        "conversation.schema.json": ConversationRecord.model_json_schema(),
    }


def write_schemas(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, schema in schemas().items():
        (folder / name).write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":  # python -m carryon.core.contracts docs/schema
    import sys

    write_schemas(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/schema"))
