"""The results: a Markdown table with every goal checked as a ratio measured in the same run, and a chart."""

from __future__ import annotations

import math
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .apps import BY_NAME
from .http import HttpResult
from .inproc import InprocResult, LoginResult
from .scale import StoreScale

#: Why a goal is missed, from profiling sessionward's paths (the `profile` part: cProfile of each sessionward
#: variant and the cost of each store call against the same lookup done with the driver directly).
#: Shown only next to a goal that this run did not meet.
_SQL_CALL = ("each SQLStore call costs ~85-160 us, of which the SQLite lookup is 3-6 us (see 'Store calls'): the rest "
             "is SQLAlchemy Core building the statement and its cache key, pool checkout and BEGIN/COMMIT per call")
_JWT_SQL = ("the signature is not the cost (verified-token cache hit); `verify_access` makes 3 store calls per request "
            "(`is_denied`, `get_epoch`, the token family via `get`) and `jwt_required` adds the user row (`get_user`); "
            + _SQL_CALL)
_PUBLIC = ("no store call on a public page (profiled); the extra is per response: sessionward's security headers "
           "(8 `Headers.setdefault`, about half) and `_finish_response` parsing the Cookie header to decide whether to "
           "expire a dead session cookie, which it could skip when no session was loaded (`g._sw_session` unset)")
PROFILED_AT = "d30c36f"
REASONS: dict[str, str] = {
    "jwt_hs256": _JWT_SQL,
    "jwt_es256": _JWT_SQL,
    "jwt_eddsa": _JWT_SQL,
    "jwt_revocable": "4 Redis round trips per request (`is_denied`, `get_epoch`, and the family: id pointer GET + "
                     "HGETALL; ~50-75 us each) plus the user row in SQL; there is no local revocation cache kept "
                     "current by pub/sub yet",
    "cookie_sqlite": "`SessionManager.load` makes 2 store calls (`get_by_secret`, `get_epoch`); " + _SQL_CALL,
    "cookie_redis": "3 Redis round trips per request (secret pointer GET, record HGETALL, epoch GET) where "
                    "Flask-Session makes 2 (GET, SET); a Lua script or a pipeline could make it 1",
    "http": "the same per-request store calls as in-process (see the goals above and the profile); with 2 sync "
            "workers on 2 cores every us of Python on the request path costs throughput",
    "bytes_SQLite": "the row plus 4 indexes: the 64-hex-char secret hash twice (table + unique index), the id twice "
                    "(rowid table + primary-key index), the user id twice, the 70-char user agent; a 32-byte BLOB "
                    "hash and a WITHOUT ROWID table would save ~100 B",
    "bytes_Redis": "per session a 15-field hash (field names repeated in every record, floats as repr text), two "
                   "pointer keys (id, secret hash) with Redis's per-key overhead, and a user-index member (split in "
                   "the note below)",
    "public_sw_cookie_sqlite": _PUBLIC,
    "public_sw_cookie_redis": _PUBLIC,
    "lookup_SQLite": "lookup latency is dominated by SQLAlchemy's per-call overhead, not by the index depth",
    "lookup_Redis": "3 round trips per lookup, independent of the number of keys",
}


#: The what-if rows (bench.whatif: lower bounds for the suggested fixes) shown next to a goal.
WHATIF: dict[str, tuple[str, ...]] = {
    "cookie_sqlite": ("whatif_cookie_sqlite",),
    "jwt_revocable": ("whatif_jwt_core_local", "whatif_jwt_local"),
}


@dataclass
class Goal:
    key: str
    text: str
    value: float
    limit: float
    better: str  # "<=" or ">="
    shown: str

    @property
    def met(self) -> bool:
        if math.isnan(self.value):
            return False
        return self.value <= self.limit if self.better == "<=" else self.value >= self.limit


def _ratio(a: float, b: float) -> float:
    return a / b if b and b > 0 else float("nan")


def goals(inproc: InprocResult | None, login: LoginResult | None, http: HttpResult | None,
          scale: list[StoreScale]) -> list[Goal]:
    out: list[Goal] = []
    if inproc is not None:
        o = {k: s.median for k, s in inproc.overhead.items()}

        def rel(key: str, text: str, ours: str, theirs: str, limit: float) -> None:
            if ours in o and theirs in o:
                r = _ratio(o[ours], o[theirs])
                shown = f"{o[ours]:.0f} / {o[theirs]:.0f} us = {r:.2f}x"
                for w in WHATIF.get(key, ()):
                    if w in o:
                        shown += f"; {BY_NAME[w].label}: {o[w]:.0f} us = {_ratio(o[w], o[theirs]):.2f}x"
                out.append(Goal(key, text, r, limit, "<=", shown))

        rel("jwt_hs256", "JWT HS256 overhead vs FJE HS256", "sw_jwt_hs256", "fje_hs256", 0.25)
        rel("jwt_es256", "JWT ES256 overhead vs FJE ES256", "sw_jwt_es256", "fje_es256", 0.35)
        rel("jwt_eddsa", "JWT EdDSA overhead vs FJE EdDSA", "sw_jwt_eddsa", "fje_eddsa", 0.35)
        rel("jwt_revocable", "revocable JWT (denylist, epoch, family) vs FJE + Redis blocklist", "sw_jwt_hs256_redis",
            "fje_hs256_redis_bl", 0.2)
        rel("cookie_sqlite", "cookie session on SQLite vs Flask signed cookie", "sw_cookie_sqlite", "flask_cookie", 1.0)
        rel("cookie_redis", "cookie session on Redis vs Flask-Session + Redis", "sw_cookie_redis",
            "flask_session_redis", 0.4)
        for name in ("sw_cookie_sqlite", "sw_cookie_redis"):
            if name in inproc.public_overhead:
                v = inproc.public_overhead[name].median
                out.append(Goal(f"public_{name}", f"public page with the cookie ({BY_NAME[name].label}): extra us over bare",
                                v, 15.0, "<=", f"{v:.1f} us (limit: headers only, no store access)"))
    if http is not None:
        for name, limit in (("sw_jwt_hs256", 0.90), ("sw_jwt_es256", 0.90), ("sw_jwt_eddsa", 0.90),
                            ("sw_jwt_hs256_redis", 0.90), ("sw_cookie_sqlite", 0.85), ("sw_cookie_redis", 0.80)):
            if name in http.ratio:
                r = http.median_ratio(name)
                out.append(Goal(f"http_{name}", f"HTTP throughput, {BY_NAME[name].label}, ratio to bare", r, limit, ">=",
                                f"{r:.2f}"))
    for s in scale:
        out.append(Goal(f"lookup_{s.store}", f"{s.store}: lookup at {s.n:,} vs at 1k", s.lookup_ratio, 2.0, "<=",
                        f"{s.lookup_n_us:.1f} / {s.lookup_1k_us:.1f} us = {s.lookup_ratio:.2f}x"))
        out.append(Goal(f"bytes_{s.store}", f"{s.store}: bytes per session", s.bytes_per_session, 400, "<=",
                        f"{s.bytes_per_session:.0f} B"))
    if login is not None:
        r = _ratio(login.login_ms.median, login.verify_ms.median)
        out.append(Goal("login", "login (throttle, user, verify, session) vs one argon2 verify", r, 1.2, "<=",
                        f"{login.login_ms.median:.1f} / {login.verify_ms.median:.1f} ms = {r:.2f}x"))
    return out


def _fmt_series(s: Any) -> str:
    return f"{s.median:.1f} ({s.lo:.1f}..{s.hi:.1f})"


def markdown(*, mode: str, started: str, elapsed: float, inproc: InprocResult | None, login: LoginResult | None,
             http: HttpResult | None, scale: list[StoreScale], profile: dict[str, list[str]],
             load: tuple[float, float] = (float("nan"), float("nan"))) -> str:
    lines = [
        f"# sessionward benchmark ({mode} mode)",
        "",
        f"Run {started}, {elapsed:.0f} s, Python {platform.python_version()}, {platform.machine()}, "
        f"{_cpus()} CPUs, load average {load[0]:.1f} at the start and {load[1]:.1f} at the end. Only ratios within "
        "this run count; absolute numbers are noisy on a shared machine.",
        "",
    ]
    if max(load) > _cpus():
        lines += [f"**The machine was busy with other work (load average above {_cpus()}): treat this run's ratios as "
                  "rough.**", ""]
    gs = goals(inproc, login, http, scale)
    if gs:
        lines += ["## Goals", "", f"Reasons for missed goals come from profiling at commit {PROFILED_AT} (the profile "
                  "below is this run's own; where they disagree, the code has changed since).", "",
                  "| goal | measured | limit | met |", "|---|---|---|---|"]
        for g in gs:
            verdict = "yes" if g.met else "**no**"
            if not g.met and g.key in REASONS:
                verdict += f": {REASONS[g.key]}"
            elif not g.met and g.key.startswith("http_") and REASONS.get("http"):
                verdict += f": {REASONS['http']}"
            lines.append(f"| {g.text} | {g.shown} | {g.better} {g.limit:g} | {verdict} |")
        lines.append("")
    if inproc is not None:
        lines += [
            "## In-process cost per authenticated request",
            "",
            f"`app.wsgi_app(environ)` called directly; {inproc.rounds} rounds x {inproc.n} requests, order alternating. "
            "Overhead = us/request minus the bare Flask view in the same round: median (min..max over rounds). "
            "Rows marked what-if are lower bounds for suggested fixes, not sessionward (see `bench/whatif.py`).",
            "",
            "| variant | us/request | overhead over bare, us | public page with credential, extra us |",
            "|---|---|---|---|",
        ]
        for name, s in inproc.absolute.items():
            lines.append(f"| {BY_NAME[name].label} | {_fmt_series(s)} | {_fmt_series(inproc.overhead[name])} | "
                         f"{_fmt_series(inproc.public_overhead[name])} |")
        lines.append("")
    if login is not None:
        lines += [
            "## Login",
            "",
            f"{login.params}; median (min..max) of {len(login.verify_ms.values)}.",
            "",
            "| step | ms |",
            "|---|---|",
            f"| one argon2 verify | {_fmt_series(login.verify_ms)} |",
            f"| whole login: throttle check, user lookup, verify, rehash check, throttle reset, new session | "
            f"{_fmt_series(login.login_ms)} |",
            "",
        ]
    if http is not None:
        lines += [
            "## HTTP throughput",
            "",
            f"gunicorn, 2 sync workers, loopback, load generator: {http.generator}, 16 connections, "
            f"{http.duration:g} s per run, {http.rounds} round(s); each round runs bare first and last and the variants "
            "between (order reversed in odd rounds). Ratio = requests/s over the mean of that round's bare runs.",
            "",
            "| variant | requests/s | ratio to bare |",
            "|---|---|---|",
        ]
        for name, rates in http.rps.items():
            rps = sum(rates) / len(rates)
            ratio = "1.00" if name == "bare" else f"{http.median_ratio(name):.2f}"
            lines.append(f"| {BY_NAME[name].label} | {rps:,.0f} | {ratio} |")
        lines.append("")
    if scale:
        lines += [
            "## Store scale",
            "",
            "`get_by_secret` latency median (p90) over 2,000 random live sessions; bulk path and details in "
            "`bench/scale.py`; purge with 10% of the sessions dead.",
            "",
            "| store | sessions | insert/s via `create` | insert/s bulk | lookup @1k, us | lookup @N, us | bytes/session | purge |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for s in scale:
            lines.append(
                f"| {s.store} | {s.n:,} | {s.api_insert_per_s:,.0f} | {s.bulk_insert_per_s:,.0f} | "
                f"{s.lookup_1k_us:.1f} ({s.lookup_1k_p90_us:.1f}) | {s.lookup_n_us:.1f} ({s.lookup_n_p90_us:.1f}) | "
                f"{s.bytes_per_session:.0f} | {s.purged:,} in {s.purge_s:.1f} s |"
            )
        lines += [""] + [f"- {s.store} bytes: {s.bytes_note}" for s in scale] + [""]
    if profile:
        lines += ["## Profile (cProfile, in-process, top functions by own time)", ""]
        for name, rows in profile.items():
            title = "Store calls on the request path" if name == "store_calls" else BY_NAME[name].label
            lines += [f"**{title}**", "", "```", *rows, "```", ""]
    return "\n".join(lines)


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


_COLORS = {"anchor": "#c44e52", "sessionward": "#4c72b0", "what-if": "#999999"}


def chart(path: Path, *, inproc: InprocResult | None, http: HttpResult | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in (inproc, http) if p is not None]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 6), squeeze=False)
    ax_iter = iter(axes[0])
    if inproc is not None:
        ax = next(ax_iter)
        names = [n for n in inproc.overhead if n != "bare"]
        med = [inproc.overhead[n].median for n in names]
        err = [[m - inproc.overhead[n].lo for n, m in zip(names, med)], [inproc.overhead[n].hi - m for n, m in zip(names, med)]]
        colors = [_COLORS[BY_NAME[n].family] for n in names]
        ax.barh([BY_NAME[n].label for n in names], med, xerr=err, color=colors)
        ax.invert_yaxis()
        ax.set_xlabel("overhead over a bare Flask view, us/request (median, min..max)")
        ax.set_title("In-process overhead (red: anchors, blue: sessionward, grey: what-if)")
    if http is not None:
        ax = next(ax_iter)
        names = [n for n in http.rps if n != "bare"]
        ratios = [http.median_ratio(n) for n in names]
        colors = [_COLORS[BY_NAME[n].family] for n in names]
        ax.barh([BY_NAME[n].label for n in names], ratios, color=colors)
        ax.axvline(1.0, color="black", lw=0.8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1.1)
        ax.set_xlabel(f"HTTP requests/s relative to bare Flask ({http.generator})")
        ax.set_title("HTTP, gunicorn 2 sync workers")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
