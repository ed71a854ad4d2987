from __future__ import annotations

from pathlib import Path

from carryon.models.base import ChatResult, Usage
from carryon.store import Store


def test_call_cache_roundtrip_and_log(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        result = ChatResult(text="hello", finish_reason="stop", usage=Usage(prompt_tokens=3, completion_tokens=1), latency_s=0.5)
        store.add_call("k1", "target", "testing/ideal", result)
        store.log_cache_hit("k1", "target", "testing/ideal")
        assert store.cached_call("k1") == result
        assert store.cached_call("k2") is None
        stats = store.call_stats()[0]
        assert (stats["made"], stats["cached"]) == (1, 1)
        assert store.integrity_ok()
    with Store(tmp_path) as again:  # persisted
        assert again.cached_call("k1") == result
        assert again.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_plan_is_idempotent_and_reset_drops_partial_turns(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        rows = [("a/s00", "a", "multi_turn", 0, ["purpose"]), ("a/upfront", "a", "upfront", -1, [])]
        store.add_plan(rows)
        store.add_plan(rows)
        assert len(store.plan()) == 2
        store.add_turn("a/s00", 0, None, "q", ChatResult(text="r"))
        store.reset_conversation("a/s00")
        assert store.turns("a/s00") == []
        assert store.plan_counts() == {"pending": 2}
