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
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from carryon.core.chat import ChatResult, Usage
from carryon.core.errors import BadInput

STORE_FILE = "run.sqlite"
APPLICATION_ID = 0x436F4F6E  # "CoOn" in the SQLite header: how carryon/rundir.py tells our stores from foreign ones
COMMIT_INTERVAL_S = 0.5

# The store's schema evolves through this ordered list (as simonw/llm's migrations do): migration n brings a store to
# `PRAGMA user_version` n. Never edit one that has shipped; append. 0.1.0 wrote migration 1's tables and left
# user_version at 0, so it opens as version 0 and migrates like any other.
MIGRATIONS: tuple[str, ...] = (
    # 1: the tables of CarryOn 0.1.0 (IF NOT EXISTS: a 0.1.0 store already has them)
    """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (item_id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS plan (
  conv_id TEXT PRIMARY KEY, item_id TEXT NOT NULL, condition TEXT NOT NULL, sequence_index INTEGER NOT NULL,
  moves TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', stop_reason TEXT, ord INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS turns (
  conv_id TEXT NOT NULL, idx INTEGER NOT NULL, move TEXT, user_text TEXT NOT NULL, response TEXT NOT NULL,
  finish_reason TEXT NOT NULL, user_fallback INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (conv_id, idx));
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
CREATE INDEX IF NOT EXISTS plan_ord ON plan (ord);
CREATE TABLE IF NOT EXISTS limits (role TEXT NOT NULL, ts REAL NOT NULL, value INTEGER NOT NULL);
""",
    # 2: the adaptive limiter is one per endpoint, shared by the roles that call it (models/limits.py)
    "ALTER TABLE limits RENAME COLUMN role TO endpoint;",
    # 3: provider prompt-cache and hidden-reasoning token counts of each call (core/chat.py: Usage)
    """
ALTER TABLE calls ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE calls ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0;
""",
    # 4: a response cut to the size cap (its original size in bytes) or with characters replaced (lone surrogates →
    # U+FFFD), per cached call and per turn (models/textcap.py); rows only for such responses. IF NOT EXISTS: stores
    # written between releases by a development version made these tables on open.
    """
CREATE TABLE IF NOT EXISTS call_notes (
  key TEXT PRIMARY KEY, truncated_from INTEGER, replaced INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS turn_notes (
  conv_id TEXT NOT NULL, idx INTEGER NOT NULL, truncated_from INTEGER, replaced INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (conv_id, idx));
""",
    # 5: which endpoint (base URL) served each call and the provider batch that carried it (models/endpoints.py,
    # batching.py); the batches submitted with `--batch` and their requests, recorded before the provider sees them
    """
ALTER TABLE call_log ADD COLUMN endpoint TEXT;
ALTER TABLE call_log ADD COLUMN batch_id TEXT;
CREATE TABLE IF NOT EXISTS batches (
  batch_id TEXT PRIMARY KEY, remote_id TEXT, provider TEXT NOT NULL, role TEXT NOT NULL, model TEXT NOT NULL,
  endpoint TEXT NOT NULL, status TEXT NOT NULL, n INTEGER NOT NULL, created REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS batch_requests (
  batch_id TEXT NOT NULL, key TEXT NOT NULL, role TEXT NOT NULL, state TEXT NOT NULL, result TEXT,
  PRIMARY KEY (batch_id, key));
CREATE INDEX IF NOT EXISTS batch_requests_key ON batch_requests (key);
""",
    # 6: the simulator audit (judge/audit.py): verdicts on the simulated user's messages, apart from `judgements`
    # (they judge the user's text, not a response, and are no panel member's votes); and the drafts of a user model
    # rejected as role confusion before each message. A development build of issue 15 added both on open.
    """
ALTER TABLE turns ADD COLUMN user_rejected INTEGER NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS audits (
  conv_id TEXT NOT NULL, idx INTEGER NOT NULL, kind TEXT NOT NULL, judge TEXT NOT NULL, prompt TEXT NOT NULL,
  score REAL, value TEXT, unscored_reason TEXT, raw TEXT NOT NULL,
  PRIMARY KEY (conv_id, idx, kind, judge));
""",
)
STORE_SCHEMA = len(MIGRATIONS)


def store_version(db: sqlite3.Connection, where: Path) -> int:
    """The store's schema version; raises BadInput (exit 2) for a store written by a newer CarryOn."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > STORE_SCHEMA:
        raise BadInput(
            f"{where}: written by a newer CarryOn (store schema {version}; this version reads up to "
            f"{STORE_SCHEMA}); upgrade carryonbench to open it"
        )
    return version


def migrate(db: sqlite3.Connection, where: Path) -> None:
    """Bring the store to STORE_SCHEMA, one migration at a time, each in its own transaction with its version."""
    for number in range(store_version(db, where) + 1, STORE_SCHEMA + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            if int(db.execute("PRAGMA user_version").fetchone()[0]) < number:  # another process may have done it
                for statement in filter(str.strip, MIGRATIONS[number - 1].split(";")):
                    _apply(db, statement)
                db.execute(f"PRAGMA user_version = {number}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def _apply(db: sqlite3.Connection, statement: str) -> None:
    """One migration statement. An added column that is already there is skipped: stores written between releases
    by a development version (before the migration existed) added `calls.cached_tokens`/`reasoning_tokens` on open."""
    try:
        db.execute(statement)
    except sqlite3.OperationalError as error:
        if not (statement.strip().upper().startswith("ALTER TABLE") and "duplicate column name" in str(error)):
            raise


@dataclass(frozen=True, slots=True)
class PlanRow:
    """One planned conversation."""

    conv_id: str
    item_id: str
    condition: str
    sequence_index: int
    moves: tuple[str, ...]
    status: str
    stop_reason: str | None

    COLUMNS: ClassVar[str] = "conv_id, item_id, condition, sequence_index, moves, status, stop_reason"

    @classmethod
    def from_db(cls, row: tuple[Any, ...]) -> PlanRow:
        c, i, cond, s, moves, status, stop = row
        return cls(c, i, cond, s, tuple(json.loads(moves)), status, stop)


@dataclass(frozen=True, slots=True)
class TurnRow:
    """One response of a finished conversation, with its conversation's plan fields."""

    conv_id: str
    idx: int
    move: str | None
    user_text: str
    response: str
    finish_reason: str
    user_fallback: int
    """0 the user's own message, 1 scripted after confused drafts, 2 scripted because the user model refused to play
    the persona (simulate.user.UserTurn.fallback_code)"""
    item_id: str
    condition: str
    sequence_index: int
    moves: tuple[str, ...]
    stop_reason: str | None
    truncated_from: int | None = None
    """the response's size in bytes when it was cut to the cap (turn_notes)"""
    replaced: int = 0
    """characters of the response replaced by U+FFFD (turn_notes)"""
    user_rejected: int = 0
    """drafts of a user model rejected as role confusion before this message"""

    COLUMNS: ClassVar[str] = ("t.conv_id, t.idx, t.move, t.user_text, t.response, t.finish_reason, t.user_fallback, "
                              "p.item_id, p.condition, p.sequence_index, p.moves, p.stop_reason, n.truncated_from, "
                              "COALESCE(n.replaced, 0), t.user_rejected")  # fmt: skip

    @classmethod
    def from_db(cls, row: tuple[Any, ...]) -> TurnRow:
        (conv_id, idx, move, user_text, response, finish, fallback, item, cond, seq, moves, stop, cut, replaced,
         rejected) = row  # fmt: skip
        return cls(conv_id, idx, move, user_text, response, finish, int(fallback or 0), item, cond, seq,
                   tuple(json.loads(moves)), stop, cut, replaced, int(rejected or 0))  # fmt: skip


@dataclass(frozen=True, slots=True)
class JudgementRow:
    """One judge's judgement of one response, of one kind (raw output left out); `value` decoded."""

    idx: int
    kind: str
    judge: str
    score: float | None
    value: Any
    unscored_reason: str | None

    COLUMNS: ClassVar[str] = "idx, kind, judge, score, value, unscored_reason"

    @classmethod
    def from_db(cls, row: tuple[Any, ...]) -> JudgementRow:
        idx, kind, judge, score, value, reason = row
        return cls(idx, kind, judge, score, json.loads(value or "null"), reason)


class Store:
    """A run directory's SQLite store. Use as a context manager or call `close()`."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.path = run_dir / STORE_FILE
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=10000")
        try:
            migrate(self.db, self.path)
            self.db.execute(f"PRAGMA application_id={APPLICATION_ID}")
        except BaseException:
            self.db.close()
            raise
        self._last_commit = time.monotonic()

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
        return json.loads(row[0]) if row else None

    def set_meta(self, key: str, value: Any) -> None:
        with self._durable():
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                            (key, json.dumps(value, sort_keys=True)))  # fmt: skip

    # -- items and plan -----------------------------------------------------------------------------------------
    def add_items(self, items: Iterable[tuple[str, str]]) -> None:
        with self._durable():
            self.db.executemany("INSERT OR REPLACE INTO items (item_id, body) VALUES (?, ?)", items)

    def item_bodies(self) -> dict[str, dict[str, Any]]:
        return {item_id: json.loads(body) for item_id, body in self.db.execute("SELECT item_id, body FROM items")}

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

    def plan(self, status: str | None = None) -> list[PlanRow]:
        where = "" if status is None else "WHERE status=? "
        rows = self.db.execute(f"SELECT {PlanRow.COLUMNS} FROM plan {where}ORDER BY ord",
                               () if status is None else (status,))  # fmt: skip
        return [PlanRow.from_db(row) for row in rows]

    def plan_counts(self, items: Iterable[str] | None = None) -> dict[str, int]:
        """Conversations per status (of the `items` given, or all)."""
        if items is None:
            return {r[0]: r[1] for r in self.db.execute("SELECT status, COUNT(*) FROM plan GROUP BY status")}
        ids = list(items)
        marks = ",".join("?" * len(ids))
        sql = f"SELECT status, COUNT(*) FROM plan WHERE item_id IN ({marks}) GROUP BY status"
        return {r[0]: r[1] for r in self.db.execute(sql, ids)}

    # -- turns --------------------------------------------------------------------------------------------------
    def reset_conversation(self, conv_id: str) -> None:
        """Drop the turns of an unfinished conversation; it is replayed (through the call cache) from the start."""
        with self._durable():
            self.db.execute("DELETE FROM turns WHERE conv_id=?", (conv_id,))
            self.db.execute("DELETE FROM turn_notes WHERE conv_id=?", (conv_id,))
            self.db.execute("UPDATE plan SET status='pending', stop_reason=NULL WHERE conv_id=?", (conv_id,))

    def add_turn(self, conv_id: str, idx: int, move: str | None, user_text: str, result: ChatResult,
                 user_fallback: int = 0, user_rejected: int = 0) -> None:  # fmt: skip
        """`user_fallback`: 0 the user's own message, 1 scripted after confused drafts, 2 scripted because the user
        model refused to play the persona (simulate.user.UserTurn.fallback_code); `user_rejected`: drafts of a user
        model rejected as role confusion before this message."""
        self._write(
            "INSERT INTO turns (conv_id, idx, move, user_text, response, finish_reason, user_fallback, user_rejected) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (conv_id, idx, move, user_text, result.text, result.finish_reason, int(user_fallback), user_rejected),
        )
        if result.truncated_from is not None or result.replaced:
            self._write("INSERT OR REPLACE INTO turn_notes (conv_id, idx, truncated_from, replaced) VALUES (?, ?, ?, ?)",
                        (conv_id, idx, result.truncated_from, result.replaced))  # fmt: skip

    def finish_conversation(self, conv_id: str, status: str, stop_reason: str) -> None:
        self._write("UPDATE plan SET status=?, stop_reason=? WHERE conv_id=?", (status, stop_reason, conv_id))

    def iter_turns(self, condition: str | None = None, chunk: int = 500) -> Iterator[TurnRow]:
        """Turns of finished conversations in plan order, each with its conversation's plan fields. Read `chunk`
        conversations at a time: memory holds one chunk, and no read stays open while the caller writes (judging
        stores verdicts as it goes)."""
        where = "p.status='done' AND p.ord >= ? AND p.ord < ?" + (" AND p.condition=?" if condition else "")
        sql = (f"SELECT {TurnRow.COLUMNS} FROM plan p JOIN turns t USING (conv_id) "
               f"LEFT JOIN turn_notes n ON n.conv_id=t.conv_id AND n.idx=t.idx WHERE {where} ORDER BY p.ord, t.idx")
        for start in range(0, self._plan_end(), chunk):
            rows = self.db.execute(sql, (start, start + chunk, *([condition] if condition else []))).fetchall()
            yield from map(TurnRow.from_db, rows)

    # -- judgements ---------------------------------------------------------------------------------------------
    def add_judgement(self, conv_id: str, idx: int, kind: str, judge: str, prompt: str, score: float | None,
                      value: Any, unscored_reason: str | None, raw: str) -> None:  # fmt: skip
        self._write(
            "INSERT OR REPLACE INTO judgements (conv_id, idx, kind, judge, prompt, score, value, unscored_reason, raw) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (conv_id, idx, kind, judge, prompt, score, json.dumps(value), unscored_reason, raw),
        )

    # -- simulator audit (verdicts on the user's messages; judge/audit.py) ---------------------------------------
    def add_audit(self, conv_id: str, idx: int, kind: str, judge: str, prompt: str, score: float | None,
                  value: Any, unscored_reason: str | None, raw: str) -> None:  # fmt: skip
        self._write(
            "INSERT OR REPLACE INTO audits (conv_id, idx, kind, judge, prompt, score, value, unscored_reason, raw) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (conv_id, idx, kind, judge, prompt, score, json.dumps(value), unscored_reason, raw),
        )

    def audits_of(self, conv_id: str, judge: str) -> list[JudgementRow]:
        """One audit judge's verdicts on one conversation's user messages (`value` decoded)."""
        rows = self.db.execute(
            f"SELECT {JudgementRow.COLUMNS} FROM audits WHERE conv_id=? AND judge=? ORDER BY idx, kind", (conv_id, judge)
        )
        return [JudgementRow.from_db(row) for row in rows]

    def count_missing_audits(self, item_ids: list[str], judge: str, kinds: tuple[str, ...]) -> int:
        """User messages (turns with a move) of finished conversations of `item_ids` lacking an audit verdict."""
        return self._count_missing("audits", item_ids, [judge], kinds, user_turns_only=True)

    def drop_judgements(self) -> None:
        with self._durable():
            self.db.execute("DELETE FROM judgements")

    def judgements_of(self, conv_id: str) -> list[JudgementRow]:
        """One conversation's judgements without raw judge output (the primary key makes this an index lookup)."""
        rows = self.db.execute(
            f"SELECT {JudgementRow.COLUMNS} FROM judgements WHERE conv_id=? ORDER BY idx, judge, kind", (conv_id,)
        )
        return [JudgementRow.from_db(row) for row in rows]

    def count_missing_judgements(self, item_ids: list[str], judges: list[str], kinds: tuple[str, ...]) -> int:
        """(response, judge, kind) triples without a judgement, over the finished conversations of `item_ids`; an
        index lookup per triple, no text read."""
        return self._count_missing("judgements", item_ids, judges, kinds, user_turns_only=False)

    def _count_missing(self, table: Literal["judgements", "audits"], item_ids: list[str], judges: list[str],
                       kinds: tuple[str, ...], *, user_turns_only: bool) -> int:  # fmt: skip
        """Turns of finished conversations of `item_ids` (only user messages, turns with a move, if
        `user_turns_only`) without a `table` row, summed over (judge, kind)."""
        marks = ",".join("?" * len(item_ids))
        moves = "AND t.move IS NOT NULL " if user_turns_only else ""
        sql = (f"SELECT COUNT(*) FROM plan p JOIN turns t USING (conv_id) WHERE p.status='done' {moves}"
               f"AND p.item_id IN ({marks}) AND NOT EXISTS (SELECT 1 FROM {table} x "
               "WHERE x.conv_id=t.conv_id AND x.idx=t.idx AND x.kind=? AND x.judge=?)")  # fmt: skip
        return int(sum(self.db.execute(sql, [*item_ids, kind, judge]).fetchone()[0] for judge in judges
                       for kind in kinds))  # fmt: skip

    def judges(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT judge FROM judgements ORDER BY judge")]

    # -- model-call cache and log -------------------------------------------------------------------------------
    def cached_call(self, key: str) -> ChatResult | None:
        row = self.db.execute(
            "SELECT c.text, c.finish_reason, c.latency_s, c.prompt_tokens, c.completion_tokens, c.cached_tokens, "
            "c.reasoning_tokens, n.truncated_from, COALESCE(n.replaced, 0) FROM calls c "
            "LEFT JOIN call_notes n USING (key) WHERE c.key=?", (key,)
        ).fetchone()
        if row is None:
            return None
        (text, finish_reason, latency_s, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens,
         truncated_from, replaced) = row  # fmt: skip
        return ChatResult(text=text, finish_reason=finish_reason, latency_s=latency_s,
                          usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                                      cached_tokens=cached_tokens, reasoning_tokens=reasoning_tokens),
                          truncated_from=truncated_from, replaced=replaced)  # fmt: skip

    def add_call(self, key: str, role: str, model: str, result: ChatResult, endpoint: str | None = None) -> None:
        """A model call's result, committed at once; `endpoint` (the base URL that served it, or the batch's) and
        the batch id go to the call log."""
        now = time.time()
        usage = result.usage
        with self._durable():
            self.db.execute(
                "INSERT OR IGNORE INTO calls (key, role, model, text, finish_reason, prompt_tokens, completion_tokens, "
                "latency_s, created, cached_tokens, reasoning_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, role, model, result.text, result.finish_reason, result.usage.prompt_tokens,
                 result.usage.completion_tokens, result.latency_s, now, result.usage.cached_tokens,
                 result.usage.reasoning_tokens),
            )  # fmt: skip
            self.db.execute(
                "INSERT INTO call_log (key, role, model, cached, latency_s, ts, endpoint, batch_id) "
                "VALUES (?, ?, ?, 0, ?, ?, ?, ?)",
                (key, role, model, result.latency_s, now, result.endpoint or endpoint, result.batch_id),
            )
            if result.truncated_from is not None or result.replaced:
                self.db.execute("INSERT OR REPLACE INTO call_notes (key, truncated_from, replaced) VALUES (?, ?, ?)",
                                (key, result.truncated_from, result.replaced))  # fmt: skip

    def log_cache_hit(self, key: str, role: str, model: str) -> None:
        self._write(
            "INSERT INTO call_log (key, role, model, cached, latency_s, ts) VALUES (?, ?, ?, 1, 0, ?)",
            (key, role, model, time.time()),
        )

    def _dicts(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """A query's rows as dicts by column name (the few aggregate reads that have no typed row)."""
        cursor = self.db.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def usage_by_role(self) -> list[dict[str, Any]]:
        """Per role: calls made and answered from CarryOn's cache, and the tokens of the calls made (cached: served
        from the provider's prompt cache). Calls answered from CarryOn's cache cost nothing and count no tokens."""
        return self._dicts(
            "SELECT l.role, SUM(l.cached=0) AS made, SUM(l.cached=1) AS from_cache, "
            "SUM(l.batch_id IS NOT NULL AND l.cached=0) AS batched, "
            "COALESCE(SUM(CASE WHEN l.cached=0 THEN c.prompt_tokens END), 0) AS input_tokens, "
            "COALESCE(SUM(CASE WHEN l.cached=0 THEN c.cached_tokens END), 0) AS cached_tokens, "
            "COALESCE(SUM(CASE WHEN l.cached=0 THEN c.completion_tokens END), 0) AS output_tokens "
            "FROM call_log l LEFT JOIN calls c USING (key) GROUP BY l.role ORDER BY l.role"
        )

    def calls_by_endpoint(self) -> list[dict[str, Any]]:
        """Calls made per (role, endpoint): which server answered how many."""
        return self._dicts(
            "SELECT role, COALESCE(endpoint, '') AS endpoint, COUNT(*) AS made FROM call_log WHERE cached=0 "
            "GROUP BY role, endpoint ORDER BY role, endpoint"
        )

    # -- provider batches (`--batch`) -----------------------------------------------------------------------------
    def add_batch(self, batch_id: str, provider: str, role: str, model: str, endpoint: str, keys: list[str]) -> None:
        """A batch about to be submitted, with the keys of its requests: committed before the provider sees it, so a
        kill at any point leaves a record a restarted run can reconcile (`submitting`: found live, or resubmitted)."""
        now = time.time()
        with self._durable():
            self.db.execute(
                "INSERT INTO batches (batch_id, remote_id, provider, role, model, endpoint, status, n, created, updated) "
                "VALUES (?, NULL, ?, ?, ?, ?, 'submitting', ?, ?, ?)",
                (batch_id, provider, role, model, endpoint, len(keys), now, now),
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO batch_requests (batch_id, key, role, state, result) VALUES (?, ?, ?, 'live', NULL)",
                ((batch_id, key, role) for key in keys),
            )

    def set_batch(self, batch_id: str, status: str, remote_id: str | None = None) -> None:
        with self._durable():
            self.db.execute(
                "UPDATE batches SET status=?, remote_id=COALESCE(?, remote_id), updated=? WHERE batch_id=?",
                (status, remote_id, time.time(), batch_id),
            )

    def finish_batch(self, batch_id: str, status: str, done: dict[str, str], failed: dict[str, str]) -> None:
        """A batch's outcome in one commit: `done` maps a request key to its result (JSON), `failed` to the reason;
        requests the provider reported neither way count as failed."""
        with self._durable():
            self.db.executemany(
                "UPDATE batch_requests SET state='done', result=? WHERE batch_id=? AND key=?",
                ((result, batch_id, key) for key, result in done.items()),
            )
            self.db.executemany(
                "UPDATE batch_requests SET state='failed', result=? WHERE batch_id=? AND key=?",
                ((reason, batch_id, key) for key, reason in failed.items()),
            )
            self.db.execute(
                "UPDATE batch_requests SET state='failed', result='missing from the results' "
                "WHERE batch_id=? AND state='live'",
                (batch_id,),
            )
            self.db.execute("UPDATE batches SET status=?, updated=? WHERE batch_id=?", (status, time.time(), batch_id))

    def open_batches(self, role: str, model: str) -> list[dict[str, Any]]:
        """Batches of (role, model) not yet collected: submitted (`live`) or maybe submitted (`submitting`)."""
        return self._dicts(
            "SELECT * FROM batches WHERE role=? AND model=? AND status IN ('submitting', 'live') ORDER BY created",
            (role, model),
        )

    def batch_keys(self, batch_id: str) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT key FROM batch_requests WHERE batch_id=?", (batch_id,))]

    def batch_result(self, key: str) -> str | None:
        """A collected batch result for `key` (JSON), if any batch answered it."""
        row = self.db.execute(
            "SELECT result FROM batch_requests WHERE key=? AND state='done' LIMIT 1", (key,)
        ).fetchone()
        return None if row is None else str(row[0])

    def known_remote_batches(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT remote_id FROM batches WHERE remote_id IS NOT NULL")}

    def add_limit_history(self, endpoint: str, history: list[tuple[float, int]]) -> None:
        """The adaptive limit of one endpoint (base URL) over time; the table's first column names the endpoint."""
        with self._durable():
            self.db.executemany("INSERT INTO limits (endpoint, ts, value) VALUES (?, ?, ?)",
                                ((endpoint, t, v) for t, v in history))  # fmt: skip
