"""The ASGI part (`python -m bench --only asgi`): sessionward's Starlette/FastAPI adapter against the ASGI anchors,
side by side in one run.

- In-process: the app called directly as ASGI (`await app(scope, receive, send)`, no server, no socket) inside
  its lifespan, `n` requests per variant per round (the fastest of three batches), the variants in alternating
  order each round; overhead = us/request minus the bare app of the same framework (Starlette or FastAPI) in
  that round. Median and spread (min..max) over rounds.
- HTTP: each app under gunicorn with uvicorn workers (`uvicorn_worker.UvicornWorker`, the same 2 workers and
  `reuse_port` for every app, `bench.asgi_serve`), loaded by `bench.http.measure` (wrk, else `bench.loadgen`);
  a variant's ratio is its rate over the mean of the same round's two runs of its framework's bare app.

Goals (issue 10): in-process overhead at most 1.0x Starlette's signed cookie (sessionward on SQLite) and at most
0.3x starsessions on Redis (sessionward on Redis + local cache); HTTP ratio to bare at least 0.85. A goal is met
only when every round is within its limit, "within noise" when the rounds straddle it (as `bench.goals`).
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import asgi_anchors as anchors
from .asgi_anchors import HTTP_OK
from .goals import Goal
from .http import ROOT, _free_port, load_generator, measure
from .inproc import Series

WORKERS = 2
BATCHES = 3


@dataclass(frozen=True)
class AsgiVariant:
    name: str
    label: str
    group: str  # "bare", "cookie", "jwt"
    framework: str  # "starlette" or "fastapi": overhead and HTTP ratio are over that framework's bare app
    family: str  # "anchor" or "sessionward"
    make_app: Callable[[Path], Any]
    setup: Callable[[Any, Path], Awaitable[dict[str, str]]] = anchors.no_setup
    needs_redis: bool = False


def variants() -> list[AsgiVariant]:
    from .asgi_sw import SW_VARIANTS

    return [
        AsgiVariant("bare_starlette", "bare Starlette", "bare", "starlette", "anchor", anchors.bare_starlette),
        AsgiVariant("bare_fastapi", "bare FastAPI", "bare", "fastapi", "anchor", anchors.bare_fastapi),
        AsgiVariant("starlette_cookie", "Starlette SessionMiddleware (signed cookie)", "cookie", "starlette",
                    "anchor", anchors.starlette_cookie, anchors.login_cookie),
        AsgiVariant("starsessions_redis", "starsessions + Redis", "cookie", "starlette", "anchor",
                    anchors.starsessions_redis, anchors.login_cookie, needs_redis=True),
        AsgiVariant("fastapi_users_jwt", "fastapi-users bearer JWT", "jwt", "fastapi", "anchor",
                    lambda w: anchors.fastapi_users_app(w, "jwt"), anchors.fastapi_users_token),
        AsgiVariant("fastapi_users_redis", "fastapi-users bearer, Redis strategy (revocable)", "jwt", "fastapi",
                    "anchor", lambda w: anchors.fastapi_users_app(w, "redis"), anchors.fastapi_users_token,
                    needs_redis=True),
        *SW_VARIANTS,
    ]


def by_name() -> dict[str, AsgiVariant]:
    return {v.name: v for v in variants()}


BARE = {"starlette": "bare_starlette", "fastapi": "bare_fastapi"}
#: (key, text, ours (best of), theirs, limit): in-process overhead ratios
INPROC_GOALS = (
    ("asgi_cookie_sqlite", "ASGI cookie session on SQLite vs Starlette's signed cookie", ("sw_asgi_cookie_sqlite",),
     "starlette_cookie", 1.0),
    ("asgi_cookie_redis", "ASGI cookie session on Redis vs starsessions + Redis",
     ("sw_asgi_cookie_redis_cache",), "starsessions_redis", 0.3),
)
#: no goal in the issue: shown for comparison (sessionward's tokens against fastapi-users')
INFO_RATIOS = (
    ("sw_asgi_jwt_sqlite", "fastapi_users_jwt"),
    ("sw_asgi_jwt_redis_cache", "fastapi_users_jwt"),
    ("sw_asgi_jwt_redis_cache", "fastapi_users_redis"),
)
HTTP_LIMIT = 0.85
NOISY = 1.05  #: an HTTP ratio above this means the round's bare runs were disturbed: no verdict


# -- in-process -------------------------------------------------------------------------------------------

class Lifespan:
    """Runs an ASGI app's lifespan around a block: `async with Lifespan(app): ...`."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def _phase(self, phase: str) -> None:
        await self.inbox.put({"type": f"lifespan.{phase}"})
        message = await asyncio.wait_for(self.outbox.get(), 30)
        if message["type"] != f"lifespan.{phase}.complete":
            raise RuntimeError(f"lifespan {phase} failed: {message}")

    async def __aenter__(self) -> Lifespan:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        self.task = asyncio.create_task(self.app(scope, self.inbox.get, self.outbox.put))
        await self._phase("startup")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._phase("shutdown")
        if self.task is not None:
            await self.task


def make_caller(app: Any, path: str, headers: dict[str, str]) -> Callable[[], Awaitable[int]]:
    """One request per call; returns the status."""
    template = anchors.make_scope("GET", path, headers)
    status = [0]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status[0] = message["status"]

    async def call() -> int:
        await app({**template, "state": {}}, receive, send)
        return status[0]

    return call


async def _time_per_call(call: Callable[[], Awaitable[int]], n: int) -> float:
    for _ in range(max(5, n // 20)):
        await call()
    gc.collect()
    per = max(1, n // BATCHES)
    best = float("inf")
    for _ in range(BATCHES):
        start = time.perf_counter_ns()
        for _ in range(per):
            await call()
        best = min(best, (time.perf_counter_ns() - start) / per / 1000)
    return best


@dataclass
class AsgiResult:
    rounds: int = 0
    n: int = 0
    absolute: dict[str, Series] = field(default_factory=dict)
    overhead: dict[str, Series] = field(default_factory=dict)
    http_rps: dict[str, list[float]] = field(default_factory=dict)
    http_ratio: dict[str, list[float]] = field(default_factory=dict)
    http_duration: float = 0.0
    generator: str = ""


async def _inproc(chosen: list[AsgiVariant], workdir: Path, *, rounds: int, n: int, log: Callable[[str], None],
                  result: AsgiResult) -> dict[str, dict[str, str]]:
    apps = {v.name: v.make_app(workdir) for v in chosen}
    spans = {name: Lifespan(app) for name, app in apps.items()}
    headers: dict[str, dict[str, str]] = {}
    for span in spans.values():
        await span.__aenter__()
    try:
        for v in chosen:
            headers[v.name] = await v.setup(apps[v.name], workdir)
        callers = {v.name: make_caller(apps[v.name], "/protected", headers[v.name]) for v in chosen}
        for name, call in callers.items():
            if (status := await call()) != HTTP_OK:  # a variant that answers 401 fast proves nothing
                raise RuntimeError(f"{name} /protected: expected 200, got {status}")
        result.rounds, result.n = rounds, n
        names = [v.name for v in chosen]
        for r in range(rounds):
            us = {name: await _time_per_call(callers[name], n) for name in (names if r % 2 == 0 else names[::-1])}
            for v in chosen:
                result.absolute.setdefault(v.name, Series()).values.append(us[v.name])
                result.overhead.setdefault(v.name, Series()).values.append(us[v.name] - us[BARE[v.framework]])
            log(f"  asgi in-process round {r + 1}/{rounds}: bare Starlette {us['bare_starlette']:.1f} us, "
                f"bare FastAPI {us['bare_fastapi']:.1f} us")
    finally:
        for span in spans.values():
            await span.__aexit__(None, None, None)
    return headers


# -- HTTP under gunicorn with uvicorn workers ------------------------------------------------------------

class AsgiServer:
    """gunicorn with `WORKERS` uvicorn workers serving one variant; stopped (process group) on exit."""

    def __init__(self, variant: AsgiVariant, workdir: Path) -> None:
        self.port = _free_port()
        env = dict(os.environ, BENCH_ASGI_VARIANT=variant.name, BENCH_WORKDIR=str(workdir), PYTHONPATH=str(ROOT))
        gunicorn = Path(sys.executable).with_name("gunicorn")
        self.proc = subprocess.Popen(
            [str(gunicorn), "-w", str(WORKERS), "-k", "uvicorn_worker.UvicornWorker", "--reuse-port",
             "-b", f"127.0.0.1:{self.port}", "--log-level", "warning", "--chdir", str(ROOT), "bench.asgi_serve:app"],
            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, headers: dict[str, str], timeout: float = 45.0) -> None:
        deadline, ready = time.monotonic() + timeout, 0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                with urllib.request.urlopen(urllib.request.Request(self.url + "/protected", headers=headers),
                                            timeout=2) as resp:
                    if resp.status == HTTP_OK:
                        ready += 1
                        if ready >= 2 * WORKERS:
                            return
                        continue
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn (uvicorn workers) did not become ready in {timeout:g} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _serve_and_measure(v: AsgiVariant, workdir: Path, headers: dict[str, str], duration: float) -> float:
    server = AsgiServer(v, workdir)
    try:
        server.wait_ready(headers)
        rps, bad = measure(server.url + "/protected", headers, duration)
    finally:
        server.stop()
    if bad:
        raise RuntimeError(f"{v.name}: {bad} responses were not 2xx/3xx")
    return rps


def _http(chosen: list[AsgiVariant], workdir: Path, headers: dict[str, dict[str, str]], *, duration: float,
          rounds: int, log: Callable[[str], None], result: AsgiResult) -> None:
    bares = [v for v in chosen if v.group == "bare"]
    others = [v for v in chosen if v.group != "bare"]
    result.http_duration, result.generator = duration, load_generator()
    for r in range(rounds):
        bare_rates: dict[str, list[float]] = {}
        rates: dict[str, float] = {}
        for v in [*bares, *(others if r % 2 == 0 else others[::-1]), *bares]:
            rps = _serve_and_measure(v, workdir, headers[v.name], duration)
            (bare_rates.setdefault(v.name, []).append(rps) if v.group == "bare" else rates.__setitem__(v.name, rps))
            result.http_rps.setdefault(v.name, []).append(rps)
            log(f"  asgi http round {r + 1}/{rounds}: {v.name:28s} {rps:8.0f} req/s")
        for v in chosen:
            base = statistics.mean(bare_rates[BARE[v.framework]])
            rate = statistics.mean(bare_rates[v.name]) if v.group == "bare" else rates[v.name]
            result.http_ratio.setdefault(v.name, []).append(rate / base)


def run_asgi(workdir: Path, *, rounds: int, n: int, http_s: float, http_rounds: int, log: Callable[[str], None],
             names: list[str] | None = None) -> AsgiResult:
    """Both parts for the chosen variants (default: all; the bare apps always)."""
    chosen = [v for v in variants() if names is None or v.group == "bare" or v.name in names]
    result = AsgiResult()
    log("ASGI in-process overhead")
    headers = asyncio.run(_inproc(chosen, workdir, rounds=rounds, n=n, log=log, result=result))
    if http_rounds:
        log(f"ASGI HTTP throughput, gunicorn + {WORKERS} uvicorn workers ({load_generator()})")
        _http(chosen, workdir, headers, duration=http_s, rounds=http_rounds, log=log, result=result)
    return result


# -- report ---------------------------------------------------------------------------------------------

def goals(result: AsgiResult) -> list[Goal]:
    out = []
    for key, text, ours, theirs, limit in INPROC_GOALS:
        have = [n for n in ours if n in result.overhead]
        if not have or theirs not in result.overhead:
            continue
        best = min(have, key=lambda n: result.overhead[n].median)
        o, t = result.overhead[best], result.overhead[theirs]
        ratios = [a / b for a, b in zip(o.values, t.values, strict=True) if b > 0]
        value = o.median / t.median if t.median > 0 else float("nan")
        lo, hi = (min(ratios), max(ratios)) if ratios else (float("nan"), float("nan"))
        out.append(Goal(key, text, value, limit, "<=", f"{o.median:.0f} / {t.median:.0f} us = {value:.2f}x "
                        f"(rounds {lo:.2f}..{hi:.2f})", best, lo=lo, hi=hi))
    names = by_name()
    for name, ratios in result.http_ratio.items():
        if names[name].family != "sessionward":
            continue
        value = statistics.median(ratios)
        out.append(Goal(f"asgi_http_{name}", f"HTTP throughput, {names[name].label}, ratio to bare "
                        f"{names[name].framework}", value, HTTP_LIMIT, ">=", f"{value:.2f}", name, noisy=value > NOISY,
                        lo=min(ratios), hi=max(ratios)))
    return out


def _verdict(g: Goal) -> str:
    if g.noisy:
        return "unclear (the bare runs were disturbed; rerun)"
    return "met" if g.met else "within noise" if g.within_noise else "missed"


def markdown(result: AsgiResult) -> str:
    names = by_name()
    lines = ["## ASGI: Starlette / FastAPI", "",
             f"In-process: {result.rounds} rounds x {result.n:,} requests per variant, the app called directly as "
             "ASGI inside its lifespan; overhead over the bare app of the same framework in the same round, median "
             "(min..max over rounds). HTTP: gunicorn with "
             f"{WORKERS} uvicorn workers (uvloop, httptools, reuse_port) per app, {result.generator}, "
             f"{result.http_duration:g} s per run, ratio to the same round's bare app of the same framework.", ""]
    gs = goals(result)
    if gs:
        lines += ["| goal | measured | limit | verdict |", "|---|---|---|---|"]
        lines += [f"| {g.text} ({names[g.config].label}) | {g.shown} | {g.better} {g.limit:g} | {_verdict(g)} |"
                  for g in gs]
        lines.append("")
    info = [(ours, theirs) for ours, theirs in INFO_RATIOS if ours in result.overhead and theirs in result.overhead]
    if info:
        lines += ["Tokens, no goal (for comparison): " + "; ".join(
            f"{names[o].label} / {names[t].label}: {result.overhead[o].median:.0f} / "
            f"{result.overhead[t].median:.0f} us = {result.overhead[o].median / result.overhead[t].median:.2f}x"
            for o, t in info if result.overhead[t].median > 0) + ".", ""]
    lines += ["![ASGI part](asgi.png)", ""]
    lines += ["| variant | framework | us/request | overhead us | HTTP req/s | HTTP ratio to bare |",
              "|---|---|---|---|---|---|"]
    for name, absolute in result.absolute.items():
        v, over = names[name], result.overhead[name]
        rps = result.http_rps.get(name)
        ratio = result.http_ratio.get(name)
        lines.append(
            f"| {v.label} | {v.framework} | {absolute.median:.1f} | {over.median:.1f} ({over.lo:.1f}..{over.hi:.1f}) | "
            + (f"{statistics.median(rps):.0f}" if rps else "-") + " | "
            + (f"{statistics.median(ratio):.2f} ({min(ratio):.2f}..{max(ratio):.2f})" if ratio else "-") + " |")
    return "\n".join(lines)


def chart(path: Path, result: AsgiResult) -> None:
    """In-process overhead and HTTP ratio per variant (red: anchors, blue: sessionward), as `bench.report`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .report import _COLORS

    names = by_name()
    rows = [n for n in result.overhead if names[n].group != "bare"]
    if not rows:
        return
    panels = 2 if result.http_ratio else 1
    fig, axes = plt.subplots(1, panels, figsize=(10 * panels, 6), squeeze=False)
    ax = axes[0][0]
    med = [result.overhead[n].median for n in rows]
    err = [[m - result.overhead[n].lo for n, m in zip(rows, med, strict=True)],
           [result.overhead[n].hi - m for n, m in zip(rows, med, strict=True)]]
    ax.barh([names[n].label for n in rows], med, xerr=err, color=[_COLORS[names[n].family] for n in rows])
    ax.invert_yaxis()
    ax.set_xlabel("overhead over the bare app of the same framework, us/request (median, min..max)")
    ax.set_title("ASGI in-process overhead (red: anchors, blue: sessionward)", fontsize=10)
    if result.http_ratio:
        ax = axes[0][1]
        shown = [n for n in rows if n in result.http_ratio]
        ax.barh([names[n].label for n in shown], [statistics.median(result.http_ratio[n]) for n in shown],
                color=[_COLORS[names[n].family] for n in shown])
        ax.axvline(1.0, color="black", lw=0.8)
        ax.axvline(HTTP_LIMIT, color="grey", lw=0.8, ls="--")
        ax.invert_yaxis()
        ax.set_xlabel(f"HTTP requests/s relative to bare ({result.generator})")
        ax.set_title(f"HTTP, gunicorn + {WORKERS} uvicorn workers", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
