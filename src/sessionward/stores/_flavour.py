"""unasync: hand-written. Where the sync stores differ in kind from the async ones (the twin:
`sessionward/aio/stores/_flavour.py`, same names): background work is a daemon thread; waiting blocks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Event", "Lock", "Worker", "ready_cluster", "sleep", "start_worker", "stop_worker"]

Worker = threading.Thread
Event = threading.Event
Lock = threading.Lock
sleep = time.sleep


def start_worker(target: Callable[[], None], name: str) -> Worker:
    """Run `target()` in a daemon thread."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def stop_worker(worker: Worker, timeout: float) -> None:
    """Wait up to `timeout` for `worker` to end (its stop event is set)."""
    worker.join(timeout=timeout)


def ready_cluster(client: Any) -> None:
    """Nothing to do: the sync Redis Cluster client connects in its constructor."""
    del client
