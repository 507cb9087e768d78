"""In-process cost per request: `app.wsgi_app(environ, start_response)` called directly, no server, no socket.

Every round runs every variant once (forward order in even rounds, reversed in odd rounds, so slow drift
of the machine does not favour one side), `n` requests each (the fastest of three batches), and the bare Flask
view in the same round is subtracted: overhead(variant, round) = us/request(variant) - us/request(bare). We
report the median over rounds and the spread (min..max).

Token variants are measured twice: *hot* (one token sent again and again: sessionward's verified-token cache
answers) and *cold* (`cold_tokens` distinct tokens of the same client, cycled in order: more than the cache
holds, so a least-recently-used cache never hits and every request verifies a signature; the cache's own hit
counter is checked to stay at zero). Flask-JWT-Extended has no cache; its cold row shows that.
"""

from __future__ import annotations

import gc
import itertools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from werkzeug.test import EnvironBuilder

from .anchors import bare_app
from .apps import PASSWORD, Variant, close_app


@dataclass
class Series:
    """Per-round values in microseconds."""

    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def lo(self) -> float:
        return min(self.values) if self.values else float("nan")

    @property
    def hi(self) -> float:
        return max(self.values) if self.values else float("nan")


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    _start_response.status = status  # type: ignore[attr-defined]


def make_caller(app: Any, path: str, headers: dict[str, str] | list[dict[str, str]], *,
                expect: str) -> Callable[[], None]:
    """A function that performs one request and checks its status (a wrong status aborts the bench: a
    variant that answers 401 fast proves nothing). With a list of headers, each call sends the next one,
    cycling in order; every one of them is checked once first."""
    many = headers if isinstance(headers, list) else [headers]
    environs = [EnvironBuilder(path=path, headers=h, base_url="https://localhost/").get_environ() for h in many]
    wsgi = app.wsgi_app
    for environ in environs:
        _one(wsgi, environ)
        status = _start_response.status  # type: ignore[attr-defined]
        if not status.startswith(expect):
            raise RuntimeError(f"{app.name} {path}: expected {expect}, got {status}")
    if len(environs) == 1:
        environ = environs[0]
        return lambda: _one(wsgi, environ)
    following = itertools.cycle(environs).__next__
    return lambda: _one(wsgi, following())


def _one(wsgi: Any, environ: dict[str, Any]) -> None:
    body = wsgi(dict(environ), _start_response)
    try:
        for _ in body:
            pass
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


BATCHES = 3


def _time_per_call(call: Callable[[], None], n: int) -> float:
    """Microseconds per call: the fastest of `BATCHES` batches of `n // BATCHES` calls (the machine is shared:
    the fastest batch is the one least disturbed by other processes)."""
    for _ in range(max(5, n // 20)):  # warm caches (and the token cache) before timing
        call()
    gc.collect()
    per = max(1, n // BATCHES)
    best = float("inf")
    for _ in range(BATCHES):
        start = time.perf_counter_ns()
        for _ in range(per):
            call()
        best = min(best, (time.perf_counter_ns() - start) / per / 1000)
    return best


@dataclass
class Primitive:
    """One signing algorithm's floor: PyJWT's algorithm object with a prepared key, and the token it makes."""

    alg: str
    sign_us: Series
    verify_us: Series
    token_bytes: int


def run_primitives(*, repeats: int, rounds: int = 3) -> list[Primitive]:
    """Sign and verify cost of each algorithm sessionward offers (the best of `rounds` batches of `repeats`,
    RS256 signing with a tenth of them), and the size of a sessionward access token signed with it."""
    from sessionward.tokens import SigningKey, TokenPolicy
    from sessionward.tokens.claims import build_access_claims
    from sessionward.tokens.jws import ALGORITHM_OBJECTS, sign_compact

    def per_call(fn: Callable[[], object], count: int) -> Series:
        out = Series()
        for _ in range(rounds):
            start = time.perf_counter_ns()
            for _ in range(count):
                fn()
            out.values.append((time.perf_counter_ns() - start) / count / 1000)
        return out

    policy = TokenPolicy(issuer="https://bench.sessionward.test", audience="bench-api")
    payload = build_access_claims(policy, user_id="u" * 22, family_id="f" * 22, epoch=0, fresh=False,
                                  now=time.time(), jti="j" * 22)
    out = []
    for alg in ("HS256", "ES256", "Ed25519", "RS256"):
        key = SigningKey.generate(alg, now=0)
        algorithm = ALGORITHM_OBJECTS[alg]
        signer = algorithm.prepare_key(key.private)
        verifier = algorithm.prepare_key(key.verifying_key())
        token = sign_compact(payload, key, {"kid": key.kid, "typ": "at+jwt"})
        message, _, _ = token.rpartition(".")
        data = message.encode()
        signature = algorithm.sign(data, signer)
        assert algorithm.verify(data, verifier, signature)
        # Bound as defaults: per_call runs each lambda within this iteration, before the names are rebound.
        sign = per_call(lambda algorithm=algorithm, data=data, signer=signer: algorithm.sign(data, signer),
                        repeats // 10 if alg == "RS256" else repeats)
        verify = per_call(lambda algorithm=algorithm, data=data, verifier=verifier, signature=signature:
                          algorithm.verify(data, verifier, signature), repeats)
        out.append(Primitive(alg, sign, verify, len(token)))
    return out


@dataclass
class InprocResult:
    rounds: int
    n: int
    absolute: dict[str, Series]  # us/request, /protected
    overhead: dict[str, Series]  # us/request minus bare, /protected
    public_overhead: dict[str, Series]  # us/request minus bare, /public with the credential sent
    cold_overhead: dict[str, Series] = field(default_factory=dict)  # token variants: distinct tokens cycled
    cold_tokens: int = 0
    #: hot, with the CPU caches disturbed between requests (`Disturber`): us/request minus bare's, same disturber
    disturbed_overhead: dict[str, Series] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    primitives: list[Primitive] = field(default_factory=list)


def run_inproc(variants: list[Variant], workdir: Path, headers: dict[str, dict[str, str]], *, rounds: int, n: int,
               log: Callable[[str], None], cold: dict[str, list[dict[str, str]]] | None = None,
               disturbed: bool = False) -> InprocResult:
    """`cold`: for token variants, the distinct credentials their cold rows cycle through. `disturbed`: also time
    the `DISTURBED` variants with the CPU caches disturbed between requests (`Disturber`)."""
    apps: dict[str, Any] = {}
    try:
        for v in variants:
            apps[v.name] = v.make_app(workdir)  # a local cache is healthy before this returns
        resets_before = _cache_resets(apps)
        disturber = Disturber(bare_app(workdir)) if disturbed else None
        result = _rounds(variants, apps, headers, rounds=rounds, n=n, log=log, cold=cold or {}, disturber=disturber)
        for name, before in resets_before.items():
            store = _cached_store(apps[name])
            if store is not None and (store._session != before or not store.healthy):
                result.warnings.append(f"{name}: the local cache was reset or unhealthy during timing "
                                       "(some requests read through to Redis)")
                log(f"  WARNING {result.warnings[-1]}")
        return result
    finally:
        for app in apps.values():
            close_app(app)


def _cached_store(app: Any) -> Any:
    from .apps import app_stores

    return next((s for s in app_stores(app) if hasattr(s, "wait_healthy") and s.healthy), None)


def _cache_resets(apps: dict[str, Any]) -> dict[str, int]:
    """For each app with a healthy local cache: its subscription counter (`CachedStore` moves it on every reset)."""
    out = {}
    for name, app in apps.items():
        store = _cached_store(app)
        if store is not None:
            out[name] = store._session
    return out


def token_cache(app: Any) -> Any:
    """The verified-token cache of a sessionward token app (extension or bench core app), or None."""
    from sessionward.flask.extension import EXTENSION_KEY

    st = app.extensions.get(EXTENSION_KEY)
    service = (st.tokens if st is not None else None) or app.extensions.get("bench_tokens")
    return getattr(service, "_cache", None)


#: The variants also timed with disturbed caches: the configurations of the HTTP goals, their core-only twins, the
#: headers anchor and two anchors of other libraries (does their code suffer as much?)
DISTURBED = ("bare", "bare_headers", "flask_cookie", "fje_hs256", "sw_cookie_sqlite", "sw_cookie_redis_cache",
             "sw_jwt_hs256", "sw_jwt_hs256_core", "sw_jwt_hs256_redis_cache", "sw_jwt_hs256_core_redis_cache",
             "sw_jwt_es256_redis_cache")
DISTURB_REQUESTS = 3  #: requests to another bare Flask app between two timed requests
DISTURB_BYTES = 2 << 20  #: and a read of this much memory, one byte per 64-byte cache line


class Disturber:
    """What a server does between two requests of one worker, in miniature: it runs its own code (parsing,
    the kernel's network path, gunicorn) that moves the request path's code and data out of the CPU caches, which
    a tight in-process loop never does. Here: `DISTURB_REQUESTS` requests to another bare Flask app (Flask's own
    code stays warm, as it does in a server, where every request runs it) and a read of `DISTURB_BYTES`. A
    variant's disturbed overhead is its time minus bare's, both with the disturber, so the disturber cancels."""

    def __init__(self, app: Any) -> None:
        self._call = make_caller(app, "/protected", {}, expect="200")
        self._lines = memoryview(bytearray(DISTURB_BYTES))[::64]

    def __call__(self) -> None:
        for _ in range(DISTURB_REQUESTS):
            self._call()
        bytes(self._lines)


def _rounds(variants: list[Variant], apps: dict[str, Any], headers: dict[str, dict[str, str]], *, rounds: int,
            n: int, log: Callable[[str], None], cold: dict[str, list[dict[str, str]]],
            disturber: Disturber | None = None) -> InprocResult:
    cold_callers = {v.name: make_caller(apps[v.name], "/protected", cold[v.name], expect="200")
                    for v in variants if v.name in cold}
    cold_overhead = {name: Series() for name in cold_callers}
    cold_hits = 0
    callers = {
        v.name: (
            make_caller(apps[v.name], "/protected", headers[v.name], expect="200"),
            make_caller(apps[v.name], "/public", headers[v.name], expect="200"),
        )
        for v in variants
    }
    absolute = {v.name: Series() for v in variants}
    overhead = {v.name: Series() for v in variants}
    public_overhead = {v.name: Series() for v in variants}
    names = [v.name for v in variants]
    disturbed_names = [name for name in names if name in DISTURBED] if disturber is not None else []
    disturbed_overhead = {name: Series() for name in disturbed_names if name != "bare"}
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        protected: dict[str, float] = {}
        public: dict[str, float] = {}
        cold_us: dict[str, float] = {}
        disturbed: dict[str, float] = {}
        for name in order:
            prot_call, pub_call = callers[name]
            protected[name] = _time_per_call(prot_call, n)
            public[name] = _time_per_call(pub_call, n)
            if name in disturbed_names and disturber is not None:
                disturbed[name] = _time_per_call(_after(disturber, prot_call), n // 2)
            if name in cold_callers:
                cache = token_cache(apps[name])
                before = cache.hits if cache is not None else 0
                cold_us[name] = _time_per_call(cold_callers[name], n)
                cold_hits += (cache.hits - before) if cache is not None else 0
        for name, us in cold_us.items():
            cold_overhead[name].values.append(us - protected["bare"])
        for name, series in disturbed_overhead.items():
            series.values.append(disturbed[name] - disturbed["bare"])
        for name in names:
            absolute[name].values.append(protected[name])
            overhead[name].values.append(protected[name] - protected["bare"])
            public_overhead[name].values.append(public[name] - public["bare"])
        log(f"  in-process round {r + 1}/{rounds}: bare {protected['bare']:.1f} us")
    result = InprocResult(rounds=rounds, n=n, absolute=absolute, overhead=overhead, public_overhead=public_overhead,
                          cold_overhead=cold_overhead, cold_tokens=max((len(c) for c in cold.values()), default=0),
                          disturbed_overhead=disturbed_overhead)
    if cold_hits:
        result.warnings.append(f"the verified-token cache answered {cold_hits} cold requests: those rows are not cold")
    return result


def _after(first: Callable[[], None], call: Callable[[], None]) -> Callable[[], None]:
    def both() -> None:
        first()
        call()

    return both


@dataclass
class LoginResult:
    verify_ms: Series
    login_ms: Series
    params: str


def run_login(workdir: Path, *, repeats: int, log: Callable[[str], None]) -> LoginResult:
    """One argon2 verify (production parameters) against a whole sessionward login: throttle check,
    user lookup, verify, rehash check, throttle reset, session creation."""
    from sessionward.auth import Authenticator
    from sessionward.clock import SystemClock
    from sessionward.config import ThrottlePolicy
    from sessionward.db import make_engine
    from sessionward.passwords import Argon2idHasher, PasswordPolicy
    from sessionward.sessions import SessionManager
    from sessionward.stores.sql import SQLStore
    from sessionward.throttle import LoginThrottle
    from sessionward.users import UserStore

    clock = SystemClock()
    hasher = Argon2idHasher()
    engine = make_engine(f"sqlite:///{workdir / 'login.sqlite3'}")
    users = UserStore(engine, hasher=hasher, policy=PasswordPolicy(), clock=clock)
    store = SQLStore(engine)
    user = users.get_by_username("login-user") or users.create("login-user", PASSWORD)
    auth = Authenticator(users=users, hasher=hasher, throttle=LoginThrottle(store, ThrottlePolicy(), clock),
                         clock=clock)
    sessions = SessionManager(store=store, clock=clock)
    verify, login = Series(), Series()
    for i in range(repeats + 1):
        t0 = time.perf_counter_ns()
        assert hasher.verify(user.password_hash, PASSWORD)
        t1 = time.perf_counter_ns()
        u = auth.authenticate("login-user", PASSWORD, ip="127.0.0.1")
        sessions.login(u.id, user_agent="bench", ip="127.0.0.1")
        t2 = time.perf_counter_ns()
        if i:  # the first pair warms up
            verify.values.append((t1 - t0) / 1e6)
            login.values.append((t2 - t1) / 1e6)
    p = hasher.parameters
    log(f"  login: verify {verify.median:.1f} ms, login {login.median:.1f} ms")
    return LoginResult(verify, login, f"argon2id m={p.memory_cost} KiB, t={p.time_cost}, p={p.parallelism}")
