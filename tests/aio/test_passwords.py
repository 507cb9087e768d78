"""The async hasher: the same argon2id hashes as the sync one, computed on its own threads under AsyncHashGate,
whose bounds are those of HashGate (SECURITY.md O7): never more hashes at once than `max_concurrent` (cancelled
callers included), a full queue or a long wait refused with Overloaded (503)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from sessionward.aio.passwords import AsyncArgon2idHasher, AsyncHashGate
from sessionward.exceptions import ConfigError, Overloaded
from sessionward.passwords import Argon2idHasher, HashGate

pytestmark = pytest.mark.asyncio

PW = "correct horse battery staple"


class SlowHasher(Argon2idHasher):
    """A fast hasher whose verifications take `hold` seconds on their thread, counting how many run at once."""

    @classmethod
    def make(cls, hold: float) -> SlowHasher:
        self = cls.__new__(cls)
        self._setup(64, 1, 1, 16, 16, gate=HashGate(2, max_waiting=64, max_wait=60))
        self.hold, self.running, self.most, self.done = hold, 0, 0, 0
        self._count = threading.Lock()
        return self

    def verify_ungated(self, password_hash: str, encoded: bytes) -> bool:
        with self._count:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(self.hold)  # on the worker thread: the loop goes on
            return super().verify_ungated(password_hash, encoded)
        finally:
            with self._count:
                self.running -= 1
                self.done += 1


async def test_same_hashes_as_the_sync_hasher_both_ways() -> None:
    sync = Argon2idHasher.insecure_for_tests()
    hasher = AsyncArgon2idHasher(sync)
    made = await hasher.hash(PW)
    assert sync.verify(made, PW) and await hasher.verify(sync.hash(PW), PW)
    assert not await hasher.verify(made, "wrong") and not await hasher.verify("not a hash", PW)
    assert not await hasher.verify(made, None)  # type: ignore[arg-type]  # bad input: False, never raises
    with pytest.raises(TypeError):
        await hasher.hash(b"bytes")  # type: ignore[arg-type]
    await hasher.dummy_verify(PW)
    await hasher.dummy_verify(None)  # type: ignore[arg-type]
    assert hasher.parameters == sync.parameters and not hasher.needs_rehash(made)
    assert hasher.gate.max_concurrent == sync.gate.max_concurrent  # the sync gate's bounds by default
    hasher.close()


async def test_defaults_are_the_production_parameters() -> None:
    hasher = AsyncArgon2idHasher()
    assert hasher.parameters.memory_cost == 65536 and hasher.parameters.time_cost == 3
    hasher.close()


async def test_never_more_hashes_at_once_than_the_gate_allows() -> None:
    slow = SlowHasher.make(hold=0.05)
    hasher = AsyncArgon2idHasher(slow, gate=AsyncHashGate(2, max_waiting=64, max_wait=60))
    made = await hasher.hash(PW)
    assert all(await asyncio.gather(*[hasher.verify(made, PW) for _ in range(12)]))
    assert slow.most == 2 and slow.done == 12
    hasher.close()


async def test_a_cancelled_caller_keeps_its_slot_until_its_hash_is_done() -> None:
    """Cancelling the coroutine cannot stop argon2 on its thread; the slot (and the memory bound) is released
    only when the thread is done: until then a newcomer finds the gate full, then gets in."""
    slow = SlowHasher.make(hold=0.3)
    hasher = AsyncArgon2idHasher(slow, gate=AsyncHashGate(1, max_waiting=0, max_wait=60))
    made = await hasher.hash(PW)
    first = asyncio.create_task(hasher.verify(made, PW))
    while slow.running == 0:
        await asyncio.sleep(0.005)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert slow.running == 1  # its hash goes on ...
    with pytest.raises(Overloaded):
        await hasher.verify(made, PW)  # ... and still holds the one slot
    while slow.done == 0 or hasher.gate.in_use:  # the thread is done, and its completion reached the loop
        await asyncio.sleep(0.005)
    assert await hasher.verify(made, PW)
    assert slow.most == 1 and slow.done == 2
    hasher.close()


async def test_a_full_queue_is_refused_with_overloaded() -> None:
    slow = SlowHasher.make(hold=0.3)
    gate = AsyncHashGate(1, max_waiting=1, max_wait=30)
    hasher = AsyncArgon2idHasher(slow, gate=gate)
    made = await hasher.hash(PW)
    results = await asyncio.gather(*[hasher.verify(made, PW) for _ in range(5)], return_exceptions=True)
    refused = [r for r in results if isinstance(r, Overloaded)]
    assert results.count(True) == 2 and len(refused) == 3  # one hashing, one waiting, the rest refused at once
    assert all(r.retry_after >= 1 for r in refused) and gate.refused == 3
    hasher.close()


async def test_a_wait_past_max_wait_is_refused_with_overloaded() -> None:
    slow = SlowHasher.make(hold=0.5)
    gate = AsyncHashGate(1, max_waiting=4, max_wait=0.05)
    hasher = AsyncArgon2idHasher(slow, gate=gate)
    made = await hasher.hash(PW)
    results = await asyncio.gather(hasher.verify(made, PW), hasher.verify(made, PW), return_exceptions=True)
    assert results[0] is True and isinstance(results[1], Overloaded)
    assert gate.waiting == 0
    hasher.close()


@pytest.mark.parametrize(("kwargs", "setting"), [
    ({"max_concurrent": 0}, "SESSIONWARD_HASH_CONCURRENCY"),
    ({"max_concurrent": 2, "max_waiting": -1}, "SESSIONWARD_HASH_QUEUE"),
    ({"max_concurrent": 2, "max_wait": 0}, "SESSIONWARD_HASH_WAIT"),
    ({"max_concurrent": 2, "max_wait": 61}, "SESSIONWARD_HASH_WAIT"),
])
async def test_bad_bounds_name_the_setting(kwargs: dict[str, float], setting: str) -> None:
    for gate in (AsyncHashGate, HashGate):
        with pytest.raises(ConfigError) as exc:
            gate(**kwargs)  # type: ignore[arg-type]
        assert exc.value.setting == setting
