"""The reference service as shipped: `sessionward serve` (gunicorn, gthread workers, TLS) started as a subprocess,
and a keep-alive HTTPS load generator for it (processes x threads of `http.client.HTTPSConnection`, each
holding its connection open). Loopback only, bounded by `duration`.

Part `https`: requests per second of the reference service over HTTPS for a public path (`/healthz`) and an
authenticated API call (`GET /api/profile` with a bearer access token), with the keep-alive connections
counted per gunicorn worker while the load runs (each worker has its own listening socket, SO_REUSEPORT).
"""

from __future__ import annotations

import http.client
import json
import multiprocessing as mp
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .http import Server, _free_port

WORKERS = 2
PROCESSES, THREADS = 2, 8  # 16 keep-alive connections


class Served:
    """`sessionward serve` on a free port with a fresh instance folder under `workdir`; `stop()` ends the group."""

    def __init__(self, workdir: Path, *, workers: int = WORKERS, env: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        self.instance = workdir / f"instance-{self.port}"
        self.instance.mkdir(mode=0o700, parents=True)
        command = Path(sys.executable).with_name("sessionward")
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONWARD_")}
        child_env.update(env or {})
        self.output: list[str] = []
        self.proc = subprocess.Popen(
            [str(command), "serve", "--host", "127.0.0.1", "--port", str(self.port), "--instance",
             str(self.instance), "--workers", str(workers)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=child_env,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        self.cafile = str(self.instance / "tls-cert.pem")
        self._wait()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line.rstrip("\n"))

    @property
    def admin_password(self) -> str:
        for i, line in enumerate(self.output):
            if "created user 'admin' with password" in line and i + 1 < len(self.output):
                return self.output[i + 1].strip()
        raise RuntimeError("no admin password in the server's output")

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.cafile)

    def request(self, method: str, path: str, body: dict | None = None, headers: dict[str, str] | None = None
                ) -> tuple[int, bytes]:
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context(), timeout=30)
        try:
            payload = None if body is None else json.dumps(body)
            hdrs = dict(headers or {}, **({"Content-Type": "application/json"} if body is not None else {}))
            conn.request(method, path, body=payload, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def _wait(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("sessionward serve exited:\n" + "\n".join(self.output[-30:]))
            if Path(self.cafile).exists():
                try:
                    if self.request("GET", "/healthz")[0] == 200:
                        return
                except OSError:
                    pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("sessionward serve did not become healthy:\n" + "\n".join(self.output[-30:]))

    def worker_pids(self) -> list[int]:
        out = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                f = stat[stat.rindex(")") + 2 :].split()
                if int(f[1]) == self.proc.pid and int(f[2]) == self.proc.pid:
                    out.append(int(entry.name))
        return sorted(out)

    def connections_per_worker(self) -> dict[int, int]:
        """Established connections on the server's port held by each worker (from /proc, Linux)."""
        states = {}
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            f = line.split()
            if int(f[1].split(":")[1], 16) == self.port and f[3] == "01":
                states[int(f[9])] = True
        out = {}
        for pid in self.worker_pids():
            n = 0
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:[") and int(target[8:-1]) in states:
                    n += 1
            out[pid] = n
        return out

    stop = Server.stop  # SIGTERM the process group, SIGKILL after 10 s


# -- the load generator --------------------------------------------------------------------------------
def _thread(port: int, cafile: str, method: str, path: str, headers: dict[str, str], body: str | None,
            deadline: float, body_for: Callable[[], str] | None, out: list[int]) -> None:
    ctx = ssl.create_default_context(cafile=cafile)
    counts: dict[int, int] = {}
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=60)
    while time.perf_counter() < deadline:
        try:
            conn.request(method, path, body=body_for() if body_for else body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            counts[resp.status] = counts.get(resp.status, 0) + 1
            if resp.will_close:
                conn.close()
                conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=60)
        except (OSError, http.client.HTTPException):
            counts[0] = counts.get(0, 0) + 1
            conn.close()
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=60)
    conn.close()
    out.append(json.dumps(counts))  # type: ignore[arg-type]


def _unknown_login() -> str:
    return json.dumps({"username": "nobody-" + os.urandom(6).hex(), "password": "wrong-" + os.urandom(8).hex()})


def _process(port: int, cafile: str, method: str, path: str, headers: dict[str, str], body: str | None,
             threads: int, duration: float, storm: bool, queue: mp.Queue[str]) -> None:
    deadline = time.perf_counter() + duration
    out: list[int] = []
    ts = [threading.Thread(target=_thread, args=(port, cafile, method, path, headers, body, deadline,
                                                 _unknown_login if storm else None, out)) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    total: dict[str, int] = {}
    for item in out:
        for k, v in json.loads(item).items():  # type: ignore[arg-type]
            total[k] = total.get(k, 0) + v
    queue.put(json.dumps(total))


def load(served: Served, method: str, path: str, *, duration: float, headers: dict[str, str] | None = None,
         body: str | None = None, storm: bool = False, processes: int = PROCESSES, threads: int = THREADS,
         during: Callable[[], None] | None = None) -> dict[int, int]:
    """Run the load for `duration` seconds; returns how many answers of each status (0 = connection error).
    `during` is called once, halfway, while the connections are open."""
    ctx = mp.get_context("spawn")
    queue: mp.Queue[str] = ctx.Queue()
    procs = [ctx.Process(target=_process, args=(served.port, served.cafile, method, path, dict(headers or {}), body,
                                                threads, duration, storm, queue)) for _ in range(processes)]
    for p in procs:
        p.start()
    if during is not None:
        time.sleep(duration / 2 + 1)  # the spawned processes take about a second to start
        during()
    total: dict[int, int] = {}
    for _ in procs:
        for k, v in json.loads(queue.get(timeout=duration + 120)).items():
            total[int(k)] = total.get(int(k), 0) + v
    for p in procs:
        p.join(timeout=30)
    return total


@dataclass
class HttpsRow:
    name: str
    rps: float
    statuses: dict[int, int]
    per_worker: list[int] = field(default_factory=list)


def run_https(workdir: Path, *, duration: float, log: Callable[[str], None]) -> list[HttpsRow]:
    served = Served(workdir, env={"SESSIONWARD_LOCAL_CACHE": "0"})
    rows = []
    try:
        status, body = served.request("POST", "/api/login", {"username": "admin", "password": served.admin_password})
        if status != 200:
            raise RuntimeError(f"login failed: {status} {body[:200]!r}")
        token = json.loads(body)["access_token"]
        for name, path, headers in (("public /healthz", "/healthz", {}),
                                    ("API GET /api/profile (bearer token)", "/api/profile",
                                     {"Authorization": f"Bearer {token}"})):
            seen: list[int] = []
            statuses = load(served, "GET", path, duration=duration, headers=headers,
                            during=lambda seen=seen: seen.extend(sorted(served.connections_per_worker().values())))
            ok = sum(v for k, v in statuses.items() if 200 <= k < 300)
            row = HttpsRow(name, ok / duration, statuses, seen)
            log(f"  {name}: {row.rps:,.0f} requests/s over HTTPS ({PROCESSES * THREADS} keep-alive connections, "
                f"{WORKERS} workers; connections per worker {seen}; statuses {statuses})")
            rows.append(row)
    finally:
        served.stop()
    return rows


def markdown(rows: list[HttpsRow]) -> str:
    if not rows:
        return ""
    lines = ["## The reference service over HTTPS (`sessionward serve`)", "",
             f"{WORKERS} gunicorn workers (gthread, 4 threads), TLS, {PROCESSES * THREADS} keep-alive connections "
             f"from a Python load generator on the same machine.", "",
             "| request | requests/s | connections per worker (mid-run) | answers |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.name} | {r.rps:,.0f} | {r.per_worker} | {r.statuses} |")
    return "\n".join(lines)
