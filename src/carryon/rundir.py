"""Run directories: whose they are, and one command at a time in each.

- `check_out`: `--out` must be a new or empty folder, or a CarryOn run (a `run.sqlite` that is ours); anything else is
  refused (exit 2) before a byte is written, so a foreign folder's files, or a foreign `run.sqlite`, are never touched.
  (An empty `--out` is refused with the other flags, by `check.out_path`.)
- `locked`: an advisory lock (`DIR/.carryon.lock`, held for the whole command) so two commands never write one run
  at once; the second exits 2 at once naming the holder's pid. `filelock` (pinned) takes the lock: flock(2) on Unix,
  released by the kernel when the holder dies, even by kill -9; its `on_acquired` hook writes our pid into the file
  and a contender never truncates it.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from carryon.core.errors import BadInput
from carryon.core.redact import plain
from carryon.store import APPLICATION_ID, STORE_FILE

LOCK_FILE = ".carryon.lock"
STORE_TABLES = frozenset({"meta", "items", "plan", "turns", "judgements", "calls", "call_log"})


def shown(path: Path) -> str:
    """A path as it may appear in a message: control characters escaped (print it with markup off)."""
    return plain(str(path))


def store_is_ours(path: Path) -> bool:
    """Whether `path` is a CarryOn run store: our application id, or (stores made before it was set) all our tables.
    Read-only: a foreign file is never modified, not even its header."""
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return False
    try:
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError:
        return False
    finally:
        db.close()
    return bool(app_id == APPLICATION_ID or (app_id == 0 and STORE_TABLES <= tables))


def check_out(out: Path, flag: str = "--out", *, outputs: frozenset[str] = frozenset()) -> None:
    """Refuse (BadInput) a folder that is not ours: a path to a file, a folder holding a foreign `run.sqlite`, or a
    non-empty folder with no run store (`outputs`: file names of ours that may stand without a store)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise BadInput(f"{flag} {shown(out)}: not a folder")
    store = out / STORE_FILE
    if store.exists():
        if store.is_file() and store.stat().st_size == 0:
            return  # created, then killed before its schema was written: nothing in it to lose; the run takes it
        if not store.is_file() or not store_is_ours(store):
            raise BadInput(f"{flag} {shown(out)}: its {STORE_FILE} is not a CarryOn run store; refusing to touch it "
                           "(use another folder)")  # fmt: skip
        return
    try:
        names = {p.name for p in out.iterdir()}
    except OSError as error:
        raise BadInput(f"{flag} {shown(out)}: not readable ({error.strerror or error})") from None
    foreign = sorted(names - {LOCK_FILE} - outputs)
    if foreign:
        listed = ", ".join(plain(n) for n in foreign[:3]) + (", …" if len(foreign) > 3 else "")
        raise BadInput(f"{flag} {shown(out)}: not empty and not a CarryOn run (holds {listed}); use a new or empty "
                       "folder")  # fmt: skip


def _write_pid(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def _holder(path: Path) -> str:
    for _ in range(10):  # the holder writes its pid just after taking the lock
        try:
            pid = path.read_text(encoding="ascii", errors="replace").strip()
        except OSError:
            pid = ""
        if pid.isdigit():
            return f"pid {pid}"
        time.sleep(0.02)
    return "pid unknown"


@contextmanager
def locked(folder: Path, flag: str = "--out") -> Iterator[None]:
    """Hold `folder`'s lock for the block (creating the folder); BadInput at once if another command holds it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BadInput(f"{flag} {shown(folder)}: not writable ({error.strerror or error})") from None
    path = folder / LOCK_FILE
    lock = FileLock(path, timeout=0, preserve_lock_file=True, on_acquired=_write_pid, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        raise BadInput(f"{flag} {shown(folder)}: in use by another CarryOn command ({_holder(path)}); wait for it to "
                       "finish or use another folder") from None  # fmt: skip
    except OSError as error:
        raise BadInput(f"{flag} {shown(folder)}: cannot lock ({error.strerror or error})") from None
    try:
        yield
    finally:
        lock.release()
