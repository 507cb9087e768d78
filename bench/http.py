"""HTTP throughput under gunicorn (sync workers) with a load generator on loopback, as a ratio to the bare
Flask view measured in the same run. `wrk` when installed (`make bench` installs it: `scripts/bench-deps.sh`),
else `bench.loadgen`.

Besides requests/s, each run reads the CPU time the server (gunicorn's master and workers, from /proc) and
the load generator (this process's reaped children) spent in its window: per request, these say how much of
a throughput difference is the server's own work and how much is the client's (on 2 cores both share the
machine, so a client that parses more response headers lowers the server's throughput too)."""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import loadgen
from .apps import Variant

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 2
CONNECTIONS = 16


def load_generator() -> str:
    return "wrk" if shutil.which("wrk") else "python (bench.loadgen)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """gunicorn serving one variant; stopped (process group) on exit."""

    def __init__(self, variant: Variant, workdir: Path, *, profile_to: Path | None = None) -> None:
        """`profile_to`: each worker profiles itself and writes `<pid>.prof` there when it exits."""
        self.port = _free_port()
        env = dict(os.environ, BENCH_VARIANT=variant.name, BENCH_WORKDIR=str(workdir), PYTHONPATH=str(ROOT))
        gunicorn = Path(sys.executable).with_name("gunicorn")
        hooks: list[str] = []
        if profile_to is not None:
            env["BENCH_PROFILE_OUT"] = str(profile_to)
            hooks = ["-c", "python:bench.gunicorn_profile"]
        self.proc = subprocess.Popen(
            [str(gunicorn), *hooks, "-w", str(WORKERS), "-k", "sync", "-b", f"127.0.0.1:{self.port}",
             "--log-level", "warning", "--chdir", str(ROOT), "bench.wsgi:app"],
            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, headers: dict[str, str], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        ready = 0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                req = urllib.request.Request(self.url + "/protected", headers=headers)
                with urllib.request.urlopen(req, timeout=2) as resp:
                    if resp.status == 200:
                        ready += 1
                        if ready >= 2 * WORKERS:  # give both workers a chance to import everything
                            return
                        continue
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        err = self.proc.stderr.read().decode(errors="replace")[-2000:] if self.proc.stderr else ""  # type: ignore[union-attr]
        raise RuntimeError(f"gunicorn did not become ready in {timeout:g} s: {err}")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) spent so far by gunicorn's master and its live workers (Linux /proc)."""
        return sum(_proc_cpu(pid) for pid in (self.proc.pid, *_children(self.proc.pid)))

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _proc_cpu(pid: int) -> float:
    """utime + stime of one process in seconds, 0 when it is gone or /proc is not there."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # fields 14 and 15 of proc(5), after "pid (comm)"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


_RPS = re.compile(r"Requests/sec:\s+([0-9.]+)")
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_ERRORS = re.compile(r"Socket errors:.*")


def _wrk(url: str, headers: dict[str, str], duration: float) -> tuple[float, int]:
    cmd = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{max(1, round(duration))}s", "--latency"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    m = _RPS.search(out)
    if m is None:
        raise RuntimeError(f"could not read wrk output: {out}")
    bad = _NON2XX.search(out)
    return float(m.group(1)), int(bad.group(1)) if bad else 0


def measure(url: str, headers: dict[str, str], duration: float) -> tuple[float, int]:
    if shutil.which("wrk"):
        return _wrk(url, headers, duration)
    return loadgen.run(url, headers, connections=CONNECTIONS, duration=duration)


@dataclass
class HttpResult:
    generator: str
    duration: float
    rounds: int
    rps: dict[str, list[float]] = field(default_factory=dict)
    ratio: dict[str, list[float]] = field(default_factory=dict)  # per round, to that round's bare runs
    #: CPU us per request in each run: the server's (gunicorn master + workers) and the load generator's
    server_us: dict[str, list[float]] = field(default_factory=dict)
    client_us: dict[str, list[float]] = field(default_factory=dict)
    #: per run of a variant, its CPU us per request minus the mean of the two bare runs beside it
    server_over: dict[str, list[float]] = field(default_factory=dict)
    client_over: dict[str, list[float]] = field(default_factory=dict)

    def cpu_over_bare(self, name: str, which: str = "server") -> float:
        """Median over the runs of `name` of its CPU us per request minus that of the bare runs beside it (the
        `server` or the `client` side)."""
        table = self.server_over if which == "server" else self.client_over
        values = table.get(name)
        return statistics.median(values) if values else float("nan")

    def median_ratio(self, name: str) -> float:
        values = self.ratio.get(name) or []
        return statistics.median(values) if values else float("nan")


@dataclass
class Run:
    rps: float
    bad: int
    server_us: float  #: server CPU per successful request
    client_us: float  #: load-generator CPU per successful request


def _serve_and_measure(variant: Variant, workdir: Path, headers: dict[str, str], duration: float,
                       log: Callable[[str], None]) -> Run:
    """Start gunicorn for `variant` and measure it; one more start if it does not come up (a busy machine)."""
    for attempt in (1, 2):
        with Server(variant, workdir) as server:
            try:
                server.wait_ready(headers, timeout=45.0)
            except RuntimeError as exc:
                if attempt == 2:
                    raise
                log(f"  {variant.name}: {exc}; starting it again")
                continue
            server_before, client_before = server.cpu_seconds(), _children_cpu()
            rps, bad = measure(server.url + "/protected", headers, duration)
            server_cpu, client_cpu = server.cpu_seconds() - server_before, _children_cpu() - client_before
            done = max(1.0, rps * duration)
            return Run(rps, bad, server_cpu / done * 1e6, client_cpu / done * 1e6)
    raise AssertionError("unreachable")


def run_http(variants: list[Variant], workdir: Path, headers: dict[str, dict[str, str]], *, duration: float,
             rounds: int, log: Callable[[str], None]) -> HttpResult:
    """Each round: bare, then every variant with bare again after each one (order reversed in odd rounds). A
    variant's ratio, and its CPU over bare, are against the mean of the two bare runs beside it: the machine's
    speed may drift over the minutes of a round (a virtual machine's does), and a pair a few seconds apart
    shares that drift."""
    result = HttpResult(generator=load_generator(), duration=duration, rounds=rounds)
    others = [v for v in variants if v.name != "bare" and v.http]
    bare = next(v for v in variants if v.name == "bare")

    def measure_one(v: Variant, r: int) -> Run:
        run = _serve_and_measure(v, workdir, headers[v.name], duration, log)
        if run.bad:
            raise RuntimeError(f"{v.name}: {run.bad} responses were not 2xx/3xx")
        result.server_us.setdefault(v.name, []).append(run.server_us)
        result.client_us.setdefault(v.name, []).append(run.client_us)
        result.rps.setdefault(v.name, []).append(run.rps)
        log(f"  http round {r + 1}/{rounds}: {v.name:24s} {run.rps:8.0f} req/s, CPU us/request: server "
            f"{run.server_us:5.0f}, load generator {run.client_us:5.0f}")
        return run

    for r in range(rounds):
        order = others if r % 2 == 0 else others[::-1]
        before = measure_one(bare, r)
        result.ratio.setdefault("bare", []).append(1.0)
        for v in order:
            run = measure_one(v, r)
            after = measure_one(bare, r)
            result.ratio.setdefault(v.name, []).append(run.rps / statistics.mean([before.rps, after.rps]))
            result.server_over.setdefault(v.name, []).append(run.server_us - (before.server_us + after.server_us) / 2)
            result.client_over.setdefault(v.name, []).append(run.client_us - (before.client_us + after.client_us) / 2)
            before = after
    return result
