"""The results: a Markdown table with every goal checked as a ratio measured in the same run (`bench.goals`,
reasons from `bench.reasons`), and a chart."""

from __future__ import annotations

import platform
import statistics
from pathlib import Path
from typing import Any

from .apps import BY_NAME
from .goals import goals
from .http import HttpResult
from .inproc import DISTURB_BYTES, DISTURB_REQUESTS, InprocResult, LoginResult
from .profile import ProfileResult, format_counts, format_profile
from .reasons import NOTES_AT, code_state, reason
from .scale import StoreScale


def _fmt_series(s: Any) -> str:
    return f"{s.median:.1f} ({s.lo:.1f}..{s.hi:.1f})"


def markdown(*, mode: str, started: str, elapsed: float, inproc: InprocResult | None, login: LoginResult | None,
             http: HttpResult | None, scale: list[StoreScale], profile: ProfileResult | None,
             load: tuple[float, float] = (float("nan"), float("nan"))) -> str:
    head, dirty = code_state()
    measured = f"commit {head}" + (f" plus uncommitted changes in {', '.join(dirty)}" if dirty else "")
    lines = [
        f"# sessionward benchmark ({mode} mode)",
        "",
        f"Run {started}, {elapsed:.0f} s, Python {platform.python_version()}, {platform.machine()}, "
        f"{_cpus()} CPUs, load average {load[0]:.1f} at the start and {load[1]:.1f} at the end. Only ratios within "
        "this run count; absolute numbers are noisy on a shared machine.",
        "",
        f"Code measured: {measured} (the installed package is the working tree).",
        "",
    ]
    if max(load) > _cpus():
        lines += [f"**The machine was busy with other work (load average above {_cpus()}): treat this run's ratios as "
                  "rough.**", ""]
    gs = goals(inproc, login, http, scale)
    if gs:
        met = sum(g.met for g in gs)
        unclear = sum(g.noisy for g in gs)
        within = sum(g.within_noise for g in gs)
        lines += ["## Goals", "",
                  f"{met} of {len(gs)} met" + (f", {within} within noise" if within else "")
                  + (f", {unclear} unclear (noise)" if unclear else "") + ". A goal is met only when the ratio of "
                  "every round is within its limit; when the rounds straddle the limit it is \"within noise\", "
                  "neither met nor missed. Hot rows send one token again and again; cold rows cycle distinct tokens "
                  "so that the verified-token cache never hits. Where sessionward has several configurations for a "
                  "goal, the row uses the "
                  "best one measured in this run (every configuration keeps server-side revocation) and names it; the "
                  "others are shown beside it. A missed goal's reason starts with this run's own numbers (store calls "
                  "and Redis round trips counted per request by wrapping the app's store, user-row reads, own time by "
                  "package and sessionward's top functions from this run's cProfile), then a note on the code's "
                  f"structure checked at commit {NOTES_AT}, flagged if the files it describes changed since.", "",
                  "| goal | measured | limit | met |", "|---|---|---|---|"]
        for g in gs:
            if g.noisy:
                verdict = "unclear: a ratio above 1 means this round's bare runs were slowed by other work; rerun"
            elif g.within_noise:
                verdict = "within noise: the rounds straddle the limit"
            else:
                verdict = "yes" if g.met else "**no**: " + reason(g, inproc, profile, http, scale)
            lines.append(f"| {g.text} | {g.shown} | {g.better} {g.limit:g} | {verdict} |")
        lines.append("")
    if inproc is not None:
        lines += [
            "## In-process cost per authenticated request",
            "",
            f"`app.wsgi_app(environ)` called directly; {inproc.rounds} rounds x {inproc.n:,} requests per variant and "
            "column, order alternating. "
            "Overhead = us/request minus the bare Flask view in the same round: median (min..max over rounds). "
            f"Hot: one token (or cookie) sent again and again. Cold (token variants): {inproc.cold_tokens:,} distinct "
            "tokens of the same client cycled in order, more than sessionward's verified-token cache holds, so every "
            "request verifies a signature (the cache's hit counter is checked to stay at zero). "
            "A local cache is healthy (subscribed, heartbeat answered, denylist loaded) before timing starts. "
            "Caches disturbed (the configurations of the HTTP goals and a few anchors): hot, but between two timed "
            f"requests {DISTURB_REQUESTS} requests to another bare Flask app and a read of "
            f"{DISTURB_BYTES >> 20} MiB move the request path's code and data out of the CPU caches, as a server's "
            "own work between two requests of a worker does (gunicorn, the kernel's network path), and as a tight "
            "loop never does; overhead against bare with the same disturbance, so the disturbance cancels.",
            "",
            "| variant | us/request (hot) | overhead over bare, us, hot | overhead, us, cold | "
            "overhead, us, hot, caches disturbed | public page with credential, extra us |",
            "|---|---|---|---|---|---|",
        ]
        lines += [f"**Warning: {w}.**" for w in inproc.warnings] + ([""] if inproc.warnings else [])
        for name, s in inproc.absolute.items():
            cold = inproc.cold_overhead.get(name)
            disturbed = inproc.disturbed_overhead.get(name)
            lines.append(f"| {BY_NAME[name].label} | {_fmt_series(s)} | {_fmt_series(inproc.overhead[name])} | "
                         f"{_fmt_series(cold) if cold is not None else ''} | "
                         f"{_fmt_series(disturbed) if disturbed is not None else ''} | "
                         f"{_fmt_series(inproc.public_overhead[name])} |")
        lines.append("")
        if inproc.primitives:
            lines += [
                "## Signing algorithms on this machine",
                "",
                "PyJWT's algorithm object with a prepared key, the floor of a cold verify: us per call, median "
                "(min..max) of 3 batches; the size of a sessionward access token signed with it.",
                "",
                "| algorithm | verify, us | sign, us | access token, bytes |",
                "|---|---|---|---|",
            ]
            for p in inproc.primitives:
                lines.append(f"| {p.alg} | {_fmt_series(p.verify_us)} | {_fmt_series(p.sign_us)} | {p.token_bytes} |")
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
            f"{http.duration:g} s per run, {http.rounds} round(s); each round runs bare first and again after every "
            "variant (order reversed in odd rounds). Ratio = requests/s over the mean of the two bare runs beside it "
            "(a pair a few seconds apart shares the machine's drift); its median over the rounds. "
            "CPU per request, median of the runs: the server's (gunicorn's master and workers, read from /proc over "
            "the run) and the load generator's, each also as extra us over bare; the server's extra is the figure to "
            "set beside the in-process overhead."
            + (" One short round: indicative only, the full mode's rounds are the measurement." if http.rounds == 1
               else ""),
            "",
            "| variant | requests/s | ratio to bare | server CPU us/request (over bare) | "
            "load generator CPU us/request (over bare) |",
            "|---|---|---|---|---|",
        ]
        for name, rates in http.rps.items():
            rps = sum(rates) / len(rates)
            ratio = "1.00" if name == "bare" else f"{http.median_ratio(name):.2f}"
            cpu = []
            for which, table in (("server", http.server_us), ("client", http.client_us)):
                if table.get(name):
                    extra = "" if name == "bare" else f" ({http.cpu_over_bare(name, which):+.0f})"
                    cpu.append(f"{statistics.median(table[name]):.0f}{extra}")
                else:
                    cpu.append("")
            lines.append(f"| {BY_NAME[name].label} | {rps:,.0f} | {ratio} | {cpu[0]} | {cpu[1]} |")
        lines.append("")
    if scale:
        lines += [
            "## Store scale",
            "",
            "`load_by_secret` latency median (p90) over 2,000 random live sessions; bulk path and details in "
            "`bench/scale.py`; purge with 10% of the sessions dead.",
            "",
            "| store | sessions | insert/s via `create` | insert/s bulk | lookup @1k, us | lookup @N, us "
            "| bytes/session | purge |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for s in scale:
            lines.append(
                f"| {s.store} | {s.n:,} | {s.api_insert_per_s:,.0f} | {s.bulk_insert_per_s:,.0f} | "
                f"{s.lookup_1k_us:.1f} ({s.lookup_1k_p90_us:.1f}) | {s.lookup_n_us:.1f} ({s.lookup_n_p90_us:.1f}) | "
                f"{s.bytes_per_session:.0f} | {s.purged:,} in {s.purge_s:.1f} s |"
            )
        lines += [""] + [f"- {s.store} bytes: {s.bytes_note}" for s in scale] + [""]
    if profile is not None:
        lines += ["## Per request: store calls, Redis round trips, user rows", "",
                  "Counted over 200 in-process requests by wrapping the app's own store objects (`store.*`: calls "
                  "to the store the app holds; `backend.*`: calls that got past a healthy local cache to Redis), "
                  "redis-py's `send_packed_command` on the request's thread (a pipeline is one round trip), "
                  "`recent_users.get` (a user lookup through the extension's per-process user cache), "
                  "`UserStore.get` (`users.get`: a user-row read) and, on SQL, `HotReads` (`hotsql._run`: calls on "
                  "the driver, a `PRAGMA data_version` included; `hotsql.one`: statements actually run).", "",
                  "| variant | per request |", "|---|---|"]
        for name, counts in profile.counts.items():
            label = ("public page of " + BY_NAME[name[7:]].label) if name.startswith("public:") else BY_NAME[name].label
            lines.append(f"| {label} | {format_counts(counts)} |")
        lines.append("")
        if profile.cost_rows:
            lines += ["## Store reads on the request path", "", "```", *profile.cost_rows, "```", ""]
        lines += _profile_sections(profile)
    return "\n".join(lines)


def _profile_sections(profile: ProfileResult) -> list[str]:
    plain = {n: p for n, p in profile.profiles.items() if not n.startswith(("cold:", "http:"))}
    cold = {n[5:]: p for n, p in profile.profiles.items() if n.startswith("cold:")}
    served = {n[5:]: p for n, p in profile.profiles.items() if n.startswith("http:")}
    lines: list[str] = []
    if plain:
        lines += ["## Profile (cProfile, in-process, top functions by own time)", ""]
        for name, p in plain.items():
            title = ("public page of " + BY_NAME[name[7:]].label) if name.startswith("public:") else BY_NAME[name].label
            lines += [f"**{title}**", "", "```", *format_profile(p), "```", ""]
    if cold:
        lines += ["## Profile of the cold token path (cProfile, in-process: cold minus hot)", "",
                  "The same app profiled with distinct tokens, each sent once for the first time (verified-token "
                  "cache off, no store answer remembered for its jti), minus the same app with its one hot token: "
                  "per function, the own and cumulative us per request that a cold token adds (cProfile's own "
                  "overhead inflates functions with many small calls).", ""]
        for name, p in cold.items():
            lines += [f"**{BY_NAME[name].label}**: cold adds {p.total_us:.1f} us/request under the profiler", "",
                      "```", *format_profile(p)[1:], "```", ""]
    if served:
        names = list(served)
        packages = sorted({k for p in served.values() for k, v in p.by_package.items() if abs(v) >= 1},
                          key=lambda k: -max(p.by_package.get(k, 0.0) for p in served.values()))
        lines += ["## Profile of a gunicorn worker under load (cProfile, CPU time)", "",
                  "Each worker profiles itself (CPU time, so waiting in `select` costs nothing) from its start to its "
                  "exit while the load generator runs; own us per request (requests counted as calls of "
                  "`Flask.__call__`) by package, gunicorn's own parsing and writing included. The profiler inflates "
                  "every figure; compare columns, not absolute values.", "",
                  "| package | " + " | ".join(BY_NAME[n].label for n in names) + " |",
                  "|---|" + "---|" * len(names)]
        for pkg in packages:
            lines.append(f"| {pkg} | " + " | ".join(f"{served[n].by_package.get(pkg, 0.0):.0f}" for n in names) + " |")
        lines.append("| **all** | " + " | ".join(f"**{served[n].total_us:.0f}**" for n in names) + " |")
        if "bare" in served:
            lines.append("| over bare | " + " | ".join(f"{served[n].total_us - served['bare'].total_us:+.0f}"
                                                        for n in names) + " |")
        seen = ", ".join(f"{BY_NAME[n].label} {profile.http_requests.get(n, 0):,}" for n in names)
        lines += ["", "Requests each profile saw: " + seen + ".", ""]
    return lines


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


_COLORS = {"anchor": "#c44e52", "sessionward": "#4c72b0"}


def chart(path: Path, *, inproc: InprocResult | None, http: HttpResult | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in (inproc, http) if p is not None]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(11 * len(panels), 10), squeeze=False)
    ax_iter = iter(axes[0])
    if inproc is not None:
        ax = next(ax_iter)
        rows = [(n, "hot", inproc.overhead[n]) for n in inproc.overhead if n != "bare"]
        rows += [(n, "cold", s) for n, s in inproc.cold_overhead.items()]
        order = {n: i for i, n in enumerate(inproc.overhead)}
        rows.sort(key=lambda r: (order[r[0]], r[1] != "hot"))
        med = [s.median for _, _, s in rows]
        err = [[m - s.lo for (_, _, s), m in zip(rows, med, strict=True)],
               [s.hi - m for (_, _, s), m in zip(rows, med, strict=True)]]
        colors = [_COLORS[BY_NAME[n].family] for n, _, _ in rows]
        labels = [BY_NAME[n].label + (", cold" if kind == "cold" else "") for n, kind, _ in rows]
        bars = ax.barh(labels, med, xerr=err, color=colors)
        for bar, (_, kind, _) in zip(bars, rows, strict=True):
            if kind == "cold":
                bar.set_hatch("//")
                bar.set_alpha(0.6)
        ax.invert_yaxis()
        ax.set_xlabel("overhead over a bare Flask view, us/request (median, min..max)")
        ax.set_title("In-process overhead (hatched: cold tokens; red: anchors, blue: sessionward)", fontsize=10)
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
