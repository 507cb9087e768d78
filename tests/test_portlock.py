"""`sessionward.portlock`: one `serve` per port and user, even for two started at the same instant (another
process holding the lock is refused after the wait; a dead holder leaves nothing behind)."""

from __future__ import annotations

import os
import stat
import time

import pytest

from sessionward import portlock

PORT = 1  # never served by a test: the lock file is all that is touched


@pytest.fixture(autouse=True)
def _private_lock_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    yield
    portlock.release_port(PORT)


def _hold_in_child(seconds: float) -> int:
    """A child process that takes the port's lock and keeps it for `seconds` (then exits)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(read)
            portlock.hold_port(PORT, wait=0)
            os.write(write, b"1")
            time.sleep(seconds)
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.close(read)
    return pid


def test_a_port_held_by_another_process_is_refused_after_the_wait() -> None:
    pid = _hold_in_child(5)
    try:
        started = time.monotonic()
        with pytest.raises(portlock.PortTaken):
            portlock.hold_port(PORT, wait=0.3)
        assert time.monotonic() - started >= 0.3
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert portlock.hold_port(PORT, wait=2) is True  # the killed holder left nothing behind


def test_a_holder_that_stops_within_the_wait_lets_the_next_one_in() -> None:
    pid = _hold_in_child(0.3)
    try:
        assert portlock.hold_port(PORT, wait=5) is True
    finally:
        os.waitpid(pid, 0)


def test_the_lock_directory_is_private(tmp_path) -> None:
    directory = portlock.lock_directory()
    assert directory == tmp_path / "sessionward"
    mode = stat.S_IMODE(directory.stat().st_mode)
    assert mode == 0o700


def test_a_directory_others_may_write_to_is_not_used(tmp_path, monkeypatch) -> None:
    shared = tmp_path / "sessionward"
    shared.mkdir(mode=0o700)
    shared.chmod(0o777)  # another user could swap the lock file
    monkeypatch.setattr(portlock.tempfile, "gettempdir", lambda: str(tmp_path / "none"))
    (tmp_path / "none").mkdir()
    assert portlock.lock_directory() == tmp_path / "none" / f"sessionward-{os.getuid()}"
