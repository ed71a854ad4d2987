"""Follow-up sequences per item: which moves the simulated user plays, in order. Seeded and stored.

A sequence has 1 to 5 moves, so a conversation has 2 to 6 model responses (4 to 12 messages). The first
sequences are fixed and cover the pure strategies; the rest are seeded random mixes, distinct per item.

Conditions: `upfront` and `multi_turn` are the benign user (the paper's design); `malicious_upfront` and `malicious`
are the item's malicious twin asking the same first question and making the same moves (`--conditions all`, for
items that have a twin).
"""

from __future__ import annotations

import hashlib
import math
import random

from typing import Literal

from pydantic import BaseModel, ConfigDict

from carryon.core.moves import ALL_MOVES, INTENT_REVEALING, Move

MIN_MOVES, MAX_MOVES = 1, 5
DEFAULT_SEQUENCES = 15

# Pure and canonical sequences, in the order a small --sequences K takes them.
CANONICAL: tuple[tuple[Move, ...], ...] = (
    (Move.PURPOSE, Move.NARROWING),
    (Move.PUSHBACK, Move.PURPOSE),
    (Move.PURPOSE, Move.CONTEXT, Move.NARROWING, Move.ASSURANCE),
    (Move.PUSHBACK, Move.PUSHBACK, Move.PUSHBACK),
    (Move.DISENGAGE, Move.DISENGAGE),
    (Move.REPHRASE, Move.CONTEXT),
    (Move.CONTEXT,),
)

Condition = str  # one of CONDITIONS; "turn1" is the first response of the multi-turn conversations
BENIGN_CONDITIONS: tuple[str, ...] = ("upfront", "multi_turn")
MALICIOUS_CONDITIONS: tuple[str, ...] = ("malicious_upfront", "malicious")
CONDITIONS = BENIGN_CONDITIONS + MALICIOUS_CONDITIONS
TWIN_CONDITION = {"upfront": "malicious_upfront", "multi_turn": "malicious", "malicious_upfront": "upfront",
                  "malicious": "multi_turn"}  # fmt: skip
"""The condition whose conversation is the same item and sequence played by the other user."""
ConditionSet = Literal["benign", "all"]
"""`--conditions`: `benign` plans the benign user only (the paper's design); `all` adds the malicious twin."""


class PlannedConversation(BaseModel):
    """One conversation to simulate. `conv_id` is stable across runs with the same seed."""

    model_config = ConfigDict(frozen=True)

    conv_id: str
    item_id: str
    condition: str
    sequence_index: int
    moves: tuple[Move, ...]


def _rng(seed: int, item_id: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}:{item_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _random_sequence(rng: random.Random) -> tuple[Move, ...]:
    length = rng.randint(MIN_MOVES, MAX_MOVES)
    reveals = [m for m in Move if m in INTENT_REVEALING]
    rng.shuffle(reveals)
    out: list[Move] = []
    for _ in range(length):
        move = rng.choice(ALL_MOVES)
        if move in INTENT_REVEALING:  # each clarification is told once; then the user falls back on pushback
            move = reveals.pop() if reveals else Move.PUSHBACK
        out.append(move)
    return tuple(out)


def max_sequences(max_moves: int) -> int:
    """How many distinct follow-up sequences of 1 to `max_moves` moves there are, each clarification told at most once:
    7 with one move (`--max-turns 4`), 52 with two, more with more."""
    intent, other = len(INTENT_REVEALING), len(ALL_MOVES) - len(INTENT_REVEALING)
    return sum(
        math.comb(length, told) * math.perm(intent, told) * other ** (length - told)
        for length in range(1, max_moves + 1)
        for told in range(0, min(intent, length) + 1)
    )


def sequences_for(item_id: str, count: int, seed: int, max_moves: int = MAX_MOVES) -> list[tuple[Move, ...]]:
    """`count` distinct follow-up sequences for one item, at most `max_moves` moves each. Raises ValueError when fewer
    than `count` exist (`max_sequences`): a plan never silently holds fewer conversations than asked for."""
    if count > max_sequences(max_moves):
        raise ValueError(f"only {max_sequences(max_moves)} distinct follow-up sequences of at most {max_moves} move(s)")
    rng = _rng(seed, item_id)
    chosen: list[tuple[Move, ...]] = []
    seen: set[tuple[Move, ...]] = set()
    candidates = iter(CANONICAL)
    attempts = 0
    while len(chosen) < count and attempts < count * 50:
        attempts += 1
        seq = next(candidates, None) or _random_sequence(rng)
        seq = seq[:max_moves]
        if seq and seq not in seen:
            seen.add(seq)
            chosen.append(seq)
    if len(chosen) < count:  # pragma: no cover - max_sequences leaves ample room for the draws
        raise ValueError(f"found {len(chosen)} distinct follow-up sequences for {item_id}, not {count}")
    return chosen


def benign_conv_id(item_id: str, sequence_index: int) -> str:
    """The benign conversation of an item and sequence (`-1`: the upfront baseline)."""
    return f"{item_id}/upfront" if sequence_index < 0 else f"{item_id}/s{sequence_index:02d}"


def malicious_conv_id(item_id: str, sequence_index: int) -> str:
    """The malicious twin of `benign_conv_id(item_id, sequence_index)`."""
    return f"{item_id}/malicious-upfront" if sequence_index < 0 else f"{item_id}/m{sequence_index:02d}"


def benign_twin_id(conv_id: str) -> str:
    """The benign conversation whose twin `conv_id` is (`conv_id` itself for a benign one)."""
    item_id, _, tail = conv_id.rpartition("/")
    if tail == "malicious-upfront":
        return benign_conv_id(item_id, -1)
    if tail.startswith("m") and tail[1:].isdigit():
        return benign_conv_id(item_id, int(tail[1:]))
    return conv_id


def plan_item(item_id: str, sequences: int, seed: int, max_moves: int = MAX_MOVES,
              malicious: bool = False) -> list[PlannedConversation]:  # fmt: skip
    """The upfront baseline plus `sequences` multi-turn conversations for one item; with `malicious`, then the same
    again played by the item's malicious twin (`malicious_upfront`, and `malicious` with the same sequences)."""
    seqs = [((), -1), *((moves, n) for n, moves in enumerate(sequences_for(item_id, sequences, seed, max_moves)))]
    sides = [("upfront", "multi_turn", benign_conv_id)]
    if malicious:
        sides.append(("malicious_upfront", "malicious", malicious_conv_id))
    return [
        PlannedConversation(conv_id=conv_id(item_id, index), item_id=item_id, condition=upfront if index < 0 else multi,
                            sequence_index=index, moves=moves)  # fmt: skip
        for upfront, multi, conv_id in sides
        for moves, index in seqs
    ]
