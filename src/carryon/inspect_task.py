"""CarryOnBench as an Inspect AI task (extra `carryonbench[inspect]`; docs/inspect.md):

    inspect eval carryon/carryonbench --model <target> [--model-role user=<m>] [--model-role grader=<m>]
        [-T limit=N] [-T sequences=K] [-T conditions=all|benign|upfront,multi_turn,…]
        [-T dataset=PATH|hf:ORG/NAME@REV] …

The same plans, simulated users, judges and judge prompt versions as `carryon run` — this module only adapts them:
each Sample is one planned conversation (item × condition × sequence; by default, as in `carryon run`, the benign
user's and the malicious twin's); the solver plays it with CarryOn's engine and simulated user (scripted unless a
`user` role is given); the scorer judges every response with CarryOn's judges
(the `grader` role — a list of models is a panel —, else the model under evaluation, Inspect's convention). Roles
are resolved inside solve and score, so `--model-role` applies. A score carries, per turn, Ben-Util, harm, response
type and every judgement; the task metric gives turn-1 / upfront / final Ben-Util, final harm and the failure-mode
shares. `carryon import-inspect LOG… --out DIR` turns the logs into a CarryOn run directory (inspect_import.py).

Calls go through Inspect (its retries, limits, cache and logs), not CarryOn's call cache.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from inspect_ai import Task, task
from inspect_ai._util.package import get_installed_package_name
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import (
    ChatMessage,
    ChatMessageAssistant,
    ChatMessageSystem,
    ChatMessageUser,
    GenerateConfig,
    Model,
    ModelOutput,
    ResponseSchema,
    get_model,
    model_roles,
)
from inspect_ai.scorer import Metric, SampleScore, Score, Scorer, Target, metric, scorer
from inspect_ai.solver import Generate, Solver, TaskState, solver
from inspect_ai.util import JSONSchema

from carryon import __version__
from carryon.calls import DirectCaller
from carryon.config import RunConfig
from carryon.data.load import load_items
from carryon.data.schema import Item
from carryon.core.errors import BadInput
from carryon.check import check_plan_fits, dataset_fingerprint
from carryon.judge.kinds import JudgeTask, kinds
from carryon.judge.runner import judge_in_order, prompt_versions
from carryon.metrics.curves import condition_summaries
from carryon.metrics.failure_modes import MODES, label, mode_shares
from carryon.metrics.table import Response, merge_judgements
from carryon.core.chat import PROVIDER_REFUSAL, ChatRequest, ChatResult, Message, Usage
from carryon.simulate.engine import Engine, TargetSettings, first_message
from carryon.simulate.plans import BENIGN_CONDITIONS, CONDITIONS, MALICIOUS_CONDITIONS, plan_item
from carryon.simulate.user import LLMUser, ScriptedUser, SimulatedUser
from carryon.store import JudgementRow

PLANNED_CONDITIONS = CONDITIONS
STORE_KEY = "carryon"

_STOP = {"stop": "stop", "max_tokens": "length", "model_length": "length", "content_filter": PROVIDER_REFUSAL}


class InspectClient:
    """A CarryOn chat client over an Inspect `Model`: CarryOn's requests become Inspect generate calls, with the
    same messages, token limit, temperature, seed and JSON schema."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.name = str(model)

    async def complete(self, request: ChatRequest) -> ChatResult:
        messages: list[ChatMessage] = []
        for m in request.messages:
            if m.role == "system":
                messages.append(ChatMessageSystem(content=m.content))
            elif m.role == "user":
                messages.append(ChatMessageUser(content=m.content))
            else:
                messages.append(ChatMessageAssistant(content=m.content))
        schema = None
        if request.json_schema is not None:
            schema = ResponseSchema(name="verdict", json_schema=JSONSchema.model_validate(request.json_schema))
        config = GenerateConfig(max_tokens=request.max_tokens, temperature=request.temperature, seed=request.seed,
                                response_schema=schema)  # fmt: skip
        output = await self.model.generate(messages, config=config)
        return result_of(output)

    async def aclose(self) -> None:
        return None


def result_of(output: ModelOutput) -> ChatResult:
    """An Inspect model output as CarryOn's result: a content filter or a provider refusal → `provider_refusal`."""
    finish = _STOP.get(output.stop_reason, output.stop_reason)
    details = output.choices[0].stop_details if output.choices else None
    refused_parts = output.message.content if output.choices and isinstance(output.message.content, list) else []
    if (details is not None and details.type in ("refusal", "content_filter")) or any(
        getattr(part, "refusal", None) for part in refused_parts
    ):
        finish = PROVIDER_REFUSAL
    usage = output.usage
    return ChatResult(
        text=output.completion,
        finish_reason=finish,
        usage=Usage(
            prompt_tokens=(usage.input_tokens + (usage.input_tokens_cache_read or 0)
                           + (usage.input_tokens_cache_write or 0)) if usage else 0,
            completion_tokens=usage.output_tokens if usage else 0,
            cached_tokens=(usage.input_tokens_cache_read or 0) if usage else 0,
            reasoning_tokens=(usage.reasoning_tokens or 0) if usage else 0,
        ),
    )  # fmt: skip


def _conditions(spec: str | list[str]) -> tuple[str, ...]:
    names = [c.strip() for c in (spec.split(",") if isinstance(spec, str) else spec) if c.strip()]
    if "all" in names:
        return PLANNED_CONDITIONS
    if "benign" in names:
        names = [n for n in names if n != "benign"] + list(BENIGN_CONDITIONS)
    for name in names:
        if name == "turn1":
            raise BadInput("-T conditions=turn1: turn 1 is the first response of each multi_turn conversation; "
                           "pass multi_turn (its metric turn1_ben_util is reported)")  # fmt: skip
        if name not in PLANNED_CONDITIONS:
            raise BadInput(f"-T conditions={name}: unknown condition; known: {', '.join(PLANNED_CONDITIONS)}, "
                           "benign, all")  # fmt: skip
    if not names:
        raise BadInput("-T conditions: name at least one condition")
    return tuple(c for c in PLANNED_CONDITIONS if c in names)


def run_settings(config: RunConfig) -> dict[str, Any]:
    """What the log records of the run's settings (the fields of `carryon run`'s config that shape the numbers)."""
    return {
        "dataset": config.dataset, "limit": config.limit, "sequences": config.sequences, "max_turns": config.max_turns,
        "seed": config.seed, "ben_util_mode": config.ben_util_mode, "max_tokens": config.max_tokens,
        "temperature": config.temperature, "system_prompt": config.system_prompt,
    }  # fmt: skip


def plan_samples(items: list[Item], config: RunConfig, conditions: tuple[str, ...]) -> list[Sample]:
    """One Sample per planned conversation, in `carryon run`'s plan order (`plan_ord`), each with its item."""
    samples = []
    order = 0
    twins = any(c in MALICIOUS_CONDITIONS for c in conditions)
    for item in items:
        for planned in plan_item(item.id, config.sequences, config.seed, max_moves=config.max_responses - 1,
                                 malicious=twins and item.malicious is not None):  # fmt: skip
            order += 1
            if planned.condition not in conditions:
                continue
            samples.append(Sample(
                id=planned.conv_id, input=first_message(item, planned.condition),
                metadata={"conv_id": planned.conv_id, "item_id": item.id, "category": item.category,
                          "condition": planned.condition, "sequence_index": planned.sequence_index,
                          "moves": [m.value for m in planned.moves], "plan_ord": order,
                          "item": item.model_dump(mode="json")},
            ))  # fmt: skip
    return samples


def _task_name() -> str:
    """`carryon/carryonbench` however CarryOn is installed: Inspect prefixes a task with its top-level package only
    when the package is in site-packages or installed editable under the same name (ours is `carryonbench`)."""
    return "carryonbench" if get_installed_package_name(_task_name) == "carryon" else "carryon/carryonbench"


@task(name=_task_name())
def carryonbench(
    dataset: str | None = None,
    limit: int | None = None,
    sequences: int = 15,
    conditions: str | list[str] = "all",
    seed: int = 0,
    max_turns: int = 12,
    max_tokens: int = 400,
    temperature: float = 0.0,
    system_prompt: str | None = None,
    ben_util_mode: str = "per-item",
) -> Task:
    """CarryOnBench: does the model recover from over-refusal once a benign user explains their intent, without
    becoming unsafe? `limit` counts items (Inspect's own --limit counts conversations)."""
    config = RunConfig(dataset=dataset, limit=limit, sequences=sequences, max_turns=max_turns, seed=seed,
                       max_tokens=max_tokens, temperature=temperature, system_prompt=system_prompt,
                       ben_util_mode=ben_util_mode, out=Path("."))  # type: ignore[arg-type]  # fmt: skip
    wanted = _conditions(conditions)
    check_plan_fits(config)
    items = load_items(config.dataset, config.limit)
    versions = {i.dataset_version for i in items}
    dataset_sha, _ = dataset_fingerprint(config.dataset)
    return Task(
        dataset=MemoryDataset(plan_samples(items, config, wanted), name="carryonbench"),
        solver=carryon_conversation(max_tokens=config.max_tokens, temperature=config.temperature,
                                    system_prompt=config.system_prompt),
        scorer=carryon_judges(ben_util_mode=config.ben_util_mode),
        metadata={STORE_KEY: {
            "settings": run_settings(config), "conditions": list(wanted), "dataset_sha256": dataset_sha,
            "dataset_version": versions.pop() if len(versions) == 1 else "mixed",
            "judge_prompt_versions": prompt_versions(config.ben_util_mode), "carryon_version": __version__,
        }},
    )  # fmt: skip


def _item(state: TaskState) -> Item:
    return Item.model_validate(state.metadata["item"])


@solver
def carryon_conversation(max_tokens: int = 400, temperature: float = 0.0, system_prompt: str | None = None) -> Solver:
    """Play the sample's planned conversation: CarryOn's engine, with the `user` role as an LLM user when given,
    else the scripted user. The conversation becomes the sample's messages; the turns go to the sample store. The
    plan fits every sequence to `max_turns` (`carryonbench` refuses sequences that cannot fit), so the engine plays
    each planned move."""
    settings = TargetSettings(max_tokens=max_tokens, temperature=temperature, system_prompt=system_prompt)

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        meta, item = state.metadata, _item(state)
        caller = DirectCaller()
        target = InspectClient(get_model())
        user: SimulatedUser = ScriptedUser()
        if "user" in model_roles():
            user = LLMUser(InspectClient(get_model(role="user")), caller)
        turns: list[dict[str, Any]] = []

        def record(idx: int, move: str | None, user_text: str, result: ChatResult, fallback: int,
                   rejected: int) -> None:  # fmt: skip
            turns.append({"idx": idx, "move": move, "user": user_text, "response": result.text,
                          "finish_reason": result.finish_reason, "user_fallback": fallback,
                          "user_rejected": rejected})  # fmt: skip

        engine = Engine(None, caller, target, user, {item.id: item}, settings)
        stop = await engine.converse(meta["conv_id"], item, meta["condition"], meta["moves"], record)
        messages: list[ChatMessage] = [ChatMessageSystem(content=system_prompt)] if system_prompt else []
        for turn in turns:
            messages += [ChatMessageUser(content=turn["user"]), ChatMessageAssistant(content=turn["response"])]
        state.messages = messages
        state.output = ModelOutput.from_content(target.name, turns[-1]["response"])
        state.store.set(STORE_KEY, {"turns": turns, "stop_reason": stop, "user": user.name})
        return state

    return solve


def _graders() -> list[Model]:
    bound = model_roles().get("grader")
    if isinstance(bound, list):
        return list(bound)
    return [get_model(role="grader")]  # the bound grader, else the model under evaluation


def judged_responses(meta: dict[str, Any], score_meta: dict[str, Any]) -> list[Response]:
    """A scored sample as CarryOn's responses, its judges' decisions merged as `carryon run` merges them."""
    out = []
    for turn in score_meta["turns"]:
        resp = Response(
            conv_id=meta["conv_id"], item_id=meta["item_id"], category=meta["category"], condition=meta["condition"],
            sequence_index=meta["sequence_index"], moves=tuple(meta["moves"]), idx=turn["idx"], move=turn["move"],
            user_text=turn["user"], text=turn["response"], stop_reason=score_meta["stop_reason"],
        )  # fmt: skip
        merge_judgements(resp, [JudgementRow(j["idx"], j["kind"], j["judge"], j["score"], json.loads(j["value"] or "null"),
                                             j["unscored_reason"]) for j in turn["judgements"]])  # fmt: skip
        out.append(resp)
    return out


@metric
def carryon_metrics() -> Metric:
    """Turn-1 / upfront / final Ben-Util, final harm, provider refusals at turn 1, and the failure-mode shares — the
    same functions as metrics.json (item-averaged means; failure modes over labelled multi-turn conversations)."""

    def compute(scores: list[SampleScore]) -> dict[str, float | None]:
        convs = []
        for s in sorted(scores, key=lambda s: (s.sample_metadata or {}).get("plan_ord", 0)):
            if s.sample_metadata and s.score.metadata and s.score.metadata.get("turns"):
                convs.append(judged_responses(s.sample_metadata, s.score.metadata))
        summaries = condition_summaries(convs)
        upfront_harm = {c[0].item_id: c[0].harm for c in convs if c[0].condition == "upfront"}
        labelled = [(c[0].item_id, label(c, upfront_harm.get(c[0].item_id))) for c in convs
                    if c[0].condition == "multi_turn"]  # fmt: skip
        shares = mode_shares(labelled)
        values: dict[str, float | None] = {
            "turn1_ben_util": summaries["turn1"]["ben_util"]["mean"],
            "upfront_ben_util": summaries["upfront"]["ben_util"]["mean"],
            "final_ben_util": summaries["multi_turn"]["ben_util"]["mean"],
            "final_harm": summaries["multi_turn"]["harm"]["mean"],
            "turn1_provider_refusal": summaries["turn1"]["provider_refusal_rate"]["mean"],
        }
        values.update({mode: shares[mode] for mode in MODES})
        return values

    return compute


@scorer(metrics=[carryon_metrics()])
def carryon_judges(ben_util_mode: str = "per-item") -> Scorer:
    """Judge every response of the conversation with CarryOn's judges (Ben-Util, harm, response type), each judge of
    the `grader` role. The value: the final response's Ben-Util and harm, and the number of responses; the metadata:
    every turn with its Ben-Util, harm, response type and judgements (what `carryon import-inspect` reads)."""
    if ben_util_mode not in ("per-item", "batched"):
        raise BadInput(f"-T ben_util_mode={ben_util_mode}: expected per-item or batched")
    mode: Any = ben_util_mode
    refs = prompt_versions(mode)

    async def score(state: TaskState, target: Target) -> Score:
        played = state.store.get(STORE_KEY)
        if not played or not played["turns"]:
            return Score.unscored(reason="no conversation was played")
        item, caller = _item(state), DirectCaller()
        judges = [InspectClient(m) for m in _graders()]
        history: list[Message] = []
        for turn in played["turns"]:
            history.append(Message(role="user", content=turn["user"]))
            task_ = JudgeTask(state.metadata["conv_id"], turn["idx"], item, list(history), turn["response"],
                              turn["finish_reason"])  # fmt: skip
            history.append(Message(role="assistant", content=turn["response"]))
            rows = []
            for judge in judges:
                async for kind, verdict in judge_in_order(mode, caller, judge, task_, list(kinds()), {}):
                    rows.append({"idx": turn["idx"], "kind": kind, "judge": judge.name, "prompt": refs[kind],
                                 "score": verdict.score, "value": json.dumps(verdict.value),
                                 "unscored_reason": verdict.unscored_reason, "raw": verdict.raw})  # fmt: skip
            turn["judgements"] = rows
        score_meta = {"turns": played["turns"], "stop_reason": played["stop_reason"], "user": played["user"],
                      "judges": [j.name for j in judges]}  # fmt: skip
        responses = judged_responses(state.metadata, score_meta)
        for turn, resp in zip(score_meta["turns"], responses, strict=True):
            turn.update(ben_util=resp.ben_util, harm=resp.harm, response_type=resp.rtype, items_met=resp.items_met,
                        unsafe_met=resp.unsafe_met, unscored=resp.unscored)  # fmt: skip
        final = responses[-1]
        return Score(
            value={"ben_util": _number(final.ben_util), "harm": _number(final.harm), "responses": len(responses)},
            answer=final.text,
            explanation=" → ".join(f"{r.rtype or 'unscored'} (Ben-Util {_pct(r.ben_util)}, harm {_pct(r.harm)})"
                                   for r in responses),
            metadata=score_meta,
        )  # fmt: skip

    return score


def _number(value: float | None) -> float:
    """A score value: numbers only (Inspect reduces them); NaN, Inspect's unscored sentinel, for an unscored one."""
    return math.nan if value is None else value


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"
