"""Run an async store through the sync store interface, so that the one contract class tests it unchanged.

`LoopThread` is a private event loop in a background thread (one per store fixture); `SyncFacade` exposes every
coroutine method of the wrapped object as a plain method that runs it on that loop and waits. Calls from several
threads at once (the contract's race tests) become concurrent tasks on the one loop: the async store's own
concurrency is what they exercise.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sessionward.stores.protocol import SessionStore

T = TypeVar("T")

_METHODS = tuple(name for name, value in vars(SessionStore).items() if callable(value) and not name.startswith("_"))


class LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self, *, debug: bool = False) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_debug(debug)
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-event-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> list[asyncio.Task[Any]]:
        """Stop the loop; the tasks still pending then (which should be none) are returned."""
        pending = self.run(_pending_tasks())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()
        return pending


async def _pending_tasks() -> list[asyncio.Task[Any]]:
    me = asyncio.current_task()
    return [t for t in asyncio.all_tasks() if t is not me and not t.done()]


class SyncFacade:
    """The sync interface of an async object: coroutine methods run on `runner`'s loop; attributes given as
    keywords (e.g. a sync `engine` for inspecting the database) take precedence."""

    def __init__(self, target: Any, runner: LoopThread, **overrides: Any) -> None:
        self._target = target
        self._runner = runner
        self._overrides = overrides
        for name in _METHODS:  # the Protocol's methods exist on the facade itself (isinstance checks)
            setattr(self, name, self._wrap(getattr(target, name)))

    @property
    def target(self) -> Any:
        return self._target

    def _wrap(self, method: Any) -> Any:
        if not inspect.iscoroutinefunction(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._runner.run(method(*args, **kwargs))

        return call

    def __getattr__(self, name: str) -> Any:
        if name in self._overrides:
            return self._overrides[name]
        return self._wrap(getattr(self._target, name))


@contextmanager
def on_private_loop(open_store: Any, *, debug: bool = False, **overrides: Any) -> Iterator[SyncFacade]:
    """`open_store()` (a coroutine function) on a fresh loop thread, as a `SyncFacade`; closed afterwards, and
    the loop must then hold no task (a store that leaks one fails here)."""
    runner = LoopThread(debug=debug)
    try:
        store = runner.run(open_store())
        try:
            yield SyncFacade(store, runner, **overrides)
        finally:
            runner.run(store.close())
    finally:
        pending = runner.close()
    assert not pending, f"tasks left running after close(): {pending}"
