"""Password hashing for asyncio: the same argon2id hashes, computed in worker threads so that the event loop
never waits for one.

unasync: hand-written. Its sync twin is `sessionward.passwords` (the async sources import
`AsyncArgon2idHasher` from here; the generated sync modules get `Argon2idHasher` from there).

`AsyncArgon2idHasher` wraps an `Argon2idHasher` (parameters checked once, there; the dummy hash for unknown users
is its own) and runs each hash and verification on its own thread pool of `max_concurrent` threads, under an
`AsyncHashGate` with the same bounds as the sync `HashGate` (SECURITY.md O7): at most `max_concurrent` hashes
at once, at most `max_waiting` coroutines waiting for a turn, each for at most `max_wait` seconds, else
`Overloaded` (503). A coroutine cancelled while its hash runs gives its slot back only when the thread is done,
so cancellations never let more than `max_concurrent` hashes (and their memory) run at once.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import argon2

from sessionward.exceptions import Overloaded
from sessionward.passwords import Argon2idHasher, encode_password, gate_bounds, overloaded

__all__ = ["AsyncArgon2idHasher", "AsyncHashGate"]

T = TypeVar("T")


class AsyncHashGate:
    """The asyncio twin of `sessionward.passwords.HashGate`: `max_concurrent` holders, `max_waiting` waiters,
    each waiting at most `max_wait` seconds; `acquire()` raises `Overloaded` when the queue is full or the wait
    runs out. For one event loop at a time. Raises `ConfigError` (naming SESSIONWARD_HASH_CONCURRENCY / _QUEUE /
    _WAIT) for bad bounds."""

    def __init__(self, max_concurrent: int, *, max_waiting: int | None = None, max_wait: float = 5.0) -> None:
        self.max_concurrent, self.max_waiting, self.max_wait = gate_bounds(
            max_concurrent, max_waiting=max_waiting, max_wait=max_wait
        )
        self._sem = asyncio.Semaphore(max_concurrent)
        self._waiting = 0
        self.refused = 0  #: how many callers got `Overloaded` (for tests and metrics)

    @property
    def retry_after(self) -> int:
        return max(1, round(self.max_wait))

    @property
    def waiting(self) -> int:
        """How many coroutines wait for a slot now."""
        return self._waiting

    def _refuse(self, why: str) -> Overloaded:
        self.refused += 1
        return overloaded(why, retry_after=self.retry_after)

    async def acquire(self) -> None:
        """Take a slot (give it back with `release`). Raises `Overloaded`."""
        if not self._sem.locked():
            await self._sem.acquire()  # a free slot and nobody queued before us: no suspension
            return
        if self._waiting >= self.max_waiting:
            raise self._refuse("queue full")
        self._waiting += 1
        try:
            async with asyncio.timeout(self.max_wait):
                await self._sem.acquire()
        except TimeoutError:
            raise self._refuse("waited too long") from None
        finally:
            self._waiting -= 1

    def release(self) -> None:
        self._sem.release()


class AsyncArgon2idHasher:
    """argon2id hashing for asyncio, off the event loop. `hasher` (default: `Argon2idHasher()`) holds the
    parameters; `gate` (default: an `AsyncHashGate` with the bounds of `hasher.gate`) bounds the hashes at once
    and the queue. `hash`, `verify` and `dummy_verify` raise `Overloaded` when the gate refuses."""

    def __init__(self, hasher: Argon2idHasher | None = None, *, gate: AsyncHashGate | None = None) -> None:
        self.sync = hasher if hasher is not None else Argon2idHasher()
        bounds = self.sync.gate
        self.gate = gate or AsyncHashGate(bounds.max_concurrent, max_waiting=bounds.max_waiting,
                                          max_wait=bounds.max_wait)
        # Its own threads, as many as the gate lets run: argon2 never waits behind (or delays) other work on
        # the loop's default executor, and never runs more at once than the gate allows.
        self._executor = ThreadPoolExecutor(max_workers=self.gate.max_concurrent,
                                            thread_name_prefix="sessionward-argon2")

    @classmethod
    def insecure_for_tests(
        cls, *, memory_cost: int = 64, time_cost: int = 1, gate: AsyncHashGate | None = None
    ) -> AsyncArgon2idHasher:
        """A fast hasher with parameters far below the minimum. For test suites only, never production."""
        return cls(Argon2idHasher.insecure_for_tests(memory_cost=memory_cost, time_cost=time_cost), gate=gate)

    @property
    def parameters(self) -> argon2.Parameters:
        """The argon2 parameters new hashes are made with."""
        return self.sync.parameters

    def needs_rehash(self, password_hash: str) -> bool:
        """True if `password_hash` was made with other parameters than the current ones (or is unreadable)."""
        return self.sync.needs_rehash(password_hash)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        await self.gate.acquire()
        try:
            future = asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args))
        except BaseException:
            self.gate.release()
            raise
        future.add_done_callback(lambda _done: self.gate.release())  # when the thread is done, even if cancelled
        return await asyncio.shield(future)

    async def hash(self, password: str) -> str:
        """The argon2id hash (PHC string) of `password`. Raises TypeError for non-text, `Overloaded`."""
        return await self._run(self.sync.hash_ungated, encode_password(password))

    async def verify(self, password_hash: str, password: str) -> bool:
        """True if `password` matches `password_hash`; False for a mismatch or bad input (never raises for
        it). Raises `Overloaded`."""
        try:
            encoded = encode_password(password)
        except TypeError:
            return False
        return await self._run(self.sync.verify_ungated, password_hash, encoded)

    async def dummy_verify(self, password: str) -> None:
        """Spend the time of one `verify` with the current parameters, for a user that does not exist."""
        try:
            encoded = encode_password(password)
        except TypeError:
            encoded = b""
        await self._run(self.sync.dummy_verify_ungated, encoded)

    def close(self) -> None:
        """Let the worker threads go once their hashes are done."""
        self._executor.shutdown(wait=False)
