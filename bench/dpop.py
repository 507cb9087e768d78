"""`python -m bench.dpop [--n N] [--rounds R]`: the in-process cost of a DPoP proof check beside a plain
sessionward bearer verify, so the goal "a DPoP request costs at most 2x a plain bearer request" can be judged.

Measured per call, in microseconds (median over rounds of the fastest of three batches, min..max beside it):
- `bearer`: `TokenService.verify_access(token)` on a real SQLite store, one token sent again and again: with
  the verified-token cache (as for a client that reuses its access token) and without it (signature checked);
- `proof <alg>`: `DPoPVerifier.verify` of a fresh proof per call (every real request carries a new proof with
  a new `jti`, so nothing is cached but the client's header: its JSON and key are parsed once per client);
- `proof <alg>, new client`: the same with the header cache cleared before each call (first request of a
  client: the `jwk` is parsed and its thumbprint computed);
- `dpop request <alg>`: `bearer` + `check_token_binding` (the proof with `ath`, the `cnf.jkt` match);
- `signature only <alg>`: the proof's signature checked alone (PyJWT's algorithm over `cryptography`), the
  part of a proof check no implementation can skip.
The replay check (`use_once`, one store write) is not in these primitive numbers; the second table
(`bench.dpop_requests`) measures whole requests through the Flask extension, `use_once` included, beside a plain
Bearer request on SQLite and on Redis + local cache, and Flask-JWT-Extended's HS256 bearer as the anchor
(`--no-requests` skips it, `--no-redis` leaves Redis out).
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the protocol client the tests use

from dpop_client import DPoPClient  # noqa: E402

from sessionward.clock import SystemClock  # noqa: E402
from sessionward.dpop import DPoPPolicy, DPoPVerifier, check_token_binding, token_jkt  # noqa: E402
from sessionward.dpop import proof as proof_module  # noqa: E402
from sessionward.popkeys import ProofKey, b64url_decode  # noqa: E402
from sessionward.stores.sql import SQLStore  # noqa: E402
from sessionward.tokens import KeySet, TokenPolicy, TokenService  # noqa: E402

URL = "https://api.bench.test/api/me"


def per_call(fn: Callable[[int], object], n: int, rounds: int) -> list[float]:
    """Microseconds per call, one value per round (each the fastest of three batches of `n`)."""
    out = []
    for _ in range(rounds):
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter_ns()
            for i in range(n):
                fn(i)
            best = min(best, (time.perf_counter_ns() - start) / n / 1000)
        out.append(best)
    return out


def per_call_between(fn: Callable[[int], object], n: int, rounds: int, *, gap_us: float = 150.0) -> list[float]:
    """`per_call`, with about `gap_us` of other work before each call, and only the calls timed: a claim inside a
    request comes after the rest of the request's work, not right after another claim (a store that went idle
    meanwhile, a Redis server that must be woken, caches that other code filled)."""
    junk = bytearray(secrets.token_bytes(1 << 20))

    def other_work() -> None:
        end = time.perf_counter_ns() + gap_us * 1000
        offset = 0
        while time.perf_counter_ns() < end:
            hashlib.sha256(junk[offset:offset + 65536]).digest()
            offset = (offset + 65536) % len(junk)

    out = []
    for _ in range(rounds):
        best = float("inf")
        for _ in range(3):
            spent = 0
            for i in range(n):
                other_work()
                start = time.perf_counter_ns()
                fn(i)
                spent += time.perf_counter_ns() - start
            best = min(best, spent / n / 1000)
        out.append(best)
    return out


def run(n: int, rounds: int) -> list[tuple[str, list[float]]]:
    clock = SystemClock()
    rows: list[tuple[str, list[float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLStore.from_url(f"sqlite:///{tmp}/bench.db")
        try:
            service = TokenService(store=store, keys=KeySet.generate("ES256", now=clock.now()),
                                   refresh_key=secrets.token_bytes(32),
                                   policy=TokenPolicy(issuer="https://bench.test", audience="bench"), clock=clock)
            clients = {alg: DPoPClient(alg) for alg in ("ES256", "Ed25519", "EdDSA", "RS256")}
            tokens = {alg: service.issue("alice", fresh=False, extra_claims={"cnf": {"jkt": c.jkt}}).access_token
                      for alg, c in clients.items()}
            plain = service.issue("alice", fresh=False).access_token
            rows.append(("bearer (verify_access, cached token)",
                         per_call(lambda _: service.verify_access(plain), n, rounds)))
            uncached = TokenService(store=store, keys=service._keys, refresh_key=secrets.token_bytes(32),
                                    policy=service.policy, clock=clock, cache_size=0)
            rows.append(("bearer (verify_access, signature checked)",
                         per_call(lambda _: uncached.verify_access(plain), n, rounds)))
            verifier = DPoPVerifier(DPoPPolicy(algorithms=tuple(clients)))
            for alg, client in clients.items():
                now = clock.now()
                token = tokens[alg]
                proofs = [client.proof("GET", URL, access_token=token, now=now) for _ in range(n)]
                plain_proofs = [client.proof("GET", URL, now=now) for _ in range(n)]

                def verify(i: int, proofs: list[str] = plain_proofs, now: float = now) -> object:
                    return verifier.verify(method="GET", url=URL, proofs=[proofs[i]], now=now)

                def cold(i: int, proofs: list[str] = plain_proofs, now: float = now) -> object:
                    proof_module._proof_key.cache_clear()
                    return verifier.verify(method="GET", url=URL, proofs=[proofs[i]], now=now)

                def request(i: int, proofs: list[str] = proofs, token: str = token, now: float = now) -> object:
                    claims = service.verify_access(token)
                    return check_token_binding(verifier, scheme="DPoP", access_token=token, jkt=token_jkt(claims.extra),
                                               method="GET", url=URL, proofs=[proofs[i]], now=now)

                key = proof_module._proof_key(plain_proofs[0].split(".", 1)[0], frozenset(clients))
                signed = [(f"{head}.{body}".encode("ascii"), b64url_decode(sig))
                          for head, body, sig in (p.split(".") for p in plain_proofs)]

                def signature(i: int, signed: list[tuple[bytes, bytes]] = signed, key: ProofKey = key) -> object:
                    return key.verify(*signed[i])

                request(0)  # the bound token and its proof really pass
                rows.append((f"signature only {alg}", per_call(signature, n, rounds)))
                rows.append((f"proof {alg}", per_call(verify, n, rounds)))
                rows.append((f"proof {alg}, new client", per_call(cold, n, rounds)))
                rows.append((f"dpop request {alg} (bearer + proof + binding)", per_call(request, n, rounds)))
            rows += _replay_rows(store, n, rounds)
        finally:
            store.close()
    return rows


def _replay_rows(sqlite_store: SQLStore, n: int, rounds: int) -> list[tuple[str, list[float]]]:
    """The replay check's own cost, the other half of the DPoP floor: `use_once` of a new key on SQLite (the side
    file) and on Redis (one round trip, whatever the local cache), beside one Redis GET."""
    from sessionward.stores.redis import RedisStore

    from .common import REDIS_PREFIX, REDIS_URL, cleanup_redis

    # keys shaped as a proof's (`replay_key`: random, 73 characters), made before timing, each used once:
    # a random key costs an SQLite claim about 1.5 us more than the short sequential ones measured before
    client = DPoPClient("ES256")
    pool = [proof_module.replay_key(client.jkt, secrets.token_urlsafe(16)) for _ in range(4 * 3 * n * rounds)]
    keys = iter(pool)
    until = time.time() + 60

    def sqlite_once(_: int) -> object:
        return sqlite_store.use_once(next(keys), until=until, now=until - 60)

    rows = [("replay check: use_once, SQLite (side file)", per_call(sqlite_once, n, rounds)),
            ("  the same, after 150 us of other work", per_call_between(sqlite_once, n, rounds))]
    prefix = REDIS_PREFIX + "dpop:"
    red = RedisStore.from_url(REDIS_URL, prefix=prefix)
    try:
        def redis_once(_: int) -> object:
            return red.use_once(next(keys), until=until, now=until - 60)

        rows.append(("replay check: use_once, Redis (one round trip)", per_call(redis_once, n, rounds)))
        rows.append(("  the same, after 150 us of other work", per_call_between(redis_once, n, rounds)))
        rows.append(("one Redis GET (round trip)", per_call(lambda _: red.client.get(prefix + "x"), n, rounds)))
    finally:
        red.close()
        cleanup_redis(prefix)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dpop", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="calls per batch")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests-n", type=int, default=500, help="requests per batch in the whole-request table")
    parser.add_argument("--no-requests", action="store_true", help="only the primitives")
    parser.add_argument("--no-redis", action="store_true", help="whole requests on SQLite only")
    args = parser.parse_args(argv)
    rows = run(args.n, args.rounds)
    bearer = statistics.median(rows[0][1])
    print(f"{'variant':<52} {'us/call':>9} {'min..max':>15} {'x bearer':>9}")
    for name, values in rows:
        med = statistics.median(values)
        print(f"{name:<52} {med:9.1f} {min(values):7.1f}..{max(values):<7.1f} {med / bearer:9.2f}")
    if not args.no_requests:
        from .dpop_requests import goal_table, run_requests, table

        requests = run_requests(args.requests_n, args.rounds, redis=not args.no_redis)
        print()
        print(table(requests))
        print()
        print(goal_table(rows, requests))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
