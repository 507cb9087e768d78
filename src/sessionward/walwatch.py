"""Has a SQLite database in WAL mode changed since a moment ago? Answered from its wal-index header, without
running a statement.

`sessionward.hotsql` remembers the answers of the per-request reads while the database is unchanged, and
checked that with `PRAGMA data_version` on every request. That statement is cheap in a tight loop (about 5 us)
but not in a server, where each request finds SQLite's code and pages gone from the CPU caches: measured
in-process with the caches disturbed between requests as a server's own work disturbs them, the SQLite
configurations cost about 40 us more a request than the same code without the statement (`bench/`).

In WAL mode every connection keeps the database's wal-index in shared memory (the `-shm` file beside the
database, mapped by each connection). Its header (two 48-byte copies of `WalIndexHdr`, file format documented
at https://www.sqlite.org/walformat.html, section 2.1) is rewritten by every commit: `iChange` counts
transactions, `mxFrame` and the checksums move with each frame, and the salts change whenever the log
restarts. SQLite's own readers decide whether their page cache is still good by comparing this header with the
copy they saw last (`walIndexTryHdr`), and `PRAGMA data_version` moves exactly when that comparison says
"changed". So comparing the header's bytes with the bytes seen at the last `PRAGMA data_version` answers "has
anything committed since?" the way SQLite does, and only a changed header costs the statement.

Safety: the header is read without a lock, as SQLite's readers read it first. A commit that completed before
the read has rewritten both copies (copy 2, then copy 1); a torn read differs from the remembered bytes and so
only costs the statement; a commit still under way is not visible to `PRAGMA data_version` either. The mapping
is read-only, opened only after this process's own connection has the wal-index open (SQLite never removes the
`-shm` file while a connection is open), and checked for the format's version number. Any failure to map it
leaves the caller on `PRAGMA data_version` for every request, which is logged once, never silent.
"""

from __future__ import annotations

import logging
import mmap
import os
import sqlite3
import struct

__all__ = ["HEADER_BYTES", "WALINDEX_VERSION", "WalWatch"]

_log = logging.getLogger("sessionward.store")

WALINDEX_VERSION = 3007000  #: `iVersion` of the wal-index header SQLite has written since 3.7.0
HEADER_BYTES = 96  #: the two copies of `WalIndexHdr`; the checkpoint info after them moves with every reader
_MAPPED = 136  #: the header and the checkpoint info: the smallest wal-index SQLite ever writes is 32 KiB
_VERSION = struct.Struct("=I")  # the wal-index is in the machine's byte order


class WalWatch:
    """A read-only view of one database's wal-index header. `header()` returns its current bytes; equal bytes
    at two moments mean no transaction committed in between. Raises ValueError once `close`d."""

    def __init__(self, mapped: mmap.mmap) -> None:
        self._mapped = mapped

    @classmethod
    def open(cls, database: str | os.PathLike[str], conn: sqlite3.Connection) -> WalWatch | None:
        """The watch of `database`, whose open connection `conn` has just read from it; None (logged) when the
        database is not in WAL mode or its wal-index cannot be mapped."""
        try:
            mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
            if mode != "wal":
                _log.info("database not in WAL mode (%s): remembered reads are checked with PRAGMA data_version", mode)
                return None
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # the connection has the wal-index open
            fd = os.open(f"{os.fspath(database)}-shm", os.O_RDONLY)
            try:
                mapped = mmap.mmap(fd, _MAPPED, mmap.MAP_SHARED, mmap.PROT_READ)
            finally:
                os.close(fd)
        except (OSError, ValueError, sqlite3.Error) as exc:
            _log.warning("the wal-index of the SQLite database cannot be mapped (%s): remembered reads are "
                         "checked with PRAGMA data_version on every request", type(exc).__name__)
            return None
        (version,) = _VERSION.unpack_from(mapped, 0)
        if version != WALINDEX_VERSION:
            mapped.close()
            _log.warning("unknown wal-index version %d: remembered reads are checked with PRAGMA data_version on "
                         "every request", version)
            return None
        return cls(mapped)

    def header(self) -> bytes:
        """The header's bytes now."""
        return self._mapped[:HEADER_BYTES]

    def close(self) -> None:
        self._mapped.close()
