"""A login storm against the reference service: many concurrent `POST /api/login` with unknown usernames over
HTTPS (each costs one argon2id verification, 64 MiB, against a dummy hash). Reported: logins answered per
second (per core), how many were refused with 503 (the per-process hashing bound, SESSIONWARD_HASH_*), and
the peak memory of the workers during the storm (their high-water mark above their size before it).

The storm comes from one address, so the address throttle is raised for it (a real storm comes from many).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .served import PROCESSES, THREADS, WORKERS, Served, load

ARGON2_MIB = 64


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


@dataclass
class Storm:
    duration: float
    answered: int  # 401: hashed and refused
    refused: int  # 503: over the hashing bound
    other: dict[int, int]
    per_s: float
    per_core_s: float
    peak_mib: list[float]
    bound_mib: float


def run_storm(workdir: Path, *, duration: float, log: Callable[[str], None]) -> Storm:
    from sessionward.passwords import DEFAULT_HASH_CONCURRENCY

    served = Served(workdir, env={"SESSIONWARD_THROTTLE_ADDRESS_FREE": "1000000",
                                  "SESSIONWARD_THROTTLE_ACCOUNT_FREE": "1000000"})
    try:
        workers = served.worker_pids()
        before = {pid: _kib(pid, "VmRSS") for pid in workers}
        statuses = load(served, "POST", "/api/login", duration=duration, storm=True,
                        headers={"Content-Type": "application/json"})
        peak = [(_kib(pid, "VmHWM") - before[pid]) / 1024 for pid in workers]
    finally:
        served.stop()
    answered, refused = statuses.get(401, 0), statuses.get(503, 0)
    other = {k: v for k, v in statuses.items() if k not in (401, 503)}
    cores = os.cpu_count() or 1
    result = Storm(duration, answered, refused, other, answered / duration, answered / duration / cores,
                   peak, DEFAULT_HASH_CONCURRENCY * ARGON2_MIB)
    log(f"  storm of unknown usernames ({PROCESSES * THREADS} connections, {WORKERS} workers, {duration:g} s): "
        f"{result.per_s:.1f} logins/s ({result.per_core_s:.1f} per core), {refused} refused with 503, other {other}; "
        f"worker peak growth {', '.join(f'{p:.0f}' for p in peak)} MiB (bound {result.bound_mib:.0f} MiB per worker)")
    return result


def markdown(s: Storm | None) -> str:
    if s is None:
        return ""
    return "\n".join([
        "## Login storm (unknown usernames, argon2id m=64 MiB)", "",
        f"{PROCESSES * THREADS} concurrent clients for {s.duration:g} s against `sessionward serve` "
        f"({WORKERS} workers, "
        f"default SESSIONWARD_HASH_CONCURRENCY).", "",
        "| logins/s | per core | refused (503) | other answers | worker peak memory growth (all of it) | "
        "argon2's share bound per worker (hashes at once x 64 MiB) |",
        "|---|---|---|---|---|---|",
        f"| {s.per_s:.1f} | {s.per_core_s:.1f} | {s.refused} | {s.other or '-'} | "
        f"{', '.join(f'{p:.0f}' for p in s.peak_mib)} MiB | {s.bound_mib:.0f} MiB |",
    ])
