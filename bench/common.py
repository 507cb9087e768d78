"""What every bench app shares: the run's Redis prefix, the `Variant` record, keys and secrets in the workdir.

Redis keys (and the local cache's pub/sub channel) all start with `bench:<run id>:` in db 15; `cleanup_redis`
removes exactly the keys of this run.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
#: Each run has its own key prefix (inherited by its gunicorn workers through the environment), so two runs
#: never remove each other's keys.
RUN_ID = os.environ.setdefault("BENCH_RUN", secrets.token_hex(4))
REDIS_PREFIX = f"bench:{RUN_ID}:"
USERNAME = "bench-user"
PASSWORD = "correct horse battery staple 42"
ISSUER = "https://bench.sessionward.test"
AUDIENCE = "bench-api"


@dataclass(frozen=True)
class Variant:
    name: str
    label: str
    group: str  # "bare", "cookie", "jwt", "jwt-revocable"
    family: str  # "anchor" or "sessionward"
    setup: Callable[[Path], dict[str, str]]
    make_app: Callable[[Path], Flask]
    needs_redis: bool = False
    cached: bool = False  # sessionward with SESSIONWARD_LOCAL_CACHE=1 (a CachedStore over Redis)
    http: bool = True  # also measured over HTTP
    #: token variants: `tokens(workdir, n)` makes n distinct valid credentials of the same client (cold rows)
    tokens: Callable[[Path, int], list[dict[str, str]]] | None = None


def _redis() -> Any:
    import redis

    return redis.Redis.from_url(REDIS_URL)


def cleanup_redis(prefix: str = REDIS_PREFIX) -> int:
    """Delete every key of this run (prefix `bench:<run id>:`, or a narrower one) in the bench database.
    Returns how many."""
    if not prefix.startswith(REDIS_PREFIX):
        raise ValueError("only the bench's own keys may be removed")
    client = _redis()
    n = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=prefix + "*", count=10_000):
        batch.append(key)
        if len(batch) >= 10_000:
            n += client.unlink(*batch)
            batch.clear()
    if batch:
        n += client.unlink(*batch)
    return n


def _secret(workdir: Path, name: str, nbytes: int = 32) -> bytes:
    path = workdir / f"{name}.key"
    if not path.exists():
        path.write_text(secrets.token_bytes(nbytes).hex())
    return bytes.fromhex(path.read_text())


def _private_pem(workdir: Path, alg: str, owner: str = "fje") -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    path = workdir / f"{owner}_{alg}.pem"
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1()) if alg == "ES256" else ed25519.Ed25519PrivateKey.generate()
        path.write_bytes(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
        )
    return path.read_bytes()


def _public_pem(workdir: Path, alg: str) -> bytes:
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(_private_pem(workdir, alg), password=None)
    return private.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)


def _add_public(app: Flask) -> None:
    @app.get("/public")
    def public() -> Any:
        return "public page"


def _cookie_header(set_cookie: list[str]) -> str:
    return "; ".join(c.split(";", 1)[0] for c in set_cookie)
