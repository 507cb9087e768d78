"""`python -m bench --quick | --full [--only inproc,login,http,scale,profile,...,asgi] [--variants a,b] [--out DIR]`

Runs by hand, never in the test suite. Needs Redis at 127.0.0.1:6379 (db 15, keys `bench:<run id>:*` only, removed
afterwards; `BENCH_REDIS_URL` overrides). Writes `results.md` and `results.png` to `bench/results/` (or `--out`),
stamped with the commit measured (`git rev-parse --short HEAD`, and any uncommitted change under src/).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sessionward.tokens.service import DEFAULT_CACHE_SIZE

from .apps import VARIANTS, cleanup_redis

MODES = {
    #        inproc rounds, requests per variant per round (hot, cold and public page each), login repeats,
    #        http seconds, http rounds, scale sessions, api sample
    "quick": dict(rounds=3, n=2_000, login=5, http_s=2.0, http_rounds=1, scale_n=100_000, api=1_000,
                  profile_calls=300),
    "full": dict(rounds=5, n=10_000, login=15, http_s=5.0, http_rounds=2, scale_n=1_000_000, api=10_000,
                 profile_calls=3000),
}
#: Distinct tokens cycled in the cold rows: more than sessionward's default verified-token cache holds
#: (SESSIONWARD_TOKEN_CACHE_SIZE), so its least-recently-used cache never hits.
COLD_TOKENS = DEFAULT_CACHE_SIZE + DEFAULT_CACHE_SIZE // 4
QUICK_HTTP_SKIP = {"sw_cookie_sqlite_user", "sw_jwt_hs256_core", "sw_jwt_hs256_core_redis_cache"}
PARTS = ("inproc", "login", "http", "scale", "profile", "login_scale", "cache_window", "https", "storm", "asgi")
#: parts of the Redis and serving work (issue 9): their own modules and sections of results.md
EXTRA = {"login_scale": dict(quick=100, full=1000), "cache_window": dict(quick=100, full=500),
         "https": dict(quick=3.0, full=10.0), "storm": dict(quick=5.0, full=15.0)}
#: the parts that measure the WSGI variants (`bench.apps`); the others set up only what they use
WSGI_PARTS = {"inproc", "profile", "http"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", dest="mode", const="quick", help="a few minutes (default)")
    mode.add_argument("--full", action="store_const", dest="mode", const="full", help="under twenty minutes")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {','.join(PARTS)}")
    parser.add_argument("--variants", default="", help="comma-separated variant names (default: all)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    mode_name = args.mode or "quick"
    cfg = MODES[mode_name]
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    unknown = parts - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}")
    variants = VARIANTS
    if args.variants:
        wanted = {"bare", *args.variants.split(",")}
        variants = [v for v in VARIANTS if v.name in wanted]

    from . import http as http_mod
    from . import inproc as inproc_mod
    from . import report
    from . import scale as scale_mod

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    load_start = os.getloadavg()[0]
    t0 = time.perf_counter()
    inproc = login = http = None
    scale: list[scale_mod.StoreScale] = []
    profile = None
    extra: list[str] = []
    cleanup_redis()
    try:
        with tempfile.TemporaryDirectory(prefix="sw-bench-") as tmp:
            workdir = Path(tmp)
            headers = {}
            if parts & WSGI_PARTS:
                log(f"[{mode_name}] setting up {len(variants)} variants in {workdir}")
                headers = {v.name: v.setup(workdir) for v in variants}
            if "inproc" in parts:
                log(f"cold tokens: {COLD_TOKENS} distinct credentials per token variant")
                cold = {v.name: v.tokens(workdir, COLD_TOKENS) for v in variants if v.tokens is not None}
                log("in-process overhead")
                inproc = inproc_mod.run_inproc(variants, workdir, headers, rounds=cfg["rounds"], n=cfg["n"], log=log,
                                               cold=cold, disturbed=True)
                inproc.primitives = inproc_mod.run_primitives(repeats=cfg["n"])
                del cold
            if "profile" in parts:
                from .profile import count_variants, profile_cold, profile_variants, store_call_costs

                log("profiling sessionward's paths")
                ours = [v for v in variants if v.family == "sessionward"]
                profile = profile_variants(ours, workdir, headers, calls=cfg["profile_calls"])
                log("profiling the cold token path against the hot one")
                profile_cold(ours, workdir, headers, profile, calls=cfg["profile_calls"])
                count_variants([v for v in variants if v.family == "anchor" and v.needs_redis], workdir, headers,
                               profile)
                store_call_costs(workdir, profile)
            if "login" in parts:
                log("login cost")
                login = inproc_mod.run_login(workdir, repeats=cfg["login"], log=log)
            if "http" in parts:
                log(f"HTTP throughput ({http_mod.load_generator()})")
                # quick mode leaves out the informational rows (they have no goal) to stay within a few minutes
                served = [v for v in variants if mode_name == "full" or v.name not in QUICK_HTTP_SKIP]
                http = http_mod.run_http(served, workdir, headers, duration=cfg["http_s"], rounds=cfg["http_rounds"],
                                         log=log)
                from .profile import HTTP_PROFILED, ProfileResult, profile_http

                log("profiling gunicorn's workers under load")
                profile = profile or ProfileResult()
                profile_http([v for v in served if v.name in HTTP_PROFILED], workdir, headers, profile,
                             duration=cfg["http_s"])
            if "scale" in parts:
                log(f"store scale ({cfg['scale_n']:,} sessions)")
                scale.append(scale_mod.run_sqlite(workdir, cfg["scale_n"], api_sample=cfg["api"], log=log))
                scale.append(scale_mod.run_redis(cfg["scale_n"], api_sample=cfg["api"], log=log))
            extra = _run_extra(parts, mode_name, workdir, log)
            if "asgi" in parts:
                from . import asgi_bench

                wanted = [n for n in args.variants.split(",") if n] or None
                asgi = asgi_bench.run_asgi(workdir, rounds=cfg["rounds"], n=cfg["n"], http_s=cfg["http_s"],
                                           http_rounds=cfg["http_rounds"], log=log, names=wanted)
                extra.append(asgi_bench.markdown(asgi))
                args.out.mkdir(parents=True, exist_ok=True)
                asgi_bench.chart(args.out / "asgi.png", asgi)
    finally:
        cleanup_redis()
    elapsed = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    text = report.markdown(mode=mode_name, started=started, elapsed=elapsed, inproc=inproc, login=login, http=http,
                           scale=scale, profile=profile, load=(load_start, os.getloadavg()[0]))
    text = "\n\n".join([text, *[t for t in extra if t]])
    (args.out / "results.md").write_text(text + "\n")
    report.chart(args.out / "results.png", inproc=inproc, http=http)
    print(text)
    log(f"done in {elapsed:.0f} s; wrote {args.out / 'results.md'} and {args.out / 'results.png'}")
    return 0


def _run_extra(parts: set[str], mode: str, workdir: Path, log: Callable[[str], None]) -> list[str]:
    """The issue-9 parts, each a markdown section of its own."""
    out = []
    if "login_scale" in parts:
        from . import redis_scale

        log("login cost against the user's live sessions (Redis)")
        out.append(redis_scale.markdown(redis_scale.run_login_scale(logins=int(EXTRA["login_scale"][mode]), log=log)))
    if "cache_window" in parts:
        from . import cache_window

        log("local cache revocation window")
        trials = int(EXTRA["cache_window"][mode])
        out.append(cache_window.markdown(cache_window.run_cache_window(trials=trials, log=log)))
    if "https" in parts:
        from . import served

        log("the reference service over HTTPS")
        out.append(served.markdown(served.run_https(workdir, duration=EXTRA["https"][mode], log=log)))
    if "storm" in parts:
        from . import storm

        log("login storm")
        out.append(storm.markdown(storm.run_storm(workdir, duration=EXTRA["storm"][mode], log=log)))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
