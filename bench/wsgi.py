"""The WSGI entry point gunicorn serves in HTTP runs: `BENCH_VARIANT` and `BENCH_WORKDIR` name the app."""

from __future__ import annotations

import os
from pathlib import Path

from .apps import BY_NAME

app = BY_NAME[os.environ["BENCH_VARIANT"]].make_app(Path(os.environ["BENCH_WORKDIR"]))
