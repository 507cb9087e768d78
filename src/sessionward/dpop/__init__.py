"""DPoP: OAuth 2.0 Demonstrating Proof of Possession (RFC 9449), framework-free and I/O-free.

A token bound to a client's key (`cnf.jkt`) is useless without that key: every use needs a fresh proof,
a JWS signed by the key over the request's method and URL (and the token's hash).

Wiring (the adapters do only this):
- token endpoint (`/api/login`, `/api/refresh`): `verifier.verify(method=, url=, proofs=, now=)` when the
  request has a `DPoP` header -> `DPoPProof`; `store.use_once(proof.replay_key, proof.replay_until, now)`
  (False -> `raise verifier.replayed(proof)`); issue tokens with `proof.confirmation` as extra claims,
  `token_type: "DPoP"`; on refresh, `check_refresh_binding(verifier, bound_jkt=, proof=)` first;
- protected resource: `parse_authorization(values, algs=)` -> `(scheme, token)`; verify the token as today;
  `check_token_binding(verifier, scheme=, access_token=, jkt=token_jkt(claims.extra, algs=), method=, url=,
  proofs=, now=)` -> proof or None; `use_once` as above;
- every `DPoPError` carries its answer: `status` + `resource_headers()` at a resource (a `DPoP` challenge
  with `error=` and `algs=`), `token_endpoint_status` + `token_endpoint_headers()` + `token_endpoint_body()` at
  the token endpoint (`invalid_dpop_proof` also for no proof where DPoP is required, RFC 9449 5);
- a resource request without credentials: 401 `verifier.challenge()` (`DPoP algs="..."`, no error code,
  RFC 9449 7.1), after `Bearer realm=...` in the same header where Bearer is accepted too (RFC 9449 7.2);
  `sessionward.web.dpop.www_authenticate` picks the challenge of every token refusal;
- `verifier.nonce_to_send(proof, now=)` -> a `DPoP-Nonce` header for successful answers (nonces on).

The replay store operation (to add to the stores; specified here for them):

    use_once(key: str, until: float, now: float) -> bool

Atomically records `key` as used until `until` (epoch seconds) and returns True, or returns False if `key` is
already recorded with `until > now` (a live entry). An entry whose `until <= now` counts as absent and is
replaced. Every instance sharing the store sees the same answer; two concurrent calls with one key: exactly
one True. Store unreachable -> `StoreUnavailable` (fail closed: 503). Keys are <= 100 ASCII characters
(`dpop-jti:<64 hex>`, `dbsc-challenge:<64 hex>`).
- SQL: table `sw_once(key VARCHAR(100) PRIMARY KEY, until DOUBLE PRECISION NOT NULL)`;
  `INSERT INTO sw_once (key, until) VALUES (:key, :until) ON CONFLICT (key) DO UPDATE SET until =
  excluded.until WHERE sw_once.until <= :now` (PostgreSQL and SQLite >= 3.24); True iff one row was
  affected (`rowcount == 1`). Expired rows are deleted in batches by the existing purge (`DELETE FROM sw_once
  WHERE until <= :now`).
- Redis: `SET <prefix>once:<key> 1 NX PXAT <ceil(until * 1000)>` (or `PX <ceil((until - now) * 1000)>`,
  at least 1): True iff the reply is OK. Redis expires the key itself.
"""

from __future__ import annotations

from .errors import (
    DPoPBindingError,
    DPoPError,
    InvalidDPoPAuthorization,
    InvalidDPoPProof,
    MissingDPoPProof,
    UseDPoPNonce,
    challenge,
)
from .htu import normalize_htu
from .policy import DEFAULT_ALGORITHMS, DPoPMode, DPoPPolicy
from .proof import DPOP_TYPE, DPoPProof, DPoPVerifier, access_token_hash, replay_key
from .resource import check_refresh_binding, check_token_binding, parse_authorization, token_jkt

__all__ = [
    "DEFAULT_ALGORITHMS",
    "DPOP_TYPE",
    "DPoPBindingError",
    "DPoPError",
    "DPoPMode",
    "DPoPPolicy",
    "DPoPProof",
    "DPoPVerifier",
    "InvalidDPoPAuthorization",
    "InvalidDPoPProof",
    "MissingDPoPProof",
    "UseDPoPNonce",
    "access_token_hash",
    "challenge",
    "check_refresh_binding",
    "check_token_binding",
    "normalize_htu",
    "parse_authorization",
    "replay_key",
    "token_jkt",
]
