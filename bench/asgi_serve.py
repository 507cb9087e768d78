"""The ASGI entry point gunicorn's uvicorn workers serve in the ASGI part's HTTP runs: `BENCH_ASGI_VARIANT` and
`BENCH_WORKDIR` name the app (its stores open in the worker's lifespan)."""

from __future__ import annotations

import os
from pathlib import Path

from .asgi_bench import by_name

app = by_name()[os.environ["BENCH_ASGI_VARIANT"]].make_app(Path(os.environ["BENCH_WORKDIR"]))
