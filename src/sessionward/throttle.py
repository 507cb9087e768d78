"""Login throttling per account and per client address (ASVS 6.3.1), without letting an attacker lock a
victim out indefinitely.

Counters (in a `SessionStore`, counted atomically by `throttle_fail`; keys hashed to a fixed length, so no
username is stored and no key outgrows the store's column):

- `ip:<address>`        failures from one client address, over all usernames (IPv6 counted per /64, since
                        one client usually holds a whole /64);
- `acct:<sha256>`       failures on one account (normalized username) from anywhere;
- `pair:<sha256>`       failures on one account from one address;
- `acctnew:<sha256>`    failures on one account that came from an address with no failures of its own on
                        it (the first failure of each address).

Unknown usernames are counted exactly like real ones, so throttling reveals nothing (ASVS 6.3.8).

Backoff for a counter with `f` failures and `free` free ones: none while `f <= free`, then
`base_backoff * 2**(f - free - 1)` seconds from the last failure, capped at `max_backoff`. So once an
attacker stops, nobody is held back longer than `max_backoff`.

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
guesses by `acct`/`pair` — roughly twice the single-counter budget, in exchange for no cheap lockout.
A success resets `acct`, `acctnew` and the pair, never the address counter (an attacker logging in to
their own account must not clear it). A victim who shares an address with the attacker (NAT) is held back
by the address counter until the attacker stops (sessionward has no per-device allowance that would let
them through).
"""

from __future__ import annotations

import hashlib
import ipaddress
import math

from .clock import Clock
from .config import ThrottlePolicy
from .exceptions import Throttled
from .stores.base import SessionStore, ThrottleState
from .users import normalize_username

__all__ = ["LoginThrottle", "address_key"]


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


class LoginThrottle:
    """Throttling of login attempts. Every method may raise `StoreUnavailable` (callers fail closed)."""

    def __init__(self, store: SessionStore, policy: ThrottlePolicy, clock: Clock) -> None:
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

    def _get(self, key: str, now: float) -> ThrottleState:
        return self._store.throttle_get(key, now=now, window=self._policy.window)

    def _fail(self, key: str, now: float) -> ThrottleState:
        return self._store.throttle_fail(key, now=now, window=self._policy.window)

    def _wait(self, ip_state: ThrottleState, acct: ThrottleState, pair: ThrottleState, now: float) -> float:
        p = self._policy
        return max(
            self._remaining(ip_state, p.address_free, now),
            self._remaining(acct, p.account_free, now),
            self._remaining(pair, p.account_free, now),
        )

    # -- public -------------------------------------------------------------------------------
    def retry_after(self, username: str, ip: str) -> int:
        """Whole seconds before `ip` may try `username` again; 0 if it may now."""
        now = self._clock.now()
        addr, acct, acctnew, pair = self._keys(username, ip)
        pair_state = self._get(pair, now)
        # A clean address is gated by `acctnew` only; a dirty one by the account and its own pair counter.
        acct_state = self._get(acct if pair_state.failures > 0 else acctnew, now)
        wait = self._wait(self._get(addr, now), acct_state, pair_state, now)
        return max(1, math.ceil(wait)) if wait > 0 else 0

    def check(self, username: str, ip: str) -> None:
        """Raise `Throttled(retry_after)` if this address may not try this username now."""
        wait = self.retry_after(username, ip)
        if wait:
            raise Throttled(wait)

    def failed(self, username: str, ip: str) -> int:
        """Count one failed attempt. Returns the seconds this address must now wait before trying this
        username again (0 if none: backoff has not started)."""
        now = self._clock.now()
        addr, acct, acctnew, pair = self._keys(username, ip)
        pair_state = self._fail(pair, now)
        if pair_state.failures == 1:  # this address's first failure on this account (atomic, so counted once)
            self._fail(acctnew, now)
        acct_state = self._fail(acct, now)
        ip_state = self._fail(addr, now)
        wait = self._wait(ip_state, acct_state, pair_state, now)
        return max(1, math.ceil(wait)) if wait > 0 else 0

    def succeeded(self, username: str, ip: str) -> None:
        """Forget the account's failures and this address's failures on it (never the address counter)."""
        _addr, acct, acctnew, pair = self._keys(username, ip)
        for key in (acct, acctnew, pair):
            self._store.throttle_reset(key)

    def reset_account(self, username: str) -> None:
        """Forget an account's counters (admin unlock). Pair counters expire with the window."""
        acct = self._account(username)
        self._store.throttle_reset(f"acct:{acct}")
        self._store.throttle_reset(f"acctnew:{acct}")
