"""A DPoP client as RFC 9449 describes one: it holds a real private key (from `cryptography`) that never leaves
it, and signs a fresh proof for every request (`typ: dpop+jwt`, its public `jwk`, `jti`, `htm`, `htu`
without query and fragment, `iat`, `ath` when it sends an access token, the server's latest `nonce`).
It remembers the `DPoP-Nonce` a server sends (`observe`) and answers `use_dpop_nonce` by retrying once.

Signing goes through PyJWT's own algorithm objects; `forge` signs any header and payload with the client's key
(or none), so tests can build every malformed proof the server must refuse. Reused by the e2e tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import Algorithm, OKPAlgorithm, get_default_algorithms

from sessionward.popkeys import jwk_thumbprint

_ALGS: dict[str, Algorithm] = {**get_default_algorithms(), "Ed25519": OKPAlgorithm()}


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def new_private_key(alg: str) -> Any:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg in ("Ed25519", "EdDSA"):
        return ed25519.Ed25519PrivateKey.generate()
    if alg in ("RS256", "PS256"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(alg)


def public_jwk(private_key: Any, alg: str) -> dict[str, str]:
    """The public JWK of `private_key` (PyJWT's `to_jwk`), public members only."""
    full = _ALGS[alg].to_jwk(private_key.public_key(), as_dict=True)
    return {k: v for k, v in full.items() if k in ("kty", "crv", "x", "y", "n", "e")}


def private_jwk(private_key: Any, alg: str) -> dict[str, str]:
    return dict(_ALGS[alg].to_jwk(private_key, as_dict=True))


class DPoPClient:
    """One client key. `alg`: ES256 (default), Ed25519, EdDSA, RS256 or PS256."""

    def __init__(self, alg: str = "ES256", *, private_key: Any = None) -> None:
        self.alg = alg
        self.private_key = private_key if private_key is not None else new_private_key(alg)
        self.jwk = public_jwk(self.private_key, alg)
        self.jkt = jwk_thumbprint(self.jwk)
        self.nonce: str | None = None

    # -- raw signing ---------------------------------------------------------------------------------

    def forge(self, header: Mapping[str, Any] | bytes, payload: Mapping[str, Any] | bytes, *,
              alg: str | None = None, key: Any = None) -> str:
        """A compact JWS of exactly `header` and `payload` (dicts are JSON-encoded, bytes used as they are),
        signed with `key` (default: this client's private key) under `alg` (default: this client's)."""
        head = header if isinstance(header, bytes) else json.dumps(header).encode()
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        signing_input = f"{b64u(head)}.{b64u(body)}".encode("ascii")
        algorithm = _ALGS[alg or self.alg]
        signature = algorithm.sign(signing_input, self.private_key if key is None else key)
        return f"{signing_input.decode()}.{b64u(signature)}"

    # -- what a client does --------------------------------------------------------------------------

    def header(self) -> dict[str, Any]:
        return {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.jwk}

    def claims(self, method: str, url: str, *, access_token: str | None = None, now: float | None = None,
               nonce: str | None = None) -> dict[str, Any]:
        scheme, netloc, path, _, _ = urlsplit(url)
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": urlunsplit((scheme, netloc, path, "", "")),
            "iat": int(time.time() if now is None else now),
        }
        if access_token is not None:
            claims["ath"] = b64u(hashlib.sha256(access_token.encode("ascii")).digest())
        nonce = nonce if nonce is not None else self.nonce
        if nonce is not None:
            claims["nonce"] = nonce
        return claims

    def proof(self, method: str, url: str, *, access_token: str | None = None, now: float | None = None,
              nonce: str | None = None, **overrides: Any) -> str:
        """A fresh proof for one request. `overrides` replace (or, with value `...`, remove) claims."""
        claims = self.claims(method, url, access_token=access_token, now=now, nonce=nonce)
        for name, value in overrides.items():
            if value is ...:
                claims.pop(name, None)
            else:
                claims[name] = value
        return self.forge(self.header(), claims)

    def headers(self, method: str, url: str, *, access_token: str | None = None,
                now: float | None = None) -> dict[str, str]:
        """The request headers of one DPoP request: `DPoP` proof, and `Authorization: DPoP <token>`."""
        headers = {"DPoP": self.proof(method, url, access_token=access_token, now=now)}
        if access_token is not None:
            headers["Authorization"] = f"DPoP {access_token}"
        return headers

    def observe(self, response_headers: Mapping[str, str]) -> bool:
        """Remember a `DPoP-Nonce` the server sent; True if it was new (a client retries a `use_dpop_nonce`
        refusal once with it)."""
        nonce = response_headers.get("DPoP-Nonce")
        if nonce is None or nonce == self.nonce:
            return False
        self.nonce = nonce
        return True
