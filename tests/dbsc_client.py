"""A DBSC browser as the W3C WebAppSec draft (w3c/webappsec-dbsc d346811) describes one, minus the HTTP:
it reads a `Secure-Session-Registration` offer, makes a key (real, from `cryptography`; ES256 or RS256),
signs the registration proof (`typ: dbsc+jwt`, `jwk` in the header, payload `jti` = the challenge and the
offer's `authorization`), keeps the session instructions, caches `Secure-Session-Challenge` values for its
session, and signs refresh proofs (no `jwk`; payload `jti` = the cached challenge).

Headers are returned as dicts so that the e2e tests can send them with any HTTP client. `forge` signs any
header and payload for the negative tests. The structured-field parsing here is deliberately independent
of the server's (`sessionward.sfv`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from dpop_client import b64u, new_private_key, public_jwk
from jwt.algorithms import get_default_algorithms

_ALGS = get_default_algorithms()
_PARAM = re.compile(r';\s*([a-z*][a-z0-9_.*-]*)="((?:[^"\\]|\\.)*)"')


def _sf_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_registration(header: str) -> dict[str, Any]:
    """The first entry of a `Secure-Session-Registration` value: `algorithms` and its string parameters."""
    match = re.match(r"\s*\(([^)]*)\)", header)
    if match is None:
        raise ValueError(f"not a registration offer: {header!r}")
    entry = header[match.end():].split(",", 1)[0]
    params = {k: re.sub(r"\\(.)", r"\1", v) for k, v in _PARAM.findall(entry)}
    return {"algorithms": match[1].split(), **params}


def parse_challenge(header: str) -> tuple[str, str]:
    """`(challenge, session id)` of a `Secure-Session-Challenge` value."""
    match = re.fullmatch(r'\s*"((?:[^"\\]|\\.)*)"\s*;\s*id="((?:[^"\\]|\\.)*)"\s*', header)
    if match is None:
        raise ValueError(f"not a challenge: {header!r}")
    return match[1], match[2]


class DBSCBrowser:
    """One browser profile with (at most) one device-bound session. `prefer`: the algorithm it picks when
    the server offers several (Chrome prefers ES256)."""

    def __init__(self, prefer: tuple[str, ...] = ("ES256", "RS256")) -> None:
        self.prefer = prefer
        self.alg: str | None = None
        self.private_key: Any = None
        self.session_id: str | None = None
        self.instructions: dict[str, Any] | None = None
        self.cached_challenge: str | None = None

    def forge(self, header: Mapping[str, Any] | bytes, payload: Mapping[str, Any] | bytes, *,
              alg: str | None = None, key: Any = None) -> str:
        head = header if isinstance(header, bytes) else json.dumps(header).encode()
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        signing_input = f"{b64u(head)}.{b64u(body)}".encode("ascii")
        signature = _ALGS[alg or self.alg or "ES256"].sign(signing_input, self.private_key if key is None else key)
        return f"{signing_input.decode()}.{b64u(signature)}"

    def register(self, offer_header: str) -> dict[str, str]:
        """Act on a registration offer: make a key, return the registration request's headers (to POST to
        the offer's `path`)."""
        offer = parse_registration(offer_header)
        self.alg = next(alg for alg in self.prefer if alg in offer["algorithms"])
        self.private_key = new_private_key(self.alg)
        payload: dict[str, Any] = {"jti": offer["challenge"]}
        headers: dict[str, str] = {}
        if "authorization" in offer:
            payload["authorization"] = offer["authorization"]
            headers["Authorization"] = offer["authorization"]
        proof = self.forge({"alg": self.alg, "typ": "dbsc+jwt", "jwk": self.public_jwk}, payload)
        headers["Secure-Session-Response"] = _sf_string(proof)
        return headers

    @property
    def public_jwk(self) -> dict[str, str]:
        assert self.alg is not None
        return public_jwk(self.private_key, self.alg)

    def accept_instructions(self, body: Mapping[str, Any]) -> None:
        """Keep the session the registration (or a refresh) answer describes, as the draft's "create a
        session" does (checking the shape the draft requires)."""
        assert body.get("continue", True) is True
        assert isinstance(body["session_identifier"], str) and body["session_identifier"]
        assert body["scope"]["include_site"] in (True, False)
        assert all(c["type"] == "cookie" and c["name"] for c in body["credentials"])
        self.session_id = body["session_identifier"]
        self.instructions = dict(body)

    def observe(self, response_headers: Mapping[str, str]) -> None:
        """Cache a `Secure-Session-Challenge` meant for this session."""
        value = response_headers.get("Secure-Session-Challenge")
        if value is not None:
            challenge, session_id = parse_challenge(value)
            if session_id == self.session_id:
                self.cached_challenge = challenge

    def refresh_headers(self) -> dict[str, str]:
        """The refresh request's headers: the session id, and a proof over the cached challenge if any."""
        assert self.session_id is not None
        headers = {"Sec-Secure-Session-Id": _sf_string(self.session_id)}
        if self.cached_challenge is not None:
            proof = self.forge({"alg": self.alg, "typ": "dbsc+jwt"}, {"jti": self.cached_challenge})
            headers["Secure-Session-Response"] = _sf_string(proof)
        return headers
