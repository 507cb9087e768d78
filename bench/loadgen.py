"""A small HTTP load generator for when `wrk` is not installed: processes x threads, each with an
`http.client` connection kept alive as long as the server allows (gunicorn's sync workers close after every
response, so the client reconnects then, as wrk does). Loopback only; bounded by `duration`."""

from __future__ import annotations

import http.client
import multiprocessing as mp
import threading
import time
from urllib.parse import urlsplit


def _thread(host: str, port: int, path: str, headers: dict[str, str], deadline: float, out: list[int]) -> None:
    ok = bad = 0
    conn = http.client.HTTPConnection(host, port, timeout=10)
    while time.perf_counter() < deadline:
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            resp.read()
            if 200 <= resp.status < 400:
                ok += 1
            else:
                bad += 1
            if resp.will_close:
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=10)
        except (OSError, http.client.HTTPException):
            bad += 1
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.close()
    out.extend([ok, bad])


def _process(url: str, headers: dict[str, str], threads: int, duration: float,
             queue: mp.Queue[tuple[int, int]]) -> None:
    parts = urlsplit(url)
    deadline = time.perf_counter() + duration
    results: list[list[int]] = [[] for _ in range(threads)]
    workers = [
        threading.Thread(target=_thread, args=(parts.hostname, parts.port, parts.path, headers, deadline, results[i]))
        for i in range(threads)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    queue.put((sum(r[0] for r in results if r), sum(r[1] for r in results if r)))


def run(url: str, headers: dict[str, str], *, connections: int, duration: float,
        processes: int = 2) -> tuple[float, int]:
    """Requests per second (successful) and the count of failed requests."""
    host = urlsplit(url).hostname or ""
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        raise ValueError("the load generator only targets loopback")
    queue: mp.Queue[tuple[int, int]] = mp.Queue()
    per = max(1, connections // processes)
    procs = [mp.Process(target=_process, args=(url, headers, per, duration, queue)) for _ in range(processes)]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    # each process counts only inside its own window of `duration` seconds
    return sum(r[0] for r in results) / duration, sum(r[1] for r in results)
