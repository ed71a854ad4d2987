from __future__ import annotations

import asyncio
from pathlib import Path

from carryon.calls import CachedCaller
from carryon.data.load import load_items
from carryon.core.chat import ChatRequest, ChatResult, Message
from carryon.core.moves import Move
from carryon.simulate.user import LLMUser, ScriptedUser, looks_confused, role_flip, scripted_message
from carryon.store import Store
from carryon.testing.models import InProcessClient


ITEM = load_items(limit=1)[0]


def test_scripted_intent_moves_carry_the_authored_clarification() -> None:
    for move in (Move.PURPOSE, Move.CONTEXT, Move.NARROWING, Move.ASSURANCE):
        text = scripted_message(ITEM, move, "conv:1")
        clar = getattr(ITEM.clarifications, move.value)
        assert clar[1:] in text
        assert text == scripted_message(ITEM, move, "conv:1")  # deterministic
    assert scripted_message(ITEM, Move.REPHRASE, "s").endswith(ITEM.query)
    for move in (Move.PUSHBACK, Move.DISENGAGE):
        text = scripted_message(ITEM, move, "s")
        assert all(getattr(ITEM.clarifications, k) not in text for k in ("purpose", "context", "narrowing", "assurance"))


def test_role_flip_and_confusion_guard() -> None:
    history = [Message(role="user", content="q"), Message(role="assistant", content="I'm sorry, but I can't assist.")]
    assert [m.role for m in role_flip(history)] == ["assistant", "user"]
    assert looks_confused("I'm sorry, but I can't assist with that.", history) == "assistant voice"
    assert looks_confused("I'm sorry, but I can't assist.", [Message(role="assistant", content="I'm sorry, but I can't assist.")])
    assert looks_confused("It's for my chemistry class, honestly.", history) is None


class _Echo:
    """A confused user model: always echoes the assistant's refusal."""

    name = "testing/echo"

    async def complete(self, request: ChatRequest) -> ChatResult:
        return ChatResult(text="I'm sorry, but I can't help with that.")

    async def aclose(self) -> None:
        return None


def test_llm_user_rejects_role_confusion_then_falls_back(tmp_path: Path) -> None:
    history = [Message(role="user", content=ITEM.query), Message(role="assistant", content="I'm sorry, but I can't help with that.")]
    with Store(tmp_path) as store:
        user = LLMUser(_Echo(), CachedCaller(store))
        turn = asyncio.run(user.next_message(ITEM, Move.PURPOSE, history, "c:1"))
        assert turn.fallback and user.rejected == 3
        assert turn.text == scripted_message(ITEM, Move.PURPOSE, "c:1")
        good = LLMUser(InProcessClient("user"), CachedCaller(store))
        turn = asyncio.run(good.next_message(ITEM, Move.CONTEXT, history, "c:1"))
        assert not turn.fallback and turn.text == ITEM.clarifications.context
        # the user model sees the conversation role-flipped and never the checklist
        request = good.request(ITEM, Move.CONTEXT, history, 0)
        assert [m.role for m in request.messages] == ["system", "assistant", "user"]
        assert not any(c in m.content for m in request.messages for c in ITEM.checklist)


def test_scripted_user_interface() -> None:
    turn = asyncio.run(ScriptedUser().next_message(ITEM, Move.DISENGAGE, [], "x"))
    assert turn.text and not turn.ended


def test_the_move_table_is_checked_against_the_dataset_schema() -> None:
    import pytest

    from carryon.data.schema import Clarifications
    from carryon.core.moves import MOVES, check_moves

    fields = list(Clarifications.model_fields)
    check_moves(fields)  # as at import
    with pytest.raises(AssertionError, match="Clarifications has"):
        check_moves([*fields, "motive"])  # a clarification no move reveals
    assert {spec.family for spec in MOVES.values()} == {"intent", "pushback", "disengage", "rephrase"}
