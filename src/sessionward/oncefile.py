"""SQLite's side file of one-time keys (`use_once`: DPoP proof ids, DBSC challenges) beside a database on disk:
its statements, how a connection to it is opened, and the thread that checkpoints its write-ahead log.

Why a checkpoint thread: in WAL mode with `synchronous=NORMAL` a commit does not fsync, but a checkpoint (which
SQLite runs inside the commit that fills `wal_autocheckpoint` pages) syncs the log and then the file. Run inside
a claim, that made about one claim in a thousand wait 3 to 25 ms on the bench machine (4 to 11 us a claim on
average, against 10 us for the claim itself). So the claiming connections only keep a far backstop
(`AUTOCHECKPOINT_BACKSTOP` pages) and `Checkpointer` runs a PASSIVE checkpoint on its own connection and daemon
thread every `CHECKPOINT_EVERY` claims of this process: a PASSIVE checkpoint never blocks a writer, and the
sqlite3 module releases the GIL while it syncs. `synchronous` stays NORMAL rather than OFF: OFF would save the
same syncs, but a power cut or an OS crash could then corrupt the file (every later claim a 503 until someone
removes it), where NORMAL only loses the last claims, as it already may (a WAL commit is not synced).
Hand-written (no async twin: `sessionward.aio.hotsql` runs the sync `HotReads`, and so this, on its workers).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import weakref
from pathlib import Path

__all__ = [
    "AUTOCHECKPOINT_BACKSTOP", "BUSY_MS", "CHECKPOINT_EVERY", "PURGE", "USE", "Checkpointer", "connect", "once_file",
]

_log = logging.getLogger("sessionward.store")

SCHEMA = "CREATE TABLE IF NOT EXISTS sw_once (key TEXT PRIMARY KEY, until REAL NOT NULL) WITHOUT ROWID"
#: one statement, atomic under SQLite's write lock across processes: it changes a row (rowcount 1) only when
#: it inserts the key or takes over a key whose use had ended; a live key is left alone (rowcount 0)
USE = (
    "INSERT INTO sw_once (key, until) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET until = excluded.until WHERE sw_once.until <= ?"
)
PURGE = "DELETE FROM sw_once WHERE until <= ?"
BUSY_MS = 5000  # another process holding the side file's lock longer than this: StoreUnavailable (fail closed)
#: pages of log after which a claim checkpoints by itself: only if the checkpoint thread falls behind (or dies)
AUTOCHECKPOINT_BACKSTOP = 10_000
#: claims of this process between two checkpoints on the thread (SQLite's own default is every 1000 pages)
CHECKPOINT_EVERY = 500


def once_file(database: str | os.PathLike[str]) -> Path:
    """The side file of the one-time keys of the SQLite database `database` (with its own -wal and -shm)."""
    return Path(f"{os.fspath(database)}-once")


def connect(database: str | os.PathLike[str]) -> sqlite3.Connection:
    """A connection to the side file of `database`, made private (0600) if it did not exist. Raises
    `sqlite3.Error` or `OSError`."""
    path = once_file(database)
    with contextlib.suppress(FileExistsError):  # private from the start (O6); SQLite's -wal/-shm take its mode
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    conn = sqlite3.connect(path, timeout=BUSY_MS / 1000, check_same_thread=False, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout={BUSY_MS}")
        conn.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer; kept in the file
        conn.execute("PRAGMA synchronous=NORMAL")  # no fsync per commit in WAL mode (see the module docstring)
        conn.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_BACKSTOP}")  # per connection: `Checkpointer`
        conn.execute(SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn


class Checkpointer:
    """Checkpoints the side file of `database` on a daemon thread, started at the first `kick` (and again in
    a forked child, which has no copy of the thread). Failures are logged and retried at the next kick; the
    claiming connections' backstop keeps the log bounded meanwhile. A child forked while another thread of
    the parent held the lock or the event gets fresh ones (`_after_fork_in_child`): it never waits on a lock
    no thread of its own will release."""

    def __init__(self, database: str | os.PathLike[str]) -> None:
        self._database = database
        self._wanted = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._closed = False
        self.runs = 0  # checkpoints done (for tests)
        _LIVE.add(self)

    def _forked(self) -> None:
        """In a forked child, before anything else runs: the parent's thread is not here, and the lock and the
        event may have been copied in the state another thread of the parent left them in."""
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        self._thread = None

    def kick(self) -> None:
        """Ask for a checkpoint soon; returns at once."""
        if self._thread is None or self._pid != os.getpid():
            with self._lock:
                if self._closed:
                    return
                if self._thread is None or self._pid != os.getpid():
                    self._wanted = threading.Event()  # a child's copy of an Event may hold a copied lock
                    self._thread = threading.Thread(target=self._run, args=(self._wanted,),
                                                    name="sessionward-once-checkpoint", daemon=True)
                    self._pid = os.getpid()
                    self._thread.start()
        self._wanted.set()

    def close(self) -> None:
        """Stop the thread (after the checkpoint under way, if any) and close its connection."""
        with self._lock:
            self._closed = True
            thread = self._thread if self._pid == os.getpid() else None
        self._wanted.set()
        if thread is not None:
            thread.join(timeout=5)

    def _run(self, wanted: threading.Event) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                wanted.wait()
                wanted.clear()
                if self._closed:
                    return
                try:
                    if conn is None:
                        conn = connect(self._database)
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.runs += 1
                except (sqlite3.Error, OSError) as exc:
                    _log.warning("checkpoint of the one-time keys' side file failed (%s)", type(exc).__name__)
                    if conn is not None:
                        conn.close()
                        conn = None
        finally:
            if conn is not None:
                conn.close()


_LIVE: weakref.WeakSet[Checkpointer] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for checkpointer in list(_LIVE):
        checkpointer._forked()


os.register_at_fork(after_in_child=_after_fork_in_child)
