"""Plays planned conversations: the target answers, the simulated user follows up with the planned move, turn by
turn. Conversations run concurrently; a conversation's own turns run in order (with llama.cpp this keeps its KV
cache warm). Each response is stored as it arrives; a conversation is marked done with its stop reason.

A `malicious` conversation is its benign twin with the item's malicious twin as the user: the same first message,
the same moves, and the same words wherever a move reveals nothing (the user's phrasing is seeded by the benign
twin's id). `malicious_upfront` opens with the twin's purpose, then the query (`data.schema.malicious_upfront`).

A response the provider's safety layer stopped (`provider_refusal`) ends the conversation there, with that stop
reason: there is no reply for the simulated user to answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from carryon.calls import Caller
from carryon.data.schema import Item, malicious_upfront
from carryon.core.errors import ModelCallError
from carryon.core.chat import PROVIDER_REFUSAL, ChatClient, ChatRequest, ChatResult, Message
from carryon.core.moves import Move
from carryon.models.endpoints import affinity_key
from carryon.simulate.plans import MALICIOUS_CONDITIONS, benign_twin_id
from carryon.simulate.user import SimulatedUser
from carryon.store import PlanRow, Store
from carryon.core.concurrency import run_workers


TurnSink = Callable[[int, str | None, str, ChatResult, int, int], None]
"""Receives each response as it arrives: (index, move or None, the user message it answers, result, user fallback:
0 none, 1 scripted after confused drafts, 2 the user model refused the persona — `UserTurn.fallback_code`, drafts
rejected as role confusion — `UserTurn.rejected`)."""


@dataclass(frozen=True)
class TargetSettings:
    max_tokens: int = 400
    temperature: float = 0.0
    system_prompt: str | None = None


def first_message(item: Item, condition: str) -> str:
    """A conversation's opening user message in `condition` (the malicious conditions included; raises ValueError
    for `malicious_upfront` on an item without a malicious twin)."""
    if condition == "upfront":
        return item.intent_upfront
    if condition == "malicious_upfront":
        text = malicious_upfront(item)
        if text is None:
            raise ValueError(f"item {item.id} has no malicious twin")
        return text
    return item.query


class Engine:
    def __init__(self, store: Store | None, caller: Caller, target: ChatClient, user: SimulatedUser,
                 items: dict[str, Item], settings: TargetSettings) -> None:  # fmt: skip
        """`store` None: only `converse` is used (the Inspect AI task keeps its conversations in its samples)."""
        self.store, self.caller, self.target, self.user = store, caller, target, user
        self.items, self.settings = items, settings

    def _request(self, history: list[Message]) -> ChatRequest:
        system = [Message(role="system", content=self.settings.system_prompt)] if self.settings.system_prompt else []
        return ChatRequest(
            messages=(*system, *history),
            max_tokens=self.settings.max_tokens,
            temperature=self.settings.temperature,
        )

    async def converse(self, conv_id: str, item: Item, condition: str, moves: Sequence[str],
                       on_turn: TurnSink | None = None) -> str:  # fmt: skip
        """Play one conversation, handing each response to `on_turn` as it arrives; return the stop reason. Touches
        no store: `play` records to the run store, the Inspect AI task (carryon/inspect_task.py) to its sample. Its
        calls share one affinity key: with several endpoints they go to the one holding the conversation's prefix."""
        with affinity_key(conv_id):
            return await self._converse(conv_id, item, condition, moves, on_turn)

    async def _converse(self, conv_id: str, item: Item, condition: str, moves: Sequence[str],
                        on_turn: TurnSink | None) -> str:  # fmt: skip
        malicious = condition in MALICIOUS_CONDITIONS
        seed_id = benign_twin_id(conv_id) if malicious else conv_id
        first = first_message(item, condition)
        history = [Message(role="user", content=first)]
        result = await self.caller.call("target", self.target, self._request(history))
        if on_turn:
            on_turn(0, None, first, result, 0, 0)
        history.append(Message(role="assistant", content=result.text))
        if result.finish_reason == PROVIDER_REFUSAL:
            return PROVIDER_REFUSAL
        stop = "sequence_complete"  # the plan fits every sequence to --max-turns (simulate.plans)
        for idx, move in enumerate((Move(m) for m in moves), start=1):
            turn = await self.user.next_message(item, move, history, seed=f"{seed_id}:{idx}", malicious=malicious)
            if turn.ended:
                stop = "user_ended"
                break
            history.append(Message(role="user", content=turn.text))
            result = await self.caller.call("target", self.target, self._request(history))
            if on_turn:
                on_turn(idx, move.value, turn.text, result, turn.fallback_code, turn.rejected)
            history.append(Message(role="assistant", content=result.text))
            if result.finish_reason == PROVIDER_REFUSAL:  # the provider's filter ends it: nothing for the user to answer
                stop = PROVIDER_REFUSAL
                break
        return stop

    async def play(self, row: PlanRow) -> str:
        """Play one planned conversation from the start (turns already cached cost no call); return its stop reason."""
        conv_id, store = row.conv_id, self.store
        assert store is not None, "Engine.play records to a run store"
        store.reset_conversation(conv_id)

        def record(idx: int, move: str | None, user_text: str, result: ChatResult, fallback: int,
                   rejected: int) -> None:  # fmt: skip
            store.add_turn(conv_id, idx, move, user_text, result, user_fallback=fallback, user_rejected=rejected)

        stop = await self.converse(conv_id, self.items[row.item_id], row.condition, row.moves, record)
        store.finish_conversation(conv_id, "done", stop)
        return stop

    async def run(self, rows: Sequence[PlanRow], concurrency: int, on_done: Callable[[], None] | None = None) -> int:
        """Play `rows` with at most `concurrency` conversations at once; return how many failed (kept pending).

        `concurrency` workers pull conversations one by one, so memory holds only the conversations in flight."""
        failures = 0

        async def one(row: PlanRow) -> None:
            nonlocal failures
            try:
                await self.play(row)
            except ModelCallError as error:
                if error.permanent:
                    raise
                failures += 1
                assert self.store is not None
                self.store.finish_conversation(row.conv_id, "failed", f"error: {error}")
            if on_done:
                on_done()

        await run_workers(rows, one, concurrency)
        return failures
