"""Device Bound Session Credentials (DBSC), the server side, framework-free and I/O-free.

Implemented from the W3C WebAppSec editor's draft "Device Bound Session Credentials", spec source
`spec.bs` of github.com/w3c/webappsec-dbsc at commit d34681127abcef5fad67a1fd99cd0849f7b9b4b0 (2026-02-17,
"Update `jwk` field requirements for none keys (#246)"); Chromium's current `session_binding_utils.cc`
builds the same shapes (`jwk` in the header on registration, none on refresh, payload `jti` + `authorization`).

The protocol, exactly as implemented:
- Registration offer, on the response that signs the user in:
  `Secure-Session-Registration: (ES256 RS256);path="/dbsc/register";challenge="<c>"` (an RFC 9651 list of
  inner lists of algorithm tokens, parameters `path` (required), `challenge`, `authorization` (optional)).
- The browser makes a key and POSTs to `path` with `Secure-Session-Response: "<JWT>"` (an sf-string; its
  parameters ignored; Chromium 156 sends the bare JWT, an sf-token, which is accepted too), and
  `Authorization: <authorization>` when the offer had one. The JWT ("DBSC proof"):
  header `{"alg": "ES256"|"RS256", "typ": "dbsc+jwt", "jwk": <public JWK>}`, payload
  `{"jti": "<challenge>", "authorization": "<authorization>"}` (`authorization` only if offered), signed by
  the new key. The draft also allows alg `none` (no key): sessionward never offers or accepts it.
- The registration answer is the JSON session instructions (`session_instructions`):
  `{"session_identifier": "<id>", "refresh_url": "<url>", "scope": {"include_site": false,
  "scope_specification": []}, "credentials": [{"type": "cookie", "name": "<short cookie>",
  "attributes": "Path=/; Secure; HttpOnly; SameSite=Lax"}], "allowed_refresh_initiators": []}` (optional
  `continue`, default true; `scope.origin` defaults to the registration URL's origin), plus the short cookie.
- Refresh: when the short cookie is missing (or about to expire) the browser POSTs to `refresh_url` with
  `Sec-Secure-Session-Id: "<id>"` (Chromium 156 sends the bare `<id>`; both are accepted) and, if it has a
  cached challenge, `Secure-Session-Response: "<JWT>"` with header `{"alg", "typ": "dbsc+jwt"}` (no `jwk`:
  its presence is an error) and payload `{"jti": "<c>"}`.
  The server answers 403 with `Secure-Session-Challenge: "<c>";id="<id>"` to ask for a (new) proof (the
  browser retries with it), 200 with the new short cookie (and optionally instructions) on success, any other
  4xx to end the session in the browser. `Secure-Session-Challenge` may also ride on any response to cache the
  next challenge.

Challenges here are stateless (`timedmac`): `<issued>.<random>.<HMAC>` with a key of their own, bound by the
MAC to their purpose (registration or refresh) and to the login session (registration) or the DBSC session
identifier (refresh), valid `challenge_lifetime` seconds. The MAC makes a challenge for another session or
purpose fail; the lifetime makes a stale one fail; a replayed one (the same proof sent again) is caught by the
store's `use_once(replay_key, replay_until, now)` (specified in `sessionward.dpop`), which the caller calls
before renewing anything. The short cookie is a `timedmac` value too (its own key), bound to the session
identifier and dead after `cookie_lifetime`, so a stolen copy is useless within minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .exceptions import AuthenticationError, ConfigError
from .popkeys import ProofFormatError, ProofKey, parse_public_jwk, split_compact
from .sfv import parse_string_item, serialize_string, serialize_string_item
from .timedmac import TimedMAC, TimedMACError

__all__ = [
    "DBSCChallengeRequired",
    "DBSCError",
    "DBSCPolicy",
    "DBSCRefused",
    "DBSCServer",
    "DBSC_TYPE",
    "Registration",
    "RefreshProof",
]

DBSC_TYPE = "dbsc+jwt"
DBSC_ALGORITHMS = ("ES256", "RS256")  #: the draft's signature algorithms (its third value, `none`, is refused)
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PATH = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@/%-]{0,254}")
_AUTHORIZATION = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,512}")
_REGISTER = "sessionward dbsc-registration v1"
_REFRESH = "sessionward dbsc-refresh v1"
_COOKIE = "sessionward dbsc-cookie v1"


class DBSCError(AuthenticationError):
    """A DBSC request refused. `status` and `headers` are the HTTP answer; `reason` is for logs only."""

    code = "dbsc_refused"
    status = 400

    def __init__(self, reason: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__("Device-bound session request refused.")
        self.reason = reason
        self.headers = dict(headers or {})


class DBSCChallengeRequired(DBSCError):
    """403 with a fresh `Secure-Session-Challenge`: the refresh had no proof, or a proof over a stale,
    replayed or foreign challenge. The browser signs the new challenge and retries."""

    code = "dbsc_challenge_required"
    status = 403


class DBSCRefused(DBSCError):
    """The proof is not from the session's key (or is malformed): 401, which ends the session in the browser.
    The server must end the session too (`terminate` is True)."""

    code = "dbsc_refused"
    status = 401
    terminate = True


def _seconds(setting: str, value: object, *, lo: float, hi: float) -> None:
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not number or not lo <= value <= hi:  # type: ignore[operator]
        raise ConfigError(setting, f"must be a number of seconds between {lo} and {hi}, got {value!r}")


@dataclass(frozen=True, slots=True)
class DBSCPolicy:
    """`enabled` (off: no registration is offered); `algorithms` offered and accepted (ES256, RS256);
    registration and refresh paths; challenge and short-cookie lifetimes; the short cookie's name and
    SameSite. Raises `ConfigError` naming the setting."""

    enabled: bool = True
    algorithms: tuple[str, ...] = DBSC_ALGORITHMS
    registration_path: str = "/dbsc/register"
    refresh_path: str = "/dbsc/refresh"
    challenge_lifetime: float = 120.0
    cookie_name: str = "__Host-sw_dbsc"
    cookie_lifetime: float = 600.0
    cookie_samesite: str = "Lax"
    max_proof_bytes: int = 8192

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigError("DBSC", "must be true or false")
        algs = self.algorithms
        distinct = isinstance(algs, tuple) and len(set(algs)) == len(algs)
        if not distinct or not algs or not set(algs) <= set(DBSC_ALGORITHMS):
            raise ConfigError("DBSC_ALGS", f"must be a non-empty tuple of distinct names from {DBSC_ALGORITHMS}")
        paths = (("DBSC_REGISTRATION_PATH", self.registration_path), ("DBSC_REFRESH_PATH", self.refresh_path))
        for setting, path in paths:
            if not isinstance(path, str) or _PATH.fullmatch(path) is None or '"' in path or "\\" in path:
                raise ConfigError(setting, "must be an absolute path")
        _seconds("DBSC_CHALLENGE_LIFETIME", self.challenge_lifetime, lo=10, hi=3600)
        _seconds("DBSC_COOKIE_LIFETIME", self.cookie_lifetime, lo=30, hi=24 * 3600)
        if not isinstance(self.cookie_name, str) or not self.cookie_name.startswith("__Host-") or not all(
            c.isalnum() or c in "-_" for c in self.cookie_name
        ):
            raise ConfigError("DBSC_COOKIE_NAME", "must start with __Host- and be letters, digits, '-' or '_'")
        if self.cookie_samesite not in ("Lax", "Strict"):
            raise ConfigError("DBSC_COOKIE_SAMESITE", "must be Lax or Strict")
        mpb = self.max_proof_bytes
        if not isinstance(mpb, int) or isinstance(mpb, bool) or not 2048 <= mpb <= 16384:  # noqa: PLR2004
            raise ConfigError("DBSC_MAX_PROOF_BYTES", "must be a whole number in 2048..16384")

    @property
    def cookie_attributes(self) -> str:
        """The short cookie's attributes, as in the instructions and on `Set-Cookie` (without Max-Age)."""
        return f"Path=/; Secure; HttpOnly; SameSite={self.cookie_samesite}"


@dataclass(frozen=True, slots=True)
class Registration:
    """A registration proof that passed. Store `key.jwk` and `key.alg` with the session (and show the session
    as device-bound); call `use_once(replay_key, replay_until, now)` first and refuse when it is False."""

    key: ProofKey
    replay_key: str
    replay_until: float


@dataclass(frozen=True, slots=True)
class RefreshProof:
    """A refresh proof that passed: call `use_once(replay_key, replay_until, now)` (False -> `replayed()`),
    then renew the short cookie (`bound_cookie`)."""

    session_identifier: str
    replay_key: str
    replay_until: float


def _replay_key(challenge: str) -> str:
    return "dbsc-challenge:" + hashlib.sha256(challenge.encode("ascii")).hexdigest()


def _check_id(value: object) -> str:
    if not isinstance(value, str) or _ID.fullmatch(value) is None:
        raise ValueError("a DBSC session identifier is 1..64 characters of A-Z a-z 0-9 - _")
    return value


class DBSCServer:
    """The DBSC protocol for one deployment. `challenge_keys` and `cookie_keys`: two key lists of their own
    (newest last, >= 256 bits each). Raises `ConfigError`."""

    def __init__(self, policy: DBSCPolicy, *, challenge_keys: Sequence[bytes], cookie_keys: Sequence[bytes]) -> None:
        self.policy = policy
        self._register = TimedMAC(challenge_keys, purpose=_REGISTER, setting="DBSC_CHALLENGE_KEYS")
        self._refresh = TimedMAC(challenge_keys, purpose=_REFRESH, setting="DBSC_CHALLENGE_KEYS")
        self._cookie = TimedMAC(cookie_keys, purpose=_COOKIE, setting="DBSC_COOKIE_KEYS")
        if set(challenge_keys) & set(cookie_keys):
            raise ConfigError("DBSC_COOKIE_KEYS", "must differ from DBSC_CHALLENGE_KEYS (one key per purpose)")

    # -- registration ----------------------------------------------------------------------------------

    def registration_header(self, *, binding: str, now: float, authorization: str | None = None) -> str:
        """The `Secure-Session-Registration` value offering registration to the session named by `binding`
        (an id the registration request will carry, e.g. the login session's public id)."""
        item = "(" + " ".join(self.policy.algorithms) + ")"
        item += f";path={serialize_string(self.policy.registration_path)}"
        item += f";challenge={serialize_string(self._register.issue(binding, now=now))}"
        if authorization is not None:
            if _AUTHORIZATION.fullmatch(authorization) is None:
                raise ValueError("authorization must be 1..512 printable ASCII characters without quote or backslash")
            item += f";authorization={serialize_string(authorization)}"
        return item

    def verify_registration(
        self, *, responses: Sequence[str], binding: str, now: float, authorization: str | None = None
    ) -> Registration:
        """Check a registration request's `Secure-Session-Response` values for the session named `binding`
        (and the `authorization` offered with it, if any). Raises `DBSCError` (400)."""
        try:
            jws, key = self._proof(responses, registration=True)
            payload = jws.payload()
        except (ProofFormatError, ValueError) as err:
            raise DBSCError(f"registration: {getattr(err, 'reason', 'malformed')}") from None
        challenge = payload.get("jti")
        try:
            issued = self._register.verify(challenge, binding, now=now, max_age=self.policy.challenge_lifetime)
        except TimedMACError as err:
            raise DBSCError(f"registration challenge {err.reason}") from None
        if authorization is not None:
            sent = payload.get("authorization")
            if not isinstance(sent, str) or not sent.isascii() or not hmac.compare_digest(sent, authorization):
                raise DBSCError("registration authorization does not match")
        assert isinstance(challenge, str)  # noqa: S101 - verified above
        assert key is not None  # noqa: S101 - a registration proof always carries its key (`_proof`)
        return Registration(key, _replay_key(challenge), issued + self.policy.challenge_lifetime)

    def session_instructions(self, *, session_identifier: str, refresh_url: str | None = None) -> dict[str, Any]:
        """The JSON session instructions answering a registration (or a refresh): the session is scoped to
        the registration URL's origin; the short cookie is the one credential it protects."""
        return {
            "session_identifier": _check_id(session_identifier),
            "refresh_url": refresh_url or self.policy.refresh_path,
            "scope": {"include_site": False, "scope_specification": []},
            "credentials": [
                {"type": "cookie", "name": self.policy.cookie_name, "attributes": self.policy.cookie_attributes}
            ],
            "allowed_refresh_initiators": [],
        }

    # -- refresh ---------------------------------------------------------------------------------------

    def challenge_header(self, *, session_identifier: str, now: float) -> str:
        """A `Secure-Session-Challenge` value with a fresh refresh challenge for this session."""
        challenge = self._refresh.issue(_check_id(session_identifier), now=now)
        return serialize_string_item(challenge, id=session_identifier)

    def _challenge_required(self, reason: str, session_identifier: str, now: float) -> DBSCChallengeRequired:
        header = self.challenge_header(session_identifier=session_identifier, now=now)
        return DBSCChallengeRequired(reason, headers={"Secure-Session-Challenge": header})

    @staticmethod
    def session_identifier(values: Sequence[str]) -> str:
        """The session identifier of a refresh request's `Sec-Secure-Session-Id` values (exactly one). Raises
        `DBSCError` (400, an unknown session for the browser)."""
        if isinstance(values, str) or len(values) != 1:
            raise DBSCError("exactly one Sec-Secure-Session-Id is needed")
        value = values[0].strip(" \t") if isinstance(values[0], str) else values[0]
        if isinstance(value, str) and _ID.fullmatch(value):
            return value  # Chromium 156 sends the bare identifier, not the draft's sf-string
        try:
            return _check_id(parse_string_item(values[0]))
        except ValueError:
            raise DBSCError("malformed Sec-Secure-Session-Id") from None

    def verify_refresh(
        self, *, session_identifier: str, jwk: Mapping[str, Any], alg: str, responses: Sequence[str], now: float
    ) -> RefreshProof:
        """Check a refresh for the session `session_identifier` whose registered key is `jwk`/`alg` (as stored
        from `Registration.key`). Raises `DBSCChallengeRequired` (403 + new challenge) when the proof is
        missing or its challenge is stale, foreign or unreadable; `DBSCRefused` (401, end the session) when the
        proof is malformed or not signed by the session's key."""
        if not responses:
            raise self._challenge_required("refresh without a proof", session_identifier, now)
        try:
            key = parse_public_jwk(jwk, alg)
        except ProofFormatError:
            raise DBSCRefused("stored key unusable") from None
        try:
            jws, _ = self._proof(responses, registration=False)
        except (ProofFormatError, ValueError) as err:
            raise DBSCRefused(f"refresh: {getattr(err, 'reason', 'malformed')}") from None
        if jws.header.get("alg") != key.alg:
            raise DBSCRefused("refresh alg is not the registered key's")
        if not key.verify(jws.signing_input, jws.signature):
            raise DBSCRefused("refresh not signed by the session's key")
        try:
            challenge = jws.payload().get("jti")
        except ProofFormatError:
            raise DBSCRefused("refresh payload malformed") from None
        try:
            lifetime = self.policy.challenge_lifetime
            issued = self._refresh.verify(challenge, session_identifier, now=now, max_age=lifetime)
        except TimedMACError as err:
            raise self._challenge_required(f"refresh challenge {err.reason}", session_identifier, now) from None
        assert isinstance(challenge, str)  # noqa: S101 - verified above
        return RefreshProof(session_identifier, _replay_key(challenge), issued + self.policy.challenge_lifetime)

    def replayed(self, proof: RefreshProof, *, now: float) -> DBSCChallengeRequired:
        """The error to raise when `use_once` says the refresh proof's challenge was already used."""
        return self._challenge_required("refresh challenge replayed", proof.session_identifier, now)

    def _proof(self, responses: Sequence[str], *, registration: bool) -> tuple[Any, ProofKey | None]:
        """The one `Secure-Session-Response` JWT, header checked (and its key parsed on registration)."""
        if isinstance(responses, str) or len(responses) != 1:
            raise ProofFormatError("exactly one Secure-Session-Response is needed")
        # The draft makes the value an sf-string; Chromium 156 sends the bare JWT, which parses as an sf-token.
        proof = parse_string_item(responses[0], allow_token=True)
        jws = split_compact(proof, max_bytes=self.policy.max_proof_bytes)
        header = jws.header
        if header.get("typ") != DBSC_TYPE:
            raise ProofFormatError("typ is not dbsc+jwt")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.policy.algorithms:
            raise ProofFormatError("alg not allowed")
        if not {"alg", "typ", "jwk"}.issuperset(header):
            raise ProofFormatError("header parameter not allowed")
        if not registration:
            if "jwk" in header:
                raise ProofFormatError("jwk on refresh")
            return jws, None
        if "jwk" not in header:
            raise ProofFormatError("jwk missing")
        key = parse_public_jwk(header["jwk"], alg)
        if not key.verify(jws.signing_input, jws.signature):
            raise ProofFormatError("bad signature")
        return jws, key

    # -- the short cookie ------------------------------------------------------------------------------

    def bound_cookie(self, *, session_identifier: str, now: float) -> tuple[str, str, int]:
        """`(name, value, max_age)` of a new short cookie for this session; set it with the policy's
        `cookie_attributes` (Path=/, Secure, HttpOnly, SameSite) and `Max-Age=max_age`."""
        value = self._cookie.issue(_check_id(session_identifier), now=now)
        return self.policy.cookie_name, value, int(self.policy.cookie_lifetime)

    def check_bound_cookie(self, values: Sequence[str], *, session_identifier: str, now: float) -> None:
        """Accept the request's short-cookie values (exactly one) for this device-bound session, or raise
        `DBSCRefused` (missing, several, foreign, another session's, expired): the request must then be
        treated as signed out until the browser refreshes."""
        if isinstance(values, str) or len(values) != 1:
            raise DBSCRefused("short cookie missing or repeated")
        try:
            self._cookie.verify(values[0], session_identifier, now=now, max_age=self.policy.cookie_lifetime)
        except TimedMACError as err:
            raise DBSCRefused(f"short cookie {err.reason}") from None
