"""gunicorn hooks for `bench.http.profile_http`: each worker profiles itself (cProfile on the thread that serves
requests, gunicorn's own parsing and writing included) from its start to its exit, and writes its stats to
`$BENCH_PROFILE_OUT/<pid>.prof`."""

from __future__ import annotations

import cProfile
import os
import time
from typing import Any

_profile: cProfile.Profile | None = None


def post_worker_init(worker: Any) -> None:
    global _profile  # noqa: PLW0603 - gunicorn hooks share state only through their config module
    _profile = cProfile.Profile(time.process_time)  # CPU time: a worker waiting in select() costs nothing
    _profile.enable()


def worker_exit(server: Any, worker: Any) -> None:
    if _profile is not None:
        _profile.disable()
        _profile.dump_stats(os.path.join(os.environ["BENCH_PROFILE_OUT"], f"{os.getpid()}.prof"))
