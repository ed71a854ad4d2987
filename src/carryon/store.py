"""The run store: one SQLite file (WAL) per run directory holding config, plan, turns, judgements, the model-call
cache and call log. Every stage reads and writes here, so any stage can stop and resume.

When writes become durable: a model call's result (the call cache, and its call-log row) is committed the moment
it arrives, so a kill -9 loses at most the calls in flight and no finished call is ever made again. Everything
derived from calls (turns, judgements, conversation status, cache-hit log rows) joins the open transaction and is
committed with the next model call, by the first write after `COMMIT_INTERVAL_S`, or on close: what a kill -9 loses
of it is rebuilt on resume from the call cache, without a model call. One commit per model call instead of one per
row is what keeps the store's cost per call low (docs/performance.md). Setup writes (meta, items, plan, resets)
commit at once.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from carryon.models.base import ChatResult, Usage

STORE_FILE = "run.sqlite"
STORE_SCHEMA = 1
COMMIT_INTERVAL_S = 0.5

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (item_id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS plan (
  conv_id TEXT PRIMARY KEY, item_id TEXT NOT NULL, condition TEXT NOT NULL, sequence_index INTEGER NOT NULL,
  moves TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', stop_reason TEXT, ord INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS turns (
  conv_id TEXT NOT NULL, idx INTEGER NOT NULL, move TEXT, user_text TEXT NOT NULL, response TEXT NOT NULL,
  finish_reason TEXT NOT NULL, user_fallback INTEGER NOT NULL DEFAULT 0, user_rejected INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (conv_id, idx));
CREATE TABLE IF NOT EXISTS judgements (
  conv_id TEXT NOT NULL, idx INTEGER NOT NULL, kind TEXT NOT NULL, judge TEXT NOT NULL, prompt TEXT NOT NULL,
  score REAL, value TEXT, unscored_reason TEXT, raw TEXT NOT NULL,
  PRIMARY KEY (conv_id, idx, kind, judge));
CREATE TABLE IF NOT EXISTS calls (
  key TEXT PRIMARY KEY, role TEXT NOT NULL, model TEXT NOT NULL, text TEXT NOT NULL, finish_reason TEXT NOT NULL,
  prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, latency_s REAL NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS call_log (
  id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, role TEXT NOT NULL, model TEXT NOT NULL,
  cached INTEGER NOT NULL, latency_s REAL NOT NULL, ts REAL NOT NULL);
CREATE TABLE IF NOT EXISTS audits (
  conv_id TEXT NOT NULL, idx INTEGER NOT NULL, kind TEXT NOT NULL, judge TEXT NOT NULL, prompt TEXT NOT NULL,
  score REAL, value TEXT, unscored_reason TEXT, raw TEXT NOT NULL,
  PRIMARY KEY (conv_id, idx, kind, judge));
CREATE INDEX IF NOT EXISTS plan_ord ON plan (ord);
CREATE TABLE IF NOT EXISTS limits (role TEXT NOT NULL, ts REAL NOT NULL, value INTEGER NOT NULL);
"""


class Store:
    """A run directory's SQLite store. Use as a context manager or call `close()`."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.path = run_dir / STORE_FILE
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=10000")
        self.db.executescript(_DDL)
        self._migrate()
        self.db.row_factory = sqlite3.Row
        self._last_commit = time.monotonic()

    def _migrate(self) -> None:
        """Columns added since a store was made: `turns.user_rejected` (drafts of a user model rejected as role
        confusion). Older runs read as 0."""
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(turns)")}
        if "user_rejected" not in columns:
            self.db.execute("ALTER TABLE turns ADD COLUMN user_rejected INTEGER NOT NULL DEFAULT 0")

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.commit()
        self.db.close()

    # -- transactions -------------------------------------------------------------------------------------------
    def commit(self) -> None:
        """Make every write so far durable."""
        if self.db.in_transaction:
            self.db.execute("COMMIT")
        self._last_commit = time.monotonic()

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        """A derived write (see the module doc): joins the open transaction, committed with the next call."""
        if not self.db.in_transaction:
            self.db.execute("BEGIN")
        self.db.execute(sql, params)
        if time.monotonic() - self._last_commit > COMMIT_INTERVAL_S:
            self.commit()

    @contextmanager
    def _durable(self) -> Iterator[None]:
        """Writes committed at once, together with whatever is pending. On an error everything uncommitted is rolled
        back: the block's writes, and derived writes, which a resume rebuilds from the call cache."""
        if not self.db.in_transaction:
            self.db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.commit()

    # -- meta ---------------------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row["value"]) if row else None

    def set_meta(self, key: str, value: Any) -> None:
        with self._durable():
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value, sort_keys=True)))

    # -- items and plan -----------------------------------------------------------------------------------------
    def add_items(self, items: Iterable[tuple[str, str]]) -> None:
        with self._durable():
            self.db.executemany("INSERT OR REPLACE INTO items VALUES (?, ?)", items)

    def item_bodies(self) -> dict[str, dict[str, Any]]:
        return {r["item_id"]: json.loads(r["body"]) for r in self.db.execute("SELECT * FROM items")}

    def add_plan(self, rows: Iterable[tuple[str, str, str, int, list[str]]]) -> None:
        start = self._plan_end()
        with self._durable():
            self.db.executemany(
                "INSERT OR IGNORE INTO plan (conv_id, item_id, condition, sequence_index, moves, ord) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                ((c, i, cond, s, json.dumps(m), start + n) for n, (c, i, cond, s, m) in enumerate(rows)),
            )

    def _plan_end(self) -> int:
        """One past the highest plan position."""
        return int(self.db.execute("SELECT COALESCE(MAX(ord), -1) + 1 FROM plan").fetchone()[0])

    def plan(self, status: str | None = None) -> list[sqlite3.Row]:
        if status is None:
            return self.db.execute("SELECT * FROM plan ORDER BY ord").fetchall()
        return self.db.execute("SELECT * FROM plan WHERE status=? ORDER BY ord", (status,)).fetchall()

    def plan_counts(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.db.execute("SELECT status, COUNT(*) FROM plan GROUP BY status")}

    # -- turns --------------------------------------------------------------------------------------------------
    def reset_conversation(self, conv_id: str) -> None:
        """Drop the turns of an unfinished conversation; it is replayed (through the call cache) from the start."""
        with self._durable():
            self.db.execute("DELETE FROM turns WHERE conv_id=?", (conv_id,))
            self.db.execute("UPDATE plan SET status='pending', stop_reason=NULL WHERE conv_id=?", (conv_id,))

    def add_turn(self, conv_id: str, idx: int, move: str | None, user_text: str, result: ChatResult,
                 user_fallback: bool = False, user_rejected: int = 0) -> None:  # fmt: skip
        self._write(
            "INSERT INTO turns (conv_id, idx, move, user_text, response, finish_reason, user_fallback, user_rejected) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (conv_id, idx, move, user_text, result.text, result.finish_reason, int(user_fallback), user_rejected),
        )

    def finish_conversation(self, conv_id: str, status: str, stop_reason: str) -> None:
        self._write("UPDATE plan SET status=?, stop_reason=? WHERE conv_id=?", (status, stop_reason, conv_id))

    def turns(self, conv_id: str | None = None) -> list[sqlite3.Row]:
        if conv_id is None:
            return self.db.execute("SELECT * FROM turns ORDER BY conv_id, idx").fetchall()
        return self.db.execute("SELECT * FROM turns WHERE conv_id=? ORDER BY idx", (conv_id,)).fetchall()

    def iter_turns(self, condition: str | None = None, chunk: int = 500) -> Iterator[sqlite3.Row]:
        """Turns of finished conversations in plan order, each with its conversation's plan fields. Read `chunk`
        conversations at a time: memory holds one chunk, and no read stays open while the caller writes (judging
        stores verdicts as it goes)."""
        where = "p.status='done' AND p.ord >= ? AND p.ord < ?" + (" AND p.condition=?" if condition else "")
        sql = (
            "SELECT t.*, p.item_id, p.condition, p.sequence_index, p.moves, p.stop_reason FROM plan p "
            f"JOIN turns t USING (conv_id) WHERE {where} ORDER BY p.ord, t.idx"
        )
        for start in range(0, self._plan_end(), chunk):
            yield from self.db.execute(sql, (start, start + chunk, *([condition] if condition else []))).fetchall()

    # -- judgements ---------------------------------------------------------------------------------------------
    def add_judgement(self, conv_id: str, idx: int, kind: str, judge: str, prompt: str, score: float | None,
                      value: Any, unscored_reason: str | None, raw: str) -> None:  # fmt: skip
        self._write(
            "INSERT OR REPLACE INTO judgements VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (conv_id, idx, kind, judge, prompt, score, json.dumps(value), unscored_reason, raw),
        )

    # -- simulator audit (verdicts on the user's messages; judge/audit.py) ---------------------------------------
    def add_audit(self, conv_id: str, idx: int, kind: str, judge: str, prompt: str, score: float | None,
                  value: Any, unscored_reason: str | None, raw: str) -> None:  # fmt: skip
        self._write(
            "INSERT OR REPLACE INTO audits VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (conv_id, idx, kind, judge, prompt, score, json.dumps(value), unscored_reason, raw),
        )

    def audits_of(self, conv_id: str, judge: str) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT idx, kind, score, value, unscored_reason FROM audits WHERE conv_id=? AND judge=? ORDER BY idx, kind",
            (conv_id, judge),
        ).fetchall()

    def count_missing_audits(self, item_ids: list[str], judge: str, kinds: tuple[str, ...]) -> int:
        """User messages (turns with a move) of finished conversations of `item_ids` lacking an audit verdict."""
        marks = ",".join("?" * len(item_ids))
        total = 0
        for kind in kinds:
            total += self.db.execute(
                f"SELECT COUNT(*) FROM plan p JOIN turns t USING (conv_id) WHERE p.status='done' AND t.move IS NOT NULL "
                f"AND p.item_id IN ({marks}) AND NOT EXISTS (SELECT 1 FROM audits a "
                "WHERE a.conv_id=t.conv_id AND a.idx=t.idx AND a.kind=? AND a.judge=?)",
                [*item_ids, kind, judge],
            ).fetchone()[0]
        return int(total)

    def drop_judgements(self) -> None:
        with self._durable():
            self.db.execute("DELETE FROM judgements")

    def judgements_of(self, conv_id: str) -> list[sqlite3.Row]:
        """One conversation's judgements without raw judge output (the primary key makes this an index lookup)."""
        return self.db.execute(
            "SELECT idx, kind, judge, score, value, unscored_reason FROM judgements WHERE conv_id=? "
            "ORDER BY idx, judge, kind",
            (conv_id,),
        ).fetchall()

    def count_missing_judgements(self, item_ids: list[str], judges: list[str], kinds: tuple[str, ...]) -> int:
        """(response, judge, kind) triples without a judgement, over the finished conversations of `item_ids`; an
        index lookup per triple, no text read."""
        marks = ",".join("?" * len(item_ids))
        total = 0
        for judge in judges:
            for kind in kinds:
                total += self.db.execute(
                    f"SELECT COUNT(*) FROM plan p JOIN turns t USING (conv_id) WHERE p.status='done' "
                    f"AND p.item_id IN ({marks}) AND NOT EXISTS (SELECT 1 FROM judgements j "
                    "WHERE j.conv_id=t.conv_id AND j.idx=t.idx AND j.kind=? AND j.judge=?)",
                    [*item_ids, kind, judge],
                ).fetchone()[0]
        return int(total)

    def judges(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT judge FROM judgements ORDER BY judge")]

    # -- model-call cache and log -------------------------------------------------------------------------------
    def cached_call(self, key: str) -> ChatResult | None:
        row = self.db.execute("SELECT * FROM calls WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        return ChatResult(
            text=row["text"], finish_reason=row["finish_reason"], latency_s=row["latency_s"],
            usage=Usage(prompt_tokens=row["prompt_tokens"], completion_tokens=row["completion_tokens"]),
        )  # fmt: skip

    def add_call(self, key: str, role: str, model: str, result: ChatResult) -> None:
        now = time.time()
        with self._durable():
            self.db.execute(
                "INSERT OR IGNORE INTO calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, role, model, result.text, result.finish_reason, result.usage.prompt_tokens,
                 result.usage.completion_tokens, result.latency_s, now),
            )  # fmt: skip
            self.db.execute(
                "INSERT INTO call_log (key, role, model, cached, latency_s, ts) VALUES (?, ?, ?, 0, ?, ?)",
                (key, role, model, result.latency_s, now),
            )

    def log_cache_hit(self, key: str, role: str, model: str) -> None:
        self._write(
            "INSERT INTO call_log (key, role, model, cached, latency_s, ts) VALUES (?, ?, ?, 1, 0, ?)",
            (key, role, model, time.time()),
        )

    def call_stats(self) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT role, model, SUM(cached=0) AS made, SUM(cached=1) AS cached FROM call_log GROUP BY role, model"
        ).fetchall()

    def add_limit_history(self, role: str, history: list[tuple[float, int]]) -> None:
        with self._durable():
            self.db.executemany("INSERT INTO limits VALUES (?, ?, ?)", ((role, t, v) for t, v in history))

    def integrity_ok(self) -> bool:
        return bool(self.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")
