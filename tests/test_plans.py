from __future__ import annotations

from carryon.core.moves import INTENT_REVEALING, Move
from carryon.simulate.plans import CANONICAL, MAX_MOVES, plan_item, sequences_for


def test_sequences_are_distinct_bounded_seeded_and_start_with_the_canonical_ones() -> None:
    seqs = sequences_for("item-a", 15, seed=0)
    assert len(seqs) == 15 == len(set(seqs))
    assert all(1 <= len(s) <= MAX_MOVES for s in seqs)
    assert seqs[: len(CANONICAL)] == list(CANONICAL)
    assert seqs == sequences_for("item-a", 15, seed=0)
    assert seqs != sequences_for("item-a", 15, seed=1)
    assert sequences_for("item-b", 15, seed=0) != seqs
    # pure strategies are present: all intent-revealing, all pushback, all disengage
    assert any(all(m in INTENT_REVEALING for m in s) and len(s) > 1 for s in seqs)
    assert any(set(s) == {Move.PUSHBACK} for s in seqs)
    assert any(set(s) == {Move.DISENGAGE} for s in seqs)
    # a clarification is revealed at most once per sequence
    assert all(len([m for m in s if m in INTENT_REVEALING]) == len({m for m in s if m in INTENT_REVEALING}) for s in seqs)


def test_plan_has_upfront_plus_sequences_and_respects_max_moves() -> None:
    plan = plan_item("item-a", 4, seed=0, max_moves=2)
    assert [p.condition for p in plan] == ["upfront"] + ["multi_turn"] * 4
    assert plan[0].conv_id == "item-a/upfront" and plan[0].moves == ()
    assert all(1 <= len(p.moves) <= 2 for p in plan[1:])


def test_max_sequences_counts_what_fits_and_sequences_for_refuses_more() -> None:
    import pytest

    from carryon.simulate.plans import max_sequences

    assert max_sequences(1) == 7  # one move: each of the seven
    assert max_sequences(2) == 7 + 3 * 3 + 2 * 4 * 3 + 4 * 3  # + pairs: no intent, one intent, two distinct intents
    for moves in (1, 2):
        assert len(set(sequences_for("item-a", max_sequences(moves), seed=0, max_moves=moves))) == max_sequences(moves)
    with pytest.raises(ValueError, match="only 7 distinct"):
        sequences_for("item-a", 8, seed=0, max_moves=1)
