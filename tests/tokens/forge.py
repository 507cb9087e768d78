"""Helpers to forge tokens the way an attacker would: raw compact JWS built by hand or with PyJWT."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def compact(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    """A compact JWS from parts, signature as given (not computed)."""
    h = b64u(json.dumps(header, separators=(",", ":")).encode())
    p = b64u(json.dumps(payload, separators=(",", ":")).encode())
    return f"{h}.{p}.{b64u(signature)}"


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    h, p, s = token.split(".")
    return json.loads(unb64u(h)), json.loads(unb64u(p)), unb64u(s)


def resign(token: str, key: Any, *, alg: str, header: dict[str, Any] | None = None, **payload_changes: Any) -> str:
    """Re-sign a real token's payload (with changes; a value of `...` deletes the claim) under `key`,
    with `header` replacing the JOSE header (PyJWT adds `alg`)."""
    old_header, payload, _ = parts(token)
    for name, value in payload_changes.items():
        if value is ...:
            payload.pop(name, None)
        else:
            payload[name] = value
    hdr = dict(old_header if header is None else header)
    hdr.pop("alg", None)
    # PyJWS signs any payload bytes (jwt.encode would refuse e.g. a list-valued iss).
    return jwt.PyJWS().encode(json.dumps(payload).encode(), key, algorithm=alg, headers=hdr)
