"""Checking one DPoP proof (RFC 9449 4.3), I/O-free: the caller passes the request facts and gets a
`DPoPProof` or a typed `DPoPError` carrying the HTTP answer.

The checks, in order (each has a test that fails when it is removed, tests/test_dpop.py):
1. exactly one `DPoP` header value, at most `max_proof_bytes` long;
2. one compact JWS (three canonical base64url segments), its header a JSON object without duplicates;
3. header: `typ` is `dpop+jwt`; `alg` is one of the policy's asymmetric algorithms (`none` and HMAC can
   never be allowed); `jwk` is present, public only (no private member), of the key type and curve `alg`
   names; no `crit`, no other key-bearing parameter (`jku`, `x5u`, `x5c`, `x5t`...);
4. the signature verifies with that `jwk` (PyJWT's algorithm objects over `cryptography`);
5. payload claims: `jti` (a string of 1..`max_jti_chars` printable ASCII), `htm`, `htu`, `iat` (a number);
6. `htm` equals the request method; `htu` equals the request URL, both normalised (`htu.normalize_htu`);
7. with server nonces on: `nonce` is one of ours, not older than `nonce_lifetime` (else `use_dpop_nonce`
   with a fresh nonce);
8. `iat` is within [now - max_age, now + future_skew];
9. with an access token: `ath` equals base64url(SHA-256(the token's ASCII)).

The replay check (`jti` never seen before while the proof could be accepted) is a store operation the caller
performs with the returned `replay_key` and `replay_until` (see `sessionward.dpop` for `use_once`); the check
against a token's `cnf.jkt` is `resource.check_token_binding`.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..popkeys import ProofFormatError, ProofKey, b64url_encode, header_object, parse_public_jwk, split_segments
from ..timedmac import TimedMAC, TimedMACError
from .errors import InvalidDPoPProof, UseDPoPNonce, challenge
from .htu import normalize_htu
from .policy import DPoPPolicy

__all__ = ["DPOP_TYPE", "DPoPProof", "DPoPVerifier", "access_token_hash", "replay_key"]

DPOP_TYPE = "dpop+jwt"
NONCE_PURPOSE = "sessionward dpop-nonce v1"
_ALLOWED_HEADER = frozenset({"typ", "alg", "jwk", "kid"})
_JTI = re.compile(r"[\x21-\x7e]+")
_METHOD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,16}")  # an RFC 9110 token, bounded
_HEADER_CACHE = 1024
_ATH_CACHE = 256


def access_token_hash(access_token: str) -> str:
    """The `ath` of a token: base64url(SHA-256(ASCII octets of the token)) (RFC 9449 4.2)."""
    return b64url_encode(hashlib.sha256(access_token.encode("ascii")).digest())


#: `access_token_hash` remembered per token (bounded LRU): a client sends the same access token with every
#: proof until it expires, so its SHA-256 is taken once. A pure function of the token: nothing is refused here.
_token_ath = functools.lru_cache(maxsize=_ATH_CACHE)(access_token_hash)


def replay_key(jkt: str, jti: str) -> str:
    """The `use_once` key of a proof: its `jti` scoped by its key's thumbprint, hashed to a fixed length (a
    client cannot burn another key's `jti` values, and the store never holds client text)."""
    return "dpop-jti:" + hashlib.sha256(f"{jkt}\x00{jti}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class DPoPProof:
    """A proof that passed every check. Before accepting the request, the caller must call the store's
    `use_once(replay_key, replay_until, now)` and refuse (`InvalidDPoPProof`, reason "jti replayed") when it
    returns False. `jkt` is the RFC 7638 thumbprint to put in (or compare with) the token's `cnf.jkt`."""

    jkt: str
    jwk: Mapping[str, str]
    alg: str
    jti: str
    iat: float
    htm: str
    htu: str
    replay_key: str
    replay_until: float
    nonce_issued: int | None = None

    @property
    def confirmation(self) -> dict[str, dict[str, str]]:
        """`{"cnf": {"jkt": ...}}`: the claim that binds a token to this proof's key (RFC 9449 6.1)."""
        return {"cnf": {"jkt": self.jkt}}


@functools.lru_cache(maxsize=_HEADER_CACHE)
def _proof_key(segment: str, algorithms: frozenset[str]) -> ProofKey:
    """The checked key of a proof header segment (check 3). Remembered per header text: a client sends the
    same header on every request, so the JSON and the key are parsed once. Raises `ProofFormatError` (not
    remembered)."""
    header = header_object(segment)
    if header.get("typ") != DPOP_TYPE:
        raise ProofFormatError("typ is not dpop+jwt")
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise ProofFormatError("alg missing")
    if alg not in algorithms:
        raise ProofFormatError("alg not allowed")  # none, HS256, any spelling of them, anything not chosen
    if "crit" in header:
        raise ProofFormatError("crit header refused")
    if not _ALLOWED_HEADER.issuperset(header):
        raise ProofFormatError("header parameter not allowed")
    if "jwk" not in header:
        raise ProofFormatError("jwk missing")
    return parse_public_jwk(header["jwk"], alg)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


class DPoPVerifier:
    """Checks DPoP proofs under one `DPoPPolicy`. `nonce_keys`: the keys of the server nonces (their own,
    newest last); required when `policy.nonce` is on. Raises `ConfigError` for a bad or missing key."""

    def __init__(self, policy: DPoPPolicy, *, nonce_keys: Sequence[bytes] | None = None) -> None:
        self.policy = policy
        self._algorithms = frozenset(policy.algorithms)
        self._nonces: TimedMAC | None = None
        if policy.nonce or nonce_keys:
            self._nonces = TimedMAC(nonce_keys or (), purpose=NONCE_PURPOSE, setting="DPOP_NONCE_KEYS")

    # -- nonces --------------------------------------------------------------------------------------

    def new_nonce(self, *, now: float) -> str:
        """A fresh server nonce (the `DPoP-Nonce` header value). Raises RuntimeError without nonce keys."""
        if self._nonces is None:
            raise RuntimeError("DPoP nonces are not configured (DPOP_NONCE_KEYS)")
        return self._nonces.issue("", now=now)

    def nonce_to_send(self, proof: DPoPProof | None, *, now: float) -> str | None:
        """The `DPoP-Nonce` value to add to a successful answer: a fresh nonce when nonces are on and the
        client's is missing or past half its lifetime (so a client rolls over before it expires), else None."""
        if not self.policy.nonce:
            return None
        issued = None if proof is None else proof.nonce_issued
        if issued is not None and now - issued < self.policy.nonce_lifetime / 2:
            return None
        return self.new_nonce(now=now)

    def replayed(self, proof: DPoPProof) -> InvalidDPoPProof:
        """The error to raise when the store's `use_once(proof.replay_key, ...)` returned False."""
        return self._refuse("jti replayed")

    def challenge(self) -> str:
        """The `WWW-Authenticate` value of a 401 for a request without any token (no error code, RFC 9449 7.1)."""
        return challenge(self.policy.algorithms)

    # -- proofs --------------------------------------------------------------------------------------

    def _refuse(self, reason: str) -> InvalidDPoPProof:
        return InvalidDPoPProof(reason, algs=self.policy.algorithms)

    def verify(
        self,
        *,
        method: str,
        url: str,
        proofs: Sequence[str],
        now: float,
        access_token: str | None = None,
    ) -> DPoPProof:
        """Check the request's `DPoP` header values `proofs` (every value the request carried) against the
        request `method` and the `url` the server reconstructed (query and fragment are ignored). With
        `access_token`, the proof must carry its `ath`. Raises `InvalidDPoPProof` or `UseDPoPNonce`."""
        policy = self.policy
        if isinstance(proofs, str) or len(proofs) != 1:
            raise self._refuse("missing DPoP header" if not proofs else "more than one DPoP header")
        try:
            head, body, signature = split_segments(proofs[0], max_bytes=policy.max_proof_bytes)
            key = _proof_key(head, self._algorithms)
        except ProofFormatError as err:
            raise self._refuse(err.reason) from None
        if not key.verify(f"{head}.{body}".encode("ascii"), signature):
            raise self._refuse("bad signature")
        try:
            payload = header_object(body)  # the same strict JSON object parse as a header
        except ProofFormatError:
            raise self._refuse("malformed payload") from None
        return self._check_claims(payload, key, method=method, url=url, now=now, access_token=access_token)

    def _check_claims(
        self, payload: dict[str, Any], key: ProofKey, *, method: str, url: str, now: float, access_token: str | None
    ) -> DPoPProof:
        policy = self.policy
        jti, htm, htu, iat = payload.get("jti"), payload.get("htm"), payload.get("htu"), _number(payload.get("iat"))
        if not isinstance(jti, str) or len(jti) > policy.max_jti_chars or _JTI.fullmatch(jti) is None:
            raise self._refuse("jti missing or malformed")
        if not isinstance(htm, str) or not isinstance(htu, str) or iat is None:
            raise self._refuse("htm, htu or iat missing")
        if _METHOD.fullmatch(method) is None or htm != method:
            raise self._refuse("htm does not match the method")
        try:
            expected = normalize_htu(url)
        except ValueError:
            raise self._refuse("request URL cannot be normalised") from None
        try:
            matches = normalize_htu(htu) == expected
        except ValueError:
            raise self._refuse("htu malformed") from None
        if not matches:
            raise self._refuse("htu does not match the URL")
        nonce_issued = self._check_nonce(payload.get("nonce"), now=now)
        if iat > now + policy.future_skew:
            raise self._refuse("iat in the future")
        if iat < now - policy.max_age:
            raise self._refuse("iat too old")
        if access_token is not None:
            ath = payload.get("ath")
            if (
                not isinstance(ath, str)
                or not ath.isascii()
                or not access_token.isascii()
                or not hmac.compare_digest(ath, _token_ath(access_token))
            ):
                raise self._refuse("ath does not match the access token")
        return DPoPProof(
            jkt=key.thumbprint, jwk=key.jwk, alg=key.alg, jti=jti, iat=iat, htm=htm, htu=htu,
            replay_key=replay_key(key.thumbprint, jti), replay_until=iat + policy.max_age, nonce_issued=nonce_issued,
        )

    def _check_nonce(self, nonce: object, *, now: float) -> int | None:
        if not self.policy.nonce:
            return None
        assert self._nonces is not None  # noqa: S101 - set in __init__ when policy.nonce
        if nonce is None:
            raise UseDPoPNonce("nonce missing", algs=self.policy.algorithms, nonce=self.new_nonce(now=now))
        try:
            return self._nonces.verify(nonce, "", now=now, max_age=self.policy.nonce_lifetime, future_skew=1)
        except TimedMACError as err:
            fresh = self.new_nonce(now=now)
            raise UseDPoPNonce(f"nonce {err.reason}", algs=self.policy.algorithms, nonce=fresh) from None
