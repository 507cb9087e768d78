"""Why a goal was missed: this run's own numbers first (per-request counts, own time by package, sessionward's
top functions, the HTTP ratio the in-process cost predicts), then a static note on the code's structure, flagged
when the files it describes changed since it was checked. `code_state` stamps the results with the commit."""

from __future__ import annotations

import math
import os
import statistics
import subprocess
from pathlib import Path

from .goals import Goal
from .http import HttpResult
from .inproc import InprocResult
from .profile import Profile, ProfileResult, format_counts
from .scale import StoreScale

ROOT = Path(__file__).resolve().parent.parent

#: Static notes on why a goal can be missed, written against the code at `NOTES_AT` (they describe structure;
#: the numbers come from this run, see `_derived`). A note whose files changed since `NOTES_AT` is flagged in
#: the results, so an outdated note never passes for a current one.
NOTES_AT = "752a175"
_HOOKS = ("the extension's per-request hooks: one before_request (`_before_request`: the chunked-body bound, "
          "one environ lookup for the rest, and the CSRF check for unsafe methods only), `_finish_response` "
          "(after_request: `maybe_purge`, and nothing else when nothing of sessionward's ran in the request, else "
          "flag reads on the request's `RequestState` in the environ) and `SecurityHeadersMiddleware` (7 static "
          "headers, 8 with HSTS over HTTPS, one prebuilt list appended in `start_response`)")
_JWT = ("`verify_jwt_in_request` looks the app's state up once and hands it down; "
        "`TokenService.verify_access` (timed by the `AUTH_LATENCY` histogram) skips the signature on a "
        "verified-token cache hit and makes one "
        "`token_state` read (denylist, epoch and family: on SQLite no statement while the database's wal-index "
        "header is unchanged (`sessionward.walwatch`), a `PRAGMA data_version` when it moved, and a query only when "
        "another connection committed since or for a jti not seen before (answers remembered per thread in two "
        "parts, the family with the user's epoch and each jti's "
        "denylist entry, `HotReads.one_cached_in_parts`); one Redis pipeline; none on a local-cache hit; a token "
        "of an older key also reads its key's revocation marker, T14); `jwt_required` then asks `user_of` for "
        "the token's user (a gone or disabled account is refused), answered by `RecentUsers`, a per-process cache "
        "keyed by user and revocation epoch (a SQL user-row read only on a miss); plus " + _HOOKS)
NOTES: dict[str, tuple[str, tuple[str, ...]]] = {
    "jwt": (_JWT, ("src/sessionward/tokens/service.py", "src/sessionward/flask/jwt.py",
                   "src/sessionward/flask/extension.py", "src/sessionward/flask/headers.py",
                   "src/sessionward/stores/sql.py", "src/sessionward/stores/cache.py", "src/sessionward/hotsql.py")),
    "jwt_revocable": ("Flask-JWT-Extended decodes the token with PyJWT on every request and its blocklist loader "
                      "makes one Redis GET. " + _JWT,
                      ("src/sessionward/tokens/service.py", "src/sessionward/flask/jwt.py",
                       "src/sessionward/flask/extension.py", "src/sessionward/stores/redis.py",
                       "src/sessionward/stores/cache.py")),
    "cookie_sqlite": ("`SessionManager.load` (timed by the `AUTH_LATENCY` histogram) checks the secret's shape, "
                      "hashes it (SHA-256) and makes one "
                      "`load_by_secret` read (the record joined with the user's epoch; on SQLite no statement while "
                      "the wal-index header is unchanged (`sessionward.walwatch`), the query only when another "
                      "connection committed since: answers are remembered per thread, `HotReads.one_cached`); it "
                      "writes only when the idle timer is due "
                      "(`touch_interval`, 60 s). Flask's signed cookie does an HMAC check and a JSON decode, no I/O. "
                      "Plus " + _HOOKS,
                      ("src/sessionward/sessions.py", "src/sessionward/stores/sql.py", "src/sessionward/hotsql.py",
                       "src/sessionward/flask/extension.py", "src/sessionward/flask/headers.py")),
    "cookie_redis": ("without the local cache `RedisStore.load_by_secret` is 2 round trips (the secret pointer "
                     "GET, then the record GET and the epoch GET in one pipeline); with "
                     "`SESSIONWARD_LOCAL_CACHE=1` a hit is answered from memory under one lock "
                     "(`CachedStore.load_by_secret`). Plus " + _HOOKS,
                     ("src/sessionward/sessions.py", "src/sessionward/stores/redis.py",
                      "src/sessionward/stores/cache.py", "src/sessionward/flask/extension.py")),
    "public": ("a public page loads no session (`get_session` is lazy) and touches no store; it pays "
               + _HOOKS, ("src/sessionward/flask/extension.py", "src/sessionward/flask/headers.py")),
    "cold": ("a cold token pays the hot path plus, in `verify_access` on a cache miss: one regex for the shape, "
             "the header checks and the prepared key object from `jws.HeaderCache` (looked up by the header's text), "
             "PyJWT's `Algorithm.verify` for the key's one algorithm (its floor is in the signing-algorithms table), "
             "the payload's base64 and JSON (one prebuilt strict decoder), `validate_claims`, and a cache insert; on "
             "SQLite the `token_state` of a jti not seen before runs only the denylist lookup (the family and epoch "
             "stay remembered). Beyond that the cold rows cycle 5,120 distinct environs and a full verified-token "
             "cache, so they also pay memory that is not in the CPU caches (FJE's cold row shows the same effect "
             "over its hot one). Next steps: on SQLite, answer a jti not seen before from a snapshot of the (small) "
             "denylist kept per `data_version`, as the local cache does on Redis, instead of one statement; for "
             "ES256 and EdDSA the signature verify is most of what remains (signing-algorithms table), so a "
             "deployment whose cost is verification can sign with RS256 (about 3x cheaper to verify, larger tokens)",
             ("src/sessionward/tokens/service.py", "src/sessionward/tokens/jws.py", "src/sessionward/tokens/claims.py",
              "src/sessionward/stores/sql.py", "src/sessionward/hotsql.py", "src/sessionward/jsontext.py")),
    "http": ("the gap between HTTP and the tight in-process loop is the CPU caches. `perf` on the gunicorn "
             "workers under wrk (2026-11-30, by shared object) puts the extra time of a sessionward request in the "
             "interpreter itself (libpython: +120 us over bare, the kernel +8, SQLite +8), and `python -m "
             "bench.two_procs` shows no cost from two processes sharing a database; what differs is that a worker "
             "runs gunicorn's and the kernel's own code between two requests, which moves sessionward's code and "
             "data out of the caches, while bare's path (Flask's own code) runs at every request of every variant "
             "and stays warm. The in-process column with the caches disturbed moves most of the way from the tight "
             "loop toward the HTTP figure with the same code; the rest is a server's larger disturbance (the "
             "kernel's network path and gunicorn's parsing between requests) and gunicorn's own work on the "
             "security headers (the headers anchor: a few us in-process, more over HTTP, where gunicorn validates "
             "each header and the client parses it). What a request touches is what it costs there: this run "
             "already has the SQLite configurations without any statement per request while the database is "
             "unchanged (`sessionward.walwatch`: the per-request `PRAGMA data_version` cost about 40 us with "
             "disturbed caches), one before_request hook instead of two, cookies read from `HTTP_COOKIE` instead of "
             "werkzeug's walk over every header, and one environ lookup per token check. Next steps: fewer distinct "
             "functions on the hot path (the extension runs about 45 of its own per JWT request), and the security "
             "headers, which are the one fixed cost (7 or 8 headers that gunicorn validates one by one)",
             ("src/sessionward/flask/headers.py", "src/sessionward/flask/extension.py", "src/sessionward/flask/jwt.py",
              "src/sessionward/flask/context.py", "src/sessionward/hotsql.py", "src/sessionward/walwatch.py")),
    "bytes_SQLite": ("one `sw_sessions` row plus 4 indexes: the text primary key `id` (SQLite keeps it in an index "
                     "beside the rowid table), `user_id`, the unique 32-byte `secret_hash` and `expires_at` "
                     "(split in the note below the scale table). A WITHOUT ROWID table keyed by `id` would drop "
                     "the separate primary-key index", ("src/sessionward/stores/sql.py",)),
    "bytes_Redis": ("per session one compact binary record (`_redis_record` version 3: the five times as 48-bit "
                    "milliseconds, the user agent and address deflated), a secret pointer keyed by 16 bytes of the "
                    "hash, and a member of the user's index (sorted set), each key with Redis's per-key overhead "
                    "and TTL; split in the note below the scale table. The record's value (about 116 B) sits in "
                    "jemalloc's 128-byte size class: some 8 bytes more (a longer user agent or user id) move it "
                    "to the 160-byte class, 32 B more per session",
                    ("src/sessionward/stores/redis.py", "src/sessionward/stores/_redis_record.py")),
    "lookup_Redis": ("`load_by_secret` is 2 round trips whatever the number of keys (GETs are O(1)): a "
                     "difference between 1k and N is the machine (load, memory locality), not the data structure",
                     ("src/sessionward/stores/redis.py",)),
    "lookup_SQLite": ("one lookup in the unique index on the 32-byte hash, joined with the epoch: the B-tree gets "
                      "a level or two deeper between 1k and N", ("src/sessionward/stores/sql.py",)),
    "login": ("the login is one argon2 verify plus throttle reads and writes, the user lookup and the session "
              "insert", ("src/sessionward/auth.py", "src/sessionward/throttle.py", "src/sessionward/sessions.py")),
}
_NOTE_OF = {"jwt_hs256": "jwt", "jwt_es256": "jwt", "jwt_eddsa": "jwt"}


# -- reasons: this run's numbers, then the static note --------------------------------------------------

def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=20,
                              check=True).stdout.rstrip()
    except (OSError, subprocess.SubprocessError):
        return ""


def code_state() -> tuple[str, list[str]]:
    """The commit measured and the files under src/ that differ from it in the working tree."""
    head = _git("rev-parse", "--short", "HEAD").strip() or "unknown"
    dirty = [line[3:] for line in _git("status", "--porcelain", "--", "src").splitlines() if line.strip()]
    return head, dirty


def _changed_since(files: tuple[str, ...]) -> list[str]:
    if not files:
        return []
    return [f for f in _git("diff", "--name-only", NOTES_AT, "--", *files).splitlines() if f]


def _top_packages(p: Profile, k: int = 4) -> str:
    top = list(p.by_package.items())[:k]
    if "sessionward" not in dict(top):  # always show sessionward's own share
        top.append(("sessionward", p.by_package.get("sessionward", 0.0)))
    return ", ".join(f"{name} {us:.0f}" for name, us in top)


def _top_sw(p: Profile, k: int = 3) -> str:
    rows = [r for r in p.rows if r[3].startswith("sessionward/")][:k]
    return ", ".join(f"`{where.split(':')[0].removeprefix('sessionward/')}:{where.split('(')[-1].rstrip(')')}` "
                     f"{tt:.0f}" for tt, _ct, _nc, where in rows)


def _extra_cpu_us(name: str, http: HttpResult) -> float:
    """CPU us per request over bare's, from requests/s with both cores busy (server and load generator)."""
    cpus = os.cpu_count() or 1
    bare = statistics.mean(http.rps["bare"])
    return cpus / statistics.mean(http.rps[name]) * 1e6 - cpus / bare * 1e6


#: a configuration of the extension and its core-only twin (the bench's own decorator around `verify_access`)
_CORE_TWIN = {"sw_jwt_hs256": "sw_jwt_hs256_core", "sw_jwt_hs256_redis_cache": "sw_jwt_hs256_core_redis_cache"}


def _http_amplification(name: str, inproc: InprocResult, http: HttpResult, profile: ProfileResult | None) -> str:
    """Where the HTTP path costs more than the in-process one: server and load-generator CPU per request over
    bare (measured), the headers alone (the `bare_headers` anchor), and the worker profile's split."""
    x = inproc.overhead[name].median
    text = (f"over HTTP a request of this config costs about {_extra_cpu_us(name, http):.0f} us of machine time "
            f"more than bare ({os.cpu_count()} cores / requests/s), against {x:.0f} us in-process")
    disturbed = inproc.disturbed_overhead.get(name)
    if disturbed is not None and disturbed.values:
        text += (f" in a tight loop and {disturbed.median:.0f} us in-process with the CPU caches disturbed between "
                 "requests as a server's own work disturbs them")
        core = _CORE_TWIN.get(name)
        if core is not None and core in inproc.disturbed_overhead:
            text += f" (the core's `verify_access` alone, same store: {inproc.disturbed_overhead[core].median:.0f} us)"
    server, client = http.cpu_over_bare(name, "server"), http.cpu_over_bare(name, "client")
    if not math.isnan(server):
        text += f"; measured CPU per request over bare: server {server:+.0f} us, load generator {client:+.0f} us"
        headers = http.cpu_over_bare("bare_headers", "server")
        if not math.isnan(headers):
            text += (f"; sessionward's response headers alone (bare view + the same headers, no session or token) "
                     f"cost the server {headers:+.0f} us and the load generator "
                     f"{http.cpu_over_bare('bare_headers', 'client'):+.0f} us per request, ratio "
                     f"{http.median_ratio('bare_headers'):.2f}")
    if profile is not None and f"http:{name}" in profile.profiles and "http:bare" in profile.profiles:
        ours, bare = profile.profiles[f"http:{name}"], profile.profiles["http:bare"]
        diff = sorted(((ours.by_package.get(k, 0.0) - bare.by_package.get(k, 0.0), k)
                       for k in ours.by_package.keys() | bare.by_package.keys()), reverse=True)[:4]
        text += ("; the worker profile under load (CPU us under the profiler, over bare): "
                 + ", ".join(f"{k} {d:+.0f}" for d, k in diff))
    return text


def _cold_split(name: str, profile: ProfileResult) -> str:
    p = profile.profiles.get(f"cold:{name}")
    if p is None:
        return ""
    top = ", ".join(f"`{where.split('(')[-1].rstrip(')')}` {tt:+.0f}" for tt, _ct, _nc, where in p.rows[:4])
    packages = ", ".join(f"{k} {v:+.0f}" for k, v in list(p.by_package.items())[:4])
    return (f"cold minus hot under cProfile: {p.total_us:+.0f} us/request (by package: {packages}; functions, "
            f"own us: {top})")


def _derived(goal: Goal, inproc: InprocResult | None, profile: ProfileResult | None,
             http: HttpResult | None = None, scale: list[StoreScale] | None = None) -> str:
    """What this run measured about the goal's configuration."""
    name = goal.config
    parts: list[str] = []
    if goal.key.startswith("http_") and http is not None and inproc is not None and name in inproc.overhead:
        parts.append(_http_amplification(name, inproc, http, profile))
    if goal.key.startswith("cold_") and profile is not None:
        split = _cold_split(name, profile)
        if split:
            parts.append(split)
    key = name
    if goal.key.startswith("public_") and profile is not None:
        key = f"public:{name}"
        if key not in profile.profiles and "public:sw_cookie_sqlite" in profile.profiles:
            key = "public:sw_cookie_sqlite"  # the public page is profiled on one cookie app only
            parts.append("profiled on the public page of sw cookie session, SQLite")
    if profile is not None and key in profile.counts:
        parts.append(f"per request: {format_counts(profile.counts[key])}")
    if profile is not None and key in profile.profiles and not goal.key.startswith(("http_", "cold_")):
        p = profile.profiles[key]
        parts.append(f"own us under cProfile ({p.total_us:.0f} us in all) by package: {_top_packages(p)}")
        top = _top_sw(p)
        if top:
            parts.append(f"sessionward's top functions (own us): {top}")
    for s in scale or []:
        if goal.key in (f"bytes_{s.store}", f"lookup_{s.store}"):
            parts.append(s.bytes_note if goal.key.startswith("bytes_") else
                         f"p90 {s.lookup_n_p90_us:.1f} us at {s.n:,} against {s.lookup_1k_p90_us:.1f} us at 1k")
    if goal.key == "cookie_redis" and profile is not None and "flask_session_redis" in profile.counts:
        parts.append(f"Flask-Session: {format_counts(profile.counts['flask_session_redis'])}")
    if goal.key == "jwt_revocable" and profile is not None and "fje_hs256_redis_bl" in profile.counts:
        parts.append(f"FJE + blocklist: {format_counts(profile.counts['fje_hs256_redis_bl'])}")
    return "; ".join(parts)


def reason(goal: Goal, inproc: InprocResult | None, profile: ProfileResult | None,
           http: HttpResult | None = None, scale: list[StoreScale] | None = None) -> str:
    note_key = _NOTE_OF.get(goal.key, goal.key)
    if goal.key.startswith("http_"):
        note_key = "http"
    elif goal.key.startswith("cold_"):
        note_key = "cold"
    elif goal.key.startswith("public_"):
        note_key = "public"
    derived = _derived(goal, inproc, profile, http, scale)
    out = f"this run: {derived}. " if derived else ""
    if note_key in NOTES:
        text, files = NOTES[note_key]
        changed = _changed_since(files)
        stale = f" **(code changed since {NOTES_AT}: {', '.join(changed)}; check this note)**" if changed else ""
        out += f"Why (note checked at {NOTES_AT}{stale}): {text}."
    return out
