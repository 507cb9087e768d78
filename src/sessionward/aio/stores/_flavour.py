"""unasync: hand-written. Where the async stores differ in kind from the sync ones (the twin:
`sessionward/stores/_flavour.py`, same names): background work is an asyncio task, not a thread; waiting is
`await`ed; a lock is not needed between awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any, TypeAlias

__all__ = ["Event", "Lock", "Worker", "ready_cluster", "sleep", "start_worker", "stop_worker"]

Worker: TypeAlias = asyncio.Task[None]
sleep = asyncio.sleep


class Lock:
    """Nothing to exclude: on one event loop, code between two awaits runs alone. The async sources only ever
    hold this "lock" around code without an await (the sync twin is a real `threading.Lock`)."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class Event:
    """`threading.Event`'s interface on asyncio: `await wait(timeout)` returns whether it is set."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self, timeout: float | None = None) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        return self._event.is_set()


def start_worker(target: Callable[[], Coroutine[Any, Any, None]], name: str) -> Worker:
    """Run `target()` as a task of the running loop (call from a coroutine)."""
    return asyncio.get_running_loop().create_task(target(), name=name)


async def stop_worker(worker: Worker, timeout: float) -> None:
    """Wait up to `timeout` for `worker` to end (its stop event is set), then cancel it."""
    if not worker.done():
        done, _ = await asyncio.wait([worker], timeout=timeout)
        if not done:
            worker.cancel()
    try:
        await worker
    except asyncio.CancelledError:
        if not worker.cancelled():  # the caller was cancelled, not the worker
            raise
    except Exception:  # noqa: BLE001 - the worker logs its own failures
        return


async def ready_cluster(client: Any) -> None:
    """Connect an async Redis Cluster client now (the sync one does that in its constructor)."""
    await client.initialize()
