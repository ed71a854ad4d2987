"""Plays planned conversations: the target answers, the simulated user follows up with the planned move, turn by
turn. Conversations run concurrently; a conversation's own turns run in order (with llama.cpp this keeps its KV
cache warm). Each response is stored as it arrives; a conversation is marked done with its stop reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from sqlite3 import Row

from carryon.calls import CachedCaller
from carryon.data.schema import Item
from carryon.errors import ModelCallError
from carryon.models.base import ChatClient, ChatRequest, Message
from carryon.simulate.moves import Move
from carryon.simulate.user import SimulatedUser
from carryon.store import Store
from carryon.workers import run_workers


@dataclass(frozen=True)
class TargetSettings:
    max_tokens: int = 400
    temperature: float = 0.0
    system_prompt: str | None = None
    max_responses: int = 6


class Engine:
    def __init__(self, store: Store, caller: CachedCaller, target: ChatClient, user: SimulatedUser,
                 items: dict[str, Item], settings: TargetSettings) -> None:  # fmt: skip
        self.store, self.caller, self.target, self.user = store, caller, target, user
        self.items, self.settings = items, settings

    def _request(self, history: list[Message]) -> ChatRequest:
        system = [Message(role="system", content=self.settings.system_prompt)] if self.settings.system_prompt else []
        return ChatRequest(
            messages=(*system, *history),
            max_tokens=self.settings.max_tokens,
            temperature=self.settings.temperature,
        )

    async def play(self, row: Row) -> str:
        """Play one planned conversation from the start (turns already cached cost no call); return its stop reason."""
        conv_id, item = row["conv_id"], self.items[row["item_id"]]
        self.store.reset_conversation(conv_id)
        first = item.intent_upfront if row["condition"] == "upfront" else item.query
        history = [Message(role="user", content=first)]
        result = await self.caller.call("target", self.target, self._request(history))
        self.store.add_turn(conv_id, 0, None, first, result)
        history.append(Message(role="assistant", content=result.text))
        stop = "sequence_complete"
        for idx, move in enumerate((Move(m) for m in json.loads(row["moves"])), start=1):
            if idx >= self.settings.max_responses:
                stop = "max_turns"
                break
            turn = await self.user.next_message(item, move, history, seed=f"{conv_id}:{idx}")
            if turn.ended:
                stop = "user_ended"
                break
            history.append(Message(role="user", content=turn.text))
            result = await self.caller.call("target", self.target, self._request(history))
            self.store.add_turn(conv_id, idx, move.value, turn.text, result, user_fallback=turn.fallback,
                                user_rejected=turn.rejected)  # fmt: skip
            history.append(Message(role="assistant", content=result.text))
        self.store.finish_conversation(conv_id, "done", stop)
        return stop

    async def run(self, rows: Sequence[Row], concurrency: int, on_done: Callable[[], None] | None = None) -> int:
        """Play `rows` with at most `concurrency` conversations at once; return how many failed (kept pending).

        `concurrency` workers pull conversations one by one, so memory holds only the conversations in flight."""
        failures = 0

        async def one(row: Row) -> None:
            nonlocal failures
            try:
                await self.play(row)
            except ModelCallError as error:
                if error.permanent:
                    raise
                failures += 1
                self.store.finish_conversation(row["conv_id"], "failed", f"error: {error}")
            if on_done:
                on_done()

        await run_workers(rows, one, concurrency)
        return failures
