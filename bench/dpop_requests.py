"""The whole request, in process: `app.wsgi_app(environ, start_response)` on the Flask extension's
`@jwt_required()` route (bench.sw_apps), a plain sessionward Bearer request beside a DPoP-bound one (token
verify, proof verify, `cnf.jkt` binding and the replay check `store.use_once`, one store write), on SQLite and
on Redis with the local cache, and Flask-JWT-Extended's plain HS256 bearer as the anchor. Part of
`python -m bench.dpop` (one run prints both tables).

Every DPoP request carries a new proof (a new `jti`: a proof is good once), signed before its batch is timed
(the client's signing is not the server's cost). Each value is the fastest of three batches of `n` requests,
the median over `rounds` rounds (min..max beside it); the bare Flask view is not subtracted (whole requests)."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from werkzeug.test import EnvironBuilder

from .anchors import _fje_app, _fje_setup
from .inproc import _one, _start_response
from .sw_apps import _sw_jwt_app, close_app

BASE = "https://localhost/"
PATH = "/protected"
URL = "https://localhost/protected"


def _environ(headers: dict[str, str]) -> dict[str, Any]:
    return EnvironBuilder(path=PATH, headers=headers, base_url=BASE).get_environ()


def _check(app: Any, environ: dict[str, Any]) -> None:
    _one(app.wsgi_app, environ)
    status = _start_response.status  # type: ignore[attr-defined]
    if not status.startswith("200"):
        raise RuntimeError(f"{app.name}: expected 200, got {status}")


def _batches(make: Callable[[int], list[dict[str, Any]]], app: Any, n: int, rounds: int) -> list[float]:
    """us/request per round: the fastest of three batches of `n` fresh environs (made before each batch)."""
    wsgi = app.wsgi_app
    out = []
    for _ in range(rounds):
        best = float("inf")
        for _ in range(3):
            environs = make(n)
            start = time.perf_counter_ns()
            for environ in environs:
                _one(wsgi, environ)
            best = min(best, (time.perf_counter_ns() - start) / n / 1000)
            if not _start_response.status.startswith("200"):  # type: ignore[attr-defined]
                raise RuntimeError(f"{app.name}: a timed request got {_start_response.status}")  # type: ignore[attr-defined]
        out.append(best)
    return out


#: the proof algorithms of the whole-request rows: the default client's, and RSA, whose verify is the cheapest
#: (the client pays a slower signature and a larger proof instead; `SESSIONWARD_DPOP_ALGS` must name it)
PROOF_ALGS = ("ES256", "RS256")


def _sw_rows(workdir: Path, backend: str, cache: bool, n: int, rounds: int) -> list[tuple[str, list[float]]]:
    from dpop_client import DPoPClient  # tests/ is on sys.path (bench.dpop puts it there)

    from sessionward.flask import state, token_service

    label = "SQLite" if backend == "sqlite" else "Redis + local cache"
    app = _sw_jwt_app(workdir, "ES256", backend, cache, SESSIONWARD_DPOP_ALGS=" ".join(PROOF_ALGS))
    try:
        clients = {alg: DPoPClient(alg) for alg in PROOF_ALGS}
        with app.app_context():
            st = state()
            user = st.users.get_by_username("bench-dpop") or st.users.create("bench-dpop", "bench dpop passphrase 1")
            plain = token_service().issue(user.id, fresh=False).access_token
            bound = {alg: token_service().issue(user.id, fresh=False, dpop_jkt=c.jkt).access_token
                     for alg, c in clients.items()}
        bearer_env = _environ({"Authorization": f"Bearer {plain}"})
        _check(app, bearer_env)

        def bearer(count: int) -> list[dict[str, Any]]:
            return [bearer_env] * count

        def dpop_of(alg: str) -> Callable[[int], list[dict[str, Any]]]:
            client, token = clients[alg], bound[alg]

            def dpop(count: int) -> list[dict[str, Any]]:
                return [_environ({"Authorization": f"DPoP {token}",
                                  "DPoP": client.proof("GET", URL, access_token=token)}) for _ in range(count)]

            return dpop

        for alg in PROOF_ALGS:
            _check(app, dpop_of(alg)(1)[0])
        for _ in range(2):  # warm up: token cache, header cache, connections
            _batches(bearer, app, max(50, n // 10), 1)
            for alg in PROOF_ALGS:
                _batches(dpop_of(alg), app, max(50, n // 10), 1)
        rows = [(f"sessionward Bearer, {label}", _batches(bearer, app, n, rounds))]
        for alg in PROOF_ALGS:
            rows.append((f"sessionward DPoP {alg}, {label}", _batches(dpop_of(alg), app, n, rounds)))
        return rows
    finally:
        close_app(app)


def _fje_row(workdir: Path, n: int, rounds: int) -> tuple[str, list[float]]:
    headers = _fje_setup("HS256", False)(workdir)
    app = _fje_app(workdir, "HS256", blocklist=False)
    env = _environ(headers)
    _check(app, env)
    return "Flask-JWT-Extended HS256 Bearer (anchor)", _batches(lambda count: [env] * count, app, n, rounds)


def run_requests(n: int, rounds: int, *, redis: bool = True) -> list[tuple[str, list[float]]]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rows = _sw_rows(workdir, "sqlite", False, n, rounds)
        if redis:
            rows += _sw_rows(workdir, "redis", True, n, rounds)
        rows.append(_fje_row(workdir, n, rounds))
    return rows


def table(rows: list[tuple[str, list[float]]]) -> str:
    """Rows with their ratio to the sessionward Bearer row of the same store."""
    lines = [f"{'whole request (in process)':<46} {'us/req':>8} {'min..max':>15} {'x bearer':>9}"]
    base = None
    for name, values in rows:
        med = statistics.median(values)
        if "Bearer" in name and name.startswith("sessionward"):
            base = med
        ratio = f"{med / base:9.2f}" if base and not name.startswith("Flask") else f"{'':>9}"
        lines.append(f"{name:<46} {med:8.1f} {min(values):7.1f}..{max(values):<7.1f} {ratio}")
    return "\n".join(lines)


def goal_table(primitives: list[tuple[str, list[float]]], requests: list[tuple[str, list[float]]]) -> str:
    """Issue 11's goal row by row (a DPoP request at most 2x the same store's Bearer request, and below
    Flask-JWT-Extended's HS256 Bearer), beside the floor measured in the same run: the Bearer request plus the
    two parts a DPoP request cannot skip: the proof's signature check alone, and one claim (`use_once`) timed
    after other work as it comes inside a request."""
    med = {name: statistics.median(values) for name, values in requests}
    claim: dict[str, float] = {}
    last = ""
    for name, values in primitives:  # the claim after other work: the row below each store's claim row
        if name.startswith("replay check"):
            last = "SQLite" if "SQLite" in name else "Redis + local cache"
        elif name.strip().startswith("the same, after") and last:
            claim[last] = statistics.median(values)
        else:
            med[name] = statistics.median(values)
    claim = {store: us for store, us in claim.items() if f"sessionward Bearer, {store}" in med}
    fje = med["Flask-JWT-Extended HS256 Bearer (anchor)"]
    lines = [f"{'goal (issue 11)':<46} {'x bearer':>9} {'floor':>7} {'2x?':>6} {'< FJE?':>7}"]
    for store, claim_us in claim.items():
        bearer = med[f"sessionward Bearer, {store}"]
        for alg in PROOF_ALGS:
            dpop = med[f"sessionward DPoP {alg}, {store}"]
            floor = (bearer + med[f"signature only {alg}"] + claim_us) / bearer
            lines.append(f"{f'DPoP {alg}, {store}':<46} {dpop / bearer:9.2f} {floor:7.2f} "
                         f"{'met' if dpop <= 2 * bearer else 'missed':>6} {'yes' if dpop < fje else 'no':>7}")
    lines.append("floor: (Bearer request + signature only + one claim after other work) / Bearer request, all")
    lines.append("       from this run; the signature is timed in a tight loop, so the floor is if anything low")
    return "\n".join(lines)
