"""`python -m bench.two_procs VARIANT [VARIANT ...]`: a variant's in-process request loop (`bench.apps`), CPU
time per request, in one process and then in two processes at once on the same state (the SQLite files, the
Redis keys), as two gunicorn workers would run it. Separates what a request costs from what two processes
reading one SQLite database cost each other (the HTTP rows' gap for the SQLite configurations)."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from .apps import BY_NAME, cleanup_redis
from .inproc import make_caller

WARM, N = 1000, 10_000


def _loop(name: str, workdir: Path, headers: dict[str, str]) -> float:
    app = BY_NAME[name].make_app(workdir)
    call = make_caller(app, "/protected", headers, expect="200")
    for _ in range(WARM):
        call()
    started = time.process_time()
    for _ in range(N):
        call()
    return (time.process_time() - started) / N * 1e6


def _two(name: str, workdir: Path, headers: dict[str, str]) -> list[float]:
    children = []
    for _ in range(2):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child runs its loop and reports
            os.close(read)
            os.write(write, repr(_loop(name, workdir, headers)).encode())
            os._exit(0)
        os.close(write)
        children.append((pid, read))
    out = []
    for pid, read in children:
        out.append(float(os.read(read, 64)))
        os.close(read)
        os.waitpid(pid, 0)
    return out


def main(argv: list[str]) -> int:
    try:
        for name in argv or ["bare", "sw_jwt_hs256", "sw_cookie_sqlite", "sw_jwt_hs256_redis_cache"]:
            with tempfile.TemporaryDirectory(prefix="sw-bench-two-") as tmp:
                workdir = Path(tmp)
                headers = BY_NAME[name].setup(workdir)
                one = _loop(name, workdir, headers)
                two = _two(name, workdir, headers)
                print(f"{name:32s} one process {one:6.1f} us CPU/request; two at once "
                      + ", ".join(f"{x:6.1f}" for x in two))
    finally:
        cleanup_redis()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
