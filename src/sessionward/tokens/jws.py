"""The compact-JWS plumbing around PyJWT's algorithm objects: one strict parse of the token, the header
checked once per distinct header (and key) and remembered, PyJWT's own `Algorithm.verify` with key objects
prepared once per key, and the bounded cache of verified tokens.

The type and size of a token are checked once, at the edge (`TokenService.verify_access`), before anything
here looks at it; `verify_compact` assumes a `str` of bounded length.

Signing goes through a private `PyJWS` instance on which PyJWT's own `OKPAlgorithm` is also registered under
the fully-specified name `Ed25519` (RFC 9864, which deprecates the polymorphic `EdDSA`); no crypto is written
here, only the compact serialisation around it.
"""

from __future__ import annotations

import binascii
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt
from jwt.algorithms import Algorithm, OKPAlgorithm, get_default_algorithms

from ..exceptions import TokenError
from ..jsontext import strict_loads
from .claims import Claims, check_header

if TYPE_CHECKING:
    from .keys import KeySet, SigningKey

__all__ = ["HeaderCache", "VerifiedCache", "Verifier", "sign_compact", "verify_compact"]

#: Three non-empty base64url segments and nothing else (no padding, no whitespace, ASCII only).
_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_URLSAFE = bytes.maketrans(b"-_", b"+/")
#: The last character of a canonical unpadded base64url segment leaves its unused bits zero: with 2 (or 3)
#: characters in the last quantum, only these 4 (or 16) characters can end it. One text per token, so the
#: verified-token cache cannot be filled with spellings of one signature.
_LAST_OK = {2: frozenset("AQgw"), 3: frozenset("AEIMQUYcgkosw048")}

#: PyJWT's algorithm objects for every name sessionward signs or verifies with (`keys.ALGORITHMS`).
_PYJWT = get_default_algorithms()
ALGORITHM_OBJECTS: dict[str, Algorithm] = {
    "HS256": _PYJWT["HS256"],
    "ES256": _PYJWT["ES256"],
    "RS256": _PYJWT["RS256"],
    "EdDSA": _PYJWT["EdDSA"],
    "Ed25519": OKPAlgorithm(),  # RFC 9864's name for EdDSA on Ed25519: PyJWT's own implementation
}

_SIGNER = jwt.PyJWS(algorithms=["HS256", "ES256", "RS256", "EdDSA"])
_SIGNER.register_algorithm("Ed25519", ALGORITHM_OBJECTS["Ed25519"])


def _decode_segment(segment: str) -> bytes:
    """A base64url segment already matched by `_COMPACT` (alphabet checked): canonical, or `TokenError`."""
    rest = len(segment) % 4
    if rest == 1 or (rest and segment[-1] not in _LAST_OK[rest]):
        raise TokenError("malformed")
    try:
        return binascii.a2b_base64(segment.encode("ascii").translate(_URLSAFE) + b"=" * (-rest % 4))
    except binascii.Error:
        raise TokenError("malformed") from None


def _header_of(segment: str) -> dict[str, Any]:
    try:
        header = strict_loads(_decode_segment(segment))
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError; `[[[[...` nested 1,000 deep
        raise TokenError("malformed header") from None
    if not isinstance(header, dict):
        raise TokenError("malformed header")
    return header


# -- verification ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Verifier:
    """One of our keys, ready to verify: PyJWT's algorithm object for its pinned algorithm and the key
    object prepared once (`Algorithm.prepare_key`), not per token."""

    kid: str
    algorithm: Algorithm
    prepared: Any

    @classmethod
    def of(cls, key: SigningKey) -> Verifier:
        algorithm = ALGORITHM_OBJECTS[key.alg]
        return cls(key.kid, algorithm, algorithm.prepare_key(key.verifying_key()))


class HeaderCache:
    """Header segment text -> the `Verifier` it selects, for headers that passed `check_header`, named one of
    our keys and the key's own algorithm. Tagged with the key set (a changed key set empties it) and
    bounded: a header spelled in new ways costs a parse each time, never memory."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._state: tuple[tuple[int, int] | None, dict[str, Verifier], dict[str, Verifier]] = (None, {}, {})

    def resolve(self, segment: str, keyset: KeySet, tag: tuple[int, int]) -> Verifier:
        state = self._state
        if state[0] != tag:
            state = self._state = (tag, {}, {})
        _, by_segment, by_kid = state
        verifier = by_segment.get(segment)
        if verifier is not None:
            return verifier
        alg, kid = check_header(_header_of(segment))
        key = keyset.verification_key(kid)
        if key is None:
            raise TokenError("unknown kid")
        if alg != key.alg:
            raise TokenError("alg does not match the key")  # no key confusion (CVE-2022-29217)
        verifier = by_kid.get(kid)
        if verifier is None:
            verifier = by_kid[kid] = Verifier.of(key)
        if len(by_segment) < self._size:
            by_segment[segment] = verifier
        return verifier


def verify_compact(token: str, keyset: KeySet, tag: tuple[int, int], headers: HeaderCache) -> tuple[str, Any]:
    """`(kid, payload)` of a compact JWS whose signature verifies under the one key its header selects.
    Order: shape -> header allow-list and key (`HeaderCache.resolve`) -> signature -> payload JSON. The payload
    is not read before the signature has verified. Raises `TokenError`."""
    if _COMPACT.fullmatch(token) is None:
        raise TokenError("malformed")
    head, body, signature = token.split(".")
    verifier = headers.resolve(head, keyset, tag)
    if not verifier.algorithm.verify(f"{head}.{body}".encode("ascii"), verifier.prepared, _decode_segment(signature)):
        raise TokenError("bad signature")
    try:
        payload = strict_loads(_decode_segment(body))
    except (ValueError, RecursionError):
        raise TokenError("malformed") from None
    return verifier.kid, payload


def sign_compact(payload: Mapping[str, Any], key: SigningKey, headers: Mapping[str, Any]) -> str:
    """A compact JWS of `payload` signed by PyJWS with `key` under its pinned algorithm."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    return _SIGNER.encode(body, key.private, algorithm=key.alg, headers=dict(headers))


# -- the verified-token cache ---------------------------------------------------------------------------

class VerifiedCache:
    """A bounded LRU of verified claims keyed by the exact token text, tagged with the key set it was
    verified under (a changed key set empties it); `size` 0 turns it off.

    `hits` and `misses` count lookups in plain ints (no metric call per request); every `FLUSH_EVERY`
    lookups, and whenever `flush()` is called (a metrics scrape), the counts since the last flush go to
    `on_flush(hits, misses)`."""

    FLUSH_EVERY = 1024

    def __init__(self, size: int) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._data: OrderedDict[str, Claims] = OrderedDict()
        self._tag: tuple[int, int] | None = None
        self.hits = 0
        self.misses = 0
        self._flushed = (0, 0)
        self.on_flush: Callable[[int, int], None] | None = None

    def get(self, token: str, tag: tuple[int, int]) -> Claims | None:
        with self._lock:
            if tag != self._tag:
                self._data.clear()
                self._tag = tag
            claims = self._data.get(token)
            if claims is None:
                self.misses += 1
            else:
                self._data.move_to_end(token)
                self.hits += 1
            due = (self.hits + self.misses) % self.FLUSH_EVERY == 0
        if due:
            self.flush()
        return claims

    def flush(self) -> None:
        """Hand the lookups counted since the last flush to `on_flush`."""
        with self._lock:
            hits, misses = self.hits, self.misses
            done_hits, done_misses = self._flushed
            self._flushed = (hits, misses)
        if self.on_flush is not None and (hits > done_hits or misses > done_misses):
            self.on_flush(hits - done_hits, misses - done_misses)

    def put(self, token: str, claims: Claims, tag: tuple[int, int]) -> None:
        if self.size <= 0:
            return
        with self._lock:
            if tag != self._tag:
                self._data.clear()
                self._tag = tag
            self._data[token] = claims
            if len(self._data) > self.size:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)
