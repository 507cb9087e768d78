"""One `sessionward serve` per port on a machine: a lock file per TCP port, held by the server's processes.

`serve`'s workers bind with SO_REUSEPORT, which Linux lets any later listener of the same user share, so the
server first probes the port without it (`cli._check_port_free`). A probe and the bind are two steps: two servers
started at the same instant could both pass the probe and then share the port. The lock closes that window for
servers of the same user (the only ones the kernel would let share the port): the first to take it serves; the
other waits a little (a server being stopped) and then refuses.

The lock is `flock` on `port-<port>.lock` in a directory private to the user (`$XDG_RUNTIME_DIR/sessionward`
or `<tmp>/sessionward-<uid>`, mode 0700, refused when another user owns it or others may write to it). It is
held by the open file, which the forked workers share, and the kernel drops it when the last of them exits, so
a killed server leaves nothing stale behind. Without a private directory the lock is skipped, with a warning:
the probe still refuses a port that a listener already holds.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import stat
import tempfile
import time
from pathlib import Path

__all__ = ["PortTaken", "hold_port", "lock_directory", "release_port"]

_log = logging.getLogger("sessionward.server")
_held: dict[int, int] = {}  # port -> the file descriptor that holds its lock (kept open for the process's life)


class PortTaken(Exception):
    """Another sessionward server of this user holds the port's lock."""


def lock_directory() -> Path | None:
    """This user's private directory for port locks (made 0700 if missing), or None when none can be had."""
    uid = os.getuid()
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    bases = [Path(runtime) / "sessionward"] if runtime else []
    bases.append(Path(tempfile.gettempdir()) / f"sessionward-{uid}")
    for path in bases:
        with contextlib.suppress(FileExistsError, FileNotFoundError, PermissionError):
            path.mkdir(mode=0o700)
        try:
            info = path.lstat()
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == uid and not info.st_mode & 0o022:
            return path
        _log.warning("not using %s for port locks: not a private directory of this user", path)
    return None


def hold_port(port: int, *, wait: float) -> bool:
    """Take this process's lock on `port`, waiting up to `wait` seconds for another server to let it go.
    True when held (kept until the process and its forked workers exit), False when no private lock directory
    exists (logged). Raises `PortTaken`."""
    if port in _held:
        return True
    directory = lock_directory()
    if directory is None:
        _log.warning("port %d not locked: no private directory for port locks", port)
        return False
    fd = os.open(directory / f"port-{port}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise PortTaken(f"another sessionward server holds port {port}") from None
            time.sleep(0.05)
            continue
        _held[port] = fd
        return True


def release_port(port: int) -> None:
    """Let the port's lock go (tests; a server keeps it until it exits)."""
    fd = _held.pop(port, None)
    if fd is not None:
        os.close(fd)
