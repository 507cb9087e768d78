"""The goals of issues 5 and 9, each checked as a ratio measured in the same run. Where sessionward has several
configurations for a goal, the best one measured in the run is used (every configuration keeps server-side
revocation), and the goal row names it; the cold-token goals hold for each configuration on its own.

Every ratio comes with its spread: the ratio of each round (ours and theirs measured in the same round), min..max.
A goal is met when the whole spread is within the limit, missed when all of it is beyond, and "within noise"
when the spread straddles the limit."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .apps import BY_NAME
from .http import HttpResult
from .inproc import InprocResult, LoginResult
from .scale import StoreScale


@dataclass(frozen=True)
class Spec:
    """A goal: the best (lowest overhead / highest throughput) of `ours` against `theirs`."""

    key: str
    text: str
    ours: tuple[str, ...]  #: sessionward configurations that may meet it; each keeps revocation
    theirs: str
    limit: float


INPROC_GOALS = (
    Spec("jwt_hs256", "JWT HS256 overhead vs FJE HS256", ("sw_jwt_hs256", "sw_jwt_hs256_redis_cache"), "fje_hs256",
         0.25),
    Spec("jwt_es256", "JWT ES256 overhead vs FJE ES256", ("sw_jwt_es256", "sw_jwt_es256_redis_cache"), "fje_es256",
         0.35),
    Spec("jwt_eddsa", "JWT EdDSA overhead vs FJE EdDSA", ("sw_jwt_eddsa", "sw_jwt_eddsa_redis_cache"), "fje_eddsa",
         0.35),
    Spec("jwt_revocable", "revocable JWT (denylist, epoch, family) vs FJE + Redis blocklist",
         ("sw_jwt_hs256_redis", "sw_jwt_hs256_redis_cache"), "fje_hs256_redis_bl", 0.2),
    Spec("cookie_sqlite", "cookie session on SQLite vs Flask signed cookie", ("sw_cookie_sqlite",), "flask_cookie",
         1.0),
    Spec("cookie_redis", "cookie session on Redis vs Flask-Session + Redis",
         ("sw_cookie_redis", "sw_cookie_redis_cache"), "flask_session_redis", 0.4),
)
#: Cold tokens (distinct tokens cycled, the verified-token cache never hits) against the anchor's own cold row;
#: each sessionward configuration separately (SQLite, and Redis + local cache).
COLD_GOALS = (
    Spec("cold_jwt_hs256", "cold-token JWT HS256 overhead vs FJE HS256", ("sw_jwt_hs256", "sw_jwt_hs256_redis_cache"),
         "fje_hs256", 0.35),
    Spec("cold_jwt_es256", "cold-token JWT ES256 overhead vs FJE ES256", ("sw_jwt_es256", "sw_jwt_es256_redis_cache"),
         "fje_es256", 0.5),
    Spec("cold_jwt_eddsa", "cold-token JWT EdDSA overhead vs FJE EdDSA", ("sw_jwt_eddsa", "sw_jwt_eddsa_redis_cache"),
         "fje_eddsa", 0.5),
)
HTTP_GOALS = (
    Spec("http_jwt_hs256", "HTTP throughput, JWT HS256, ratio to bare", ("sw_jwt_hs256", "sw_jwt_hs256_redis_cache"),
         "bare", 0.90),
    Spec("http_jwt_es256", "HTTP throughput, JWT ES256, ratio to bare", ("sw_jwt_es256", "sw_jwt_es256_redis_cache"),
         "bare", 0.90),
    Spec("http_jwt_eddsa", "HTTP throughput, JWT EdDSA, ratio to bare", ("sw_jwt_eddsa", "sw_jwt_eddsa_redis_cache"),
         "bare", 0.90),
    Spec("http_jwt_revocable", "HTTP throughput, revocable JWT on Redis, ratio to bare",
         ("sw_jwt_hs256_redis", "sw_jwt_hs256_redis_cache"), "bare", 0.90),
    Spec("http_cookie_sqlite", "HTTP throughput, cookie session on SQLite, ratio to bare", ("sw_cookie_sqlite",),
         "bare", 0.88),
    Spec("http_cookie_redis", "HTTP throughput, cookie session on Redis, ratio to bare",
         ("sw_cookie_redis", "sw_cookie_redis_cache"), "bare", 0.80),
    Spec("http_redis_cache", "HTTP throughput, Redis + local cache (cookie session), ratio to bare",
         ("sw_cookie_redis_cache",), "bare", 0.90),
)


@dataclass
class Goal:
    key: str
    text: str
    value: float
    limit: float
    better: str  # "<=" or ">="
    shown: str
    config: str = ""  # the variant measured for this goal (the best of its candidates)
    noisy: bool = False  # an HTTP ratio above 1: the bare runs were disturbed, so no verdict
    lo: float = math.nan  # the spread of the per-round values (nan: one value only)
    hi: float = math.nan

    def _ok(self, v: float) -> bool:
        return v <= self.limit if self.better == "<=" else v >= self.limit

    @property
    def spread(self) -> tuple[float, float]:
        if math.isnan(self.lo) or math.isnan(self.hi):
            return self.value, self.value
        return self.lo, self.hi

    @property
    def met(self) -> bool:
        """Met with the whole spread: every round within the limit."""
        if math.isnan(self.value) or self.noisy:
            return False
        return all(self._ok(v) for v in self.spread)

    @property
    def within_noise(self) -> bool:
        """The spread straddles the limit: neither met nor missed."""
        if math.isnan(self.value) or self.noisy:
            return False
        return any(self._ok(v) for v in self.spread) and not self.met

    @property
    def shown_spread(self) -> str:
        lo, hi = self.spread
        return "" if lo == hi else f" (rounds {lo:.2f}..{hi:.2f})"


def _ratio(a: float, b: float) -> float:
    return a / b if b and b > 0 else float("nan")


def _round_ratios(ours: list[float], theirs: list[float]) -> tuple[float, float]:
    """min..max of the per-round ratios (both measured in the same round)."""
    ratios = [_ratio(a, b) for a, b in zip(ours, theirs, strict=True)]
    ratios = [r for r in ratios if not math.isnan(r)]
    return (min(ratios), max(ratios)) if ratios else (math.nan, math.nan)


def _inproc_goal(spec: Spec, series: dict[str, Any], have: list[str], key: str, text: str) -> Goal:
    o = {k: s.median for k, s in series.items()}
    best = min(have, key=lambda n: o[n])
    r = _ratio(o[best], o[spec.theirs])
    lo, hi = _round_ratios(series[best].values, series[spec.theirs].values)
    shown = f"{o[best]:.0f} / {o[spec.theirs]:.0f} us = {r:.2f}x (rounds {lo:.2f}..{hi:.2f})"
    for n in have:
        if n != best:
            shown += f"; other config, {BY_NAME[n].label}: {o[n]:.0f} us = {_ratio(o[n], o[spec.theirs]):.2f}x"
    return Goal(key, f"{text}; config: {BY_NAME[best].label}", r, spec.limit, "<=", shown, best, lo=lo, hi=hi)


def goals(inproc: InprocResult | None, login: LoginResult | None, http: HttpResult | None,
          scale: list[StoreScale]) -> list[Goal]:
    out: list[Goal] = []
    if inproc is not None:
        for spec in INPROC_GOALS:
            have = [n for n in spec.ours if n in inproc.overhead]
            if have and spec.theirs in inproc.overhead:
                out.append(_inproc_goal(spec, inproc.overhead, have, spec.key, spec.text + " (hot: one token)"
                                        if spec.key.startswith("jwt_") else spec.text))
        for spec in COLD_GOALS:
            if spec.theirs not in inproc.cold_overhead:
                continue
            for n in spec.ours:
                if n in inproc.cold_overhead:
                    out.append(_inproc_goal(spec, inproc.cold_overhead, [n], f"{spec.key}:{n}",
                                            f"{spec.text} ({inproc.cold_tokens:,} distinct tokens cycled)"))
        for name in ("sw_cookie_sqlite", "sw_cookie_redis"):
            if name in inproc.public_overhead:
                v = inproc.public_overhead[name].median
                s = inproc.public_overhead[name]
                out.append(Goal(f"public_{name}",
                                f"public page with the cookie ({BY_NAME[name].label}): extra us over bare",
                                v, 15.0, "<=", f"{v:.1f} us (rounds {s.lo:.1f}..{s.hi:.1f}; limit: headers only, no "
                                "store access)", name, lo=s.lo, hi=s.hi))
    if http is not None:
        for spec in HTTP_GOALS:
            have = [n for n in spec.ours if n in http.ratio]
            if not have:
                continue
            best = max(have, key=http.median_ratio)
            r = http.median_ratio(best)
            rounds = http.ratio.get(best) or [r]
            spread = f" (rounds {min(rounds):.2f}..{max(rounds):.2f})" if len(rounds) > 1 else ""
            others = "".join(f"; other config, {BY_NAME[n].label}: {http.median_ratio(n):.2f}"
                             for n in have if n != best)
            shown = f"{r:.2f}" + spread + others
            out.append(Goal(spec.key, f"{spec.text}; config: {BY_NAME[best].label}", r, spec.limit, ">=", shown, best,
                            noisy=r > 1.05, lo=min(rounds), hi=max(rounds)))
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
