"""DPoP in a web adapter, framework-free: the shared steps of the Flask and the ASGI wiring of `sessionward.dpop`.

An adapter passes request facts (the `Authorization` value, the `DPoP` header values, the method, the URL it
reconstructs with `request_url`) and gets decisions; it keeps only the store call (`use_once`, sync or async)
and the copying of a `DPoPError`'s answer into a response.

- `authorization(value, verifier)`: `(scheme, token)` of an `Authorization` header: `Bearer` keeps its strict
  shape check (`InvalidAuthorizationHeader`), `DPoP` is parsed by `dpop.parse_authorization`; None for no header
  or another scheme.
- `check_resource(...)`: `dpop.check_token_binding` plus the per-route requirement (`dpop=True`: a Bearer token
  is refused with `invalid_token`, whatever the deployment's policy). A bound token is checked on EVERY route
  (with or without `dpop=True`): a stolen bound token is never accepted as a Bearer token anywhere.
- `token_endpoint_proof(...)`: the proof of a login or refresh request (None when it sent none and DPoP is
  not required).
- `request_url(scheme, host, raw_path)`: the `htu` the server compares: scheme and host as the app already
  decided them (behind `SESSIONWARD_TRUSTED_PROXIES` only from the forwarded headers), the raw request path
  as the client sent it, no query.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from urllib.parse import quote

from ..bearer import header_token
from ..dpop import (
    DPoPBindingError,
    DPoPProof,
    DPoPVerifier,
    check_token_binding,
    parse_authorization,
    token_jkt,
)
from ..tokens import Claims

__all__ = ["authorization", "check_resource", "path_from_wsgi", "request_url", "token_endpoint_proof"]

_PATH_SAFE = "/:@!$&'()*+,;=-._~%"


def authorization(value: str | None, verifier: DPoPVerifier) -> tuple[str, str] | None:
    """`(scheme, token)` from one `Authorization` value (repeated headers already joined with ", ")."""
    if value is None:
        return None
    if value[:5].lower() == "dpop ":
        parsed = parse_authorization([value], algs=verifier.policy.algorithms)
        return parsed if parsed is not None and parsed[0] == "DPoP" else None
    token = header_token(value)
    return None if token is None else ("Bearer", token)


def request_url(scheme: str, host: str, raw_path: str) -> str:
    """The URL the proof's `htu` must name (query dropped; `normalize_htu` compares the rest)."""
    return f"{scheme}://{host}{raw_path.split('?', 1)[0] or '/'}"


def path_from_wsgi(environ: dict[str, object]) -> str:
    """The request path as sent: the server's raw request target (gunicorn `RAW_URI`, werkzeug `REQUEST_URI`)
    when it is a path, else SCRIPT_NAME + PATH_INFO percent-encoded again (WSGI decodes them as latin-1)."""
    for name in ("RAW_URI", "REQUEST_URI"):
        raw = environ.get(name)
        if isinstance(raw, str) and raw.startswith("/"):
            return raw.split("?", 1)[0]
    path = f"{environ.get('SCRIPT_NAME', '')}{environ.get('PATH_INFO', '')}"
    return quote(path.encode("latin-1", "replace"), safe=_PATH_SAFE) or "/"


def check_resource(
    verifier: DPoPVerifier,
    *,
    scheme: str,
    token: str,
    claims: Claims,
    method: str,
    url: Callable[[], str],
    proofs: Callable[[], Sequence[str]],
    now: float,
    require: bool = False,
) -> DPoPProof | None:
    """Decide a verified token at a protected resource. Returns the proof to spend with `use_once` (bound
    token), or None (an acceptable Bearer token). `url` and `proofs` are asked for only when a proof is
    checked (the plain Bearer path stays free of them). Raises `DPoPError` (401 with its `WWW-Authenticate`)."""
    jkt = token_jkt(claims.extra)
    if jkt is None and require:
        raise DPoPBindingError("route requires a DPoP-bound token", algs=verifier.policy.algorithms)
    if jkt is None and scheme != "DPoP" and verifier.policy.mode != "required":
        return None  # the plain Bearer path: two dictionary reads, nothing else
    return check_token_binding(
        verifier, scheme=scheme, access_token=token, jkt=jkt, method=method, url=url(), proofs=proofs(), now=now
    )


def token_endpoint_proof(
    verifier: DPoPVerifier, *, method: str, url: str, proofs: Sequence[str], now: float
) -> DPoPProof | None:
    """The checked proof of a login/refresh request; None without a `DPoP` header (or with DPoP off, where
    proofs are ignored). Raises `InvalidDPoPProof`/`UseDPoPNonce` (a 400 at the token endpoint), and
    `DPoPBindingError` at login when DPoP is required and no proof came."""
    policy = verifier.policy
    if not policy.enabled:
        return None
    if not proofs:
        if policy.mode == "required":
            raise DPoPBindingError("DPoP required, token request without a proof", algs=policy.algorithms)
        return None
    return verifier.verify(method=method, url=url, proofs=proofs, now=now)
