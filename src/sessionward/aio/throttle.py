"""Login throttling per account and per client address (ASVS 6.3.1), without letting an attacker lock a
victim out indefinitely, and without letting concurrent requests slip past the allowance (A6).

Counters (in a `SessionStore`; keys hashed to a fixed length, so no username is stored and no key outgrows
the store's column):

- `ip:<address>`        failures from one client address, over all usernames (IPv6 counted per /64, since
                        one client usually holds a whole /64);
- `acct:<sha256>`       failures on one account (normalized username) from anywhere;
- `pair:<sha256>`       failures on one account from one address;
- `acctnew:<sha256>`    failures on one account that came from an address with no failures of its own on
                        it (the first failure of each address).

Unknown usernames are counted exactly like real ones, so throttling reveals nothing (ASVS 6.3.8).

Backoff for a counter with `f` failures and `free` free ones: none while `f <= free`, then
`base_backoff * 2**(f - free - 1)` seconds from the last failure, capped at `max_backoff`. So once an
attacker stops, nobody is held back longer than `max_backoff`. With `account_free = 5`, a fresh account
takes 5 free failures and one more attempt (whose failure starts the backoff) before the first refusal.

Counted before the password is checked (A6). `attempt()` decides from the four counters and -- if the
attempt may go ahead -- counts it as a failure *before* the caller verifies the password, in one atomic
store operation (`SessionStore.throttle_update`: row locks in one SQL transaction; on Redis a read and a
compare-and-set script, retried if a concurrent attempt was counted first). So the decision and the count
are one step on every store and across every process and host: a burst of N concurrent attempts is
decided exactly as N attempts one after the other would be, and no more than the allowance is ever
verified. A success then resets the account counters and *releases* its attempt from the address counter
(which counts failures only). A crash between the count and the verdict leaves the attempt counted as a
failure: fail closed. The price: concurrent attempts on one account beyond the allowance are refused even
when one of them has the right password, since each could be a failure until it is checked.

Refused attempts are not counted (no write at all): a refusal never extends a backoff, so hammering a
throttled account keeps nobody out longer than counted failures do, and the arithmetic below is exactly
that of sequential attempts.

The lockout problem and what we chose: with one account counter, an attacker failing once every
`max_backoff` seconds keeps the account in backoff for ever. So the account gate depends on who asks:

- an address that has failed on this account ("dirty") waits for the account counter *and* its own pair
  counter (the latter is not cleared when someone else logs in);
- an address with no failures of its own on this account ("clean", e.g. the victim's) waits only for the
  `acctnew` counter, which grows once per *distinct* failing address.

A single attacking address therefore never blocks the victim (it adds one to `acctnew`, below the free
allowance); to keep a victim out it must bring a fresh address every `max_backoff` seconds (about 100 a
day), and even then the victim waits at most `max_backoff` after that stops. Guessing stays bounded per
account however many addresses an attacker has: clean-address guesses are paced by `acctnew`, repeat
guesses by `acct`/`pair` -- roughly twice the single-counter budget, in exchange for no cheap lockout.
A success resets `acct`, `acctnew` and the pair, never the address counter (an attacker logging in to
their own account must not clear it). A victim who shares an address with the attacker (NAT) is held back
by the address counter until the attacker stops (sessionward has no per-device allowance that would let
them through).

Written once, for asyncio, in src/sessionward/aio/throttle.py; src/sessionward/throttle.py is generated from
it (scripts/gen_sync.py).
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from dataclasses import dataclass

from sessionward.accounts import normalize_username
from sessionward.aio.stores.protocol import AsyncSessionStore
from sessionward.clock import Clock
from sessionward.config import ThrottlePolicy
from sessionward.exceptions import Throttled
from sessionward.stores.base import ThrottleState

__all__ = ["Attempt", "AsyncLoginThrottle", "address_key"]

_ZERO = ThrottleState()


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def address_key(ip: str) -> str:
    """The counter name for a client address: IPv4 as is, IPv6 by its /64 (IPv4-mapped ones as IPv4),
    anything unparseable hashed."""
    try:
        addr = ipaddress.ip_address(ip.strip().split("%", 1)[0])
    except (ValueError, AttributeError):
        return "ip:#" + _digest(str(ip))[:32]
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return f"ip:{addr.ipv4_mapped}"
        return f"ip:{ipaddress.IPv6Network((addr, 64), strict=False)}"
    return f"ip:{addr}"


@dataclass(frozen=True, slots=True)
class Attempt:
    """A counted login attempt, from the throttle's `attempt`: pass it to `succeeded` if the password was right.
    Dropped otherwise: it already counts as the failure."""

    keys: tuple[str, str, str, str]  #: address, account, account-new and pair counter keys
    address_before: ThrottleState  #: the address counter just before this attempt was counted
    address_after: ThrottleState  #: ... and just after


class AsyncLoginThrottle:
    """Throttling of login attempts. Every method may raise `StoreUnavailable` (callers fail closed)."""

    def __init__(self, store: AsyncSessionStore, policy: ThrottlePolicy, clock: Clock) -> None:
        self._store = store
        self._policy = policy
        self._clock = clock

    # -- keys ---------------------------------------------------------------------------------
    @staticmethod
    def _account(username: str) -> str:
        return _digest(normalize_username(username) if isinstance(username, str) else repr(username))

    def _keys(self, username: str, ip: str) -> tuple[str, str, str, str]:
        acct = self._account(username)
        addr = address_key(ip)
        return addr, f"acct:{acct}", f"acctnew:{acct}", f"pair:{_digest(addr, acct)}"

    # -- arithmetic ---------------------------------------------------------------------------
    def _remaining(self, state: ThrottleState, free: int, now: float) -> float:
        extra = state.failures - free
        if extra <= 0:
            return 0.0
        delay = min(self._policy.base_backoff * 2.0 ** min(extra - 1, 64), self._policy.max_backoff)
        return state.last_failure_at + delay - now

    async def _read(self, keys: tuple[str, str, str, str], now: float) -> list[ThrottleState]:
        return await self._store.throttle_read(keys, now=now, window=self._policy.window)

    def _wait(self, states: list[ThrottleState], now: float) -> float:
        """Seconds before this address may try this account, from (address, account, acctnew, pair)."""
        ip_state, acct, acctnew, pair = states
        p = self._policy
        # A clean address is gated by `acctnew` only; a dirty one by the account and its own pair counter.
        account = acct if pair.failures > 0 else acctnew
        return max(
            self._remaining(ip_state, p.address_free, now),
            self._remaining(account, p.account_free, now),
            self._remaining(pair, p.account_free, now),
        )

    @staticmethod
    def _seconds(wait: float) -> int:
        return max(1, math.ceil(wait)) if wait > 0 else 0

    # -- public -------------------------------------------------------------------------------
    async def retry_after(self, username: str, ip: str) -> int:
        """Whole seconds before `ip` may try `username` again; 0 if it may now. Only reads."""
        now = self._clock.now()
        return self._seconds(self._wait(await self._read(self._keys(username, ip), now), now))

    async def check(self, username: str, ip: str) -> None:
        """Raise `Throttled(retry_after)` if this address may not try this username now. Only reads: a caller
        about to verify a password uses `attempt` instead."""
        wait = await self.retry_after(username, ip)
        if wait:
            raise Throttled(wait)

    async def attempt(self, username: str, ip: str) -> Attempt:
        """Decide and count one attempt in one atomic step, before the password is verified: raise
        `Throttled(retry_after)` (nothing counted) or return the counted `Attempt`, which stays a failure
        unless `succeeded` is called with it."""
        now = self._clock.now()
        keys = self._keys(username, ip)

        def decide(states: list[ThrottleState]) -> list[ThrottleState] | None:
            if self._wait(states, now) > 0:
                return None  # refused: nothing is written, so a refusal never extends a backoff
            ip_state, acct, acctnew, pair = states
            # `acctnew` grows only with this address's first failure on this account
            return [_bump(ip_state, now), _bump(acct, now), _bump(acctnew, now) if pair.failures == 0 else acctnew,
                    _bump(pair, now)]

        states, new = await self._store.throttle_update(keys, decide, now=now, window=self._policy.window)
        if new is None:
            raise Throttled(self._seconds(self._wait(states, now)))
        return Attempt(keys, states[0], new[0])

    async def succeeded(self, attempt: Attempt) -> None:
        """The password was right: forget the account's failures and this address's failures on it, and take
        this attempt back off the address counter (whose other failures stay: an attacker logging in to an
        account of their own must not clear them)."""

        def decide(states: list[ThrottleState]) -> list[ThrottleState]:
            ip_state = states[0]
            if ip_state == attempt.address_after:  # nothing counted since: exactly as before the attempt
                released = attempt.address_before
            elif ip_state.failures > 1:  # others counted since: one fewer, their last failure kept
                released = ThrottleState(ip_state.failures - 1, ip_state.last_failure_at)
            else:
                released = _ZERO
            return [released, _ZERO, _ZERO, _ZERO]

        await self._store.throttle_update(attempt.keys, decide, now=self._clock.now(), window=self._policy.window)

    async def reset_account(self, username: str) -> None:
        """Forget an account's counters (admin unlock). Pair counters expire with the window."""
        acct = self._account(username)
        await self._store.throttle_reset(f"acct:{acct}", f"acctnew:{acct}")


def _bump(state: ThrottleState, now: float) -> ThrottleState:
    """One more failure (a late caller with an older `now` never moves the counter back in time)."""
    return ThrottleState(state.failures + 1, max(state.last_failure_at, now))
