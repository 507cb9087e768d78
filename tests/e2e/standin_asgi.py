"""A tiny ASGI app served the way `sessionward serve --asgi` serves the reference service (gunicorn with
`SessionwardUvicornWorker`, TLS, reuse_port, the same timeouts), to test the serving plumbing on its own.

    python standin_asgi.py INSTANCE PORT WORKERS [--fail-startup]

Its lifespan appends "startup PID" / "shutdown PID" lines to INSTANCE/lifespan.log; it answers
`/healthz` (200), `/pid` (the worker's pid) and `/slow?ms=N` (answers after N ms, for graceful stops).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs


def create_standin_app(instance: str, *, fail_startup: bool = False) -> Any:
    log = Path(instance) / "lifespan.log"

    def note(event: str) -> None:
        with log.open("a") as fh:
            fh.write(f"{event} {os.getpid()}\n")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    if fail_startup:  # as a store that cannot open raises out of the app's lifespan
                        raise RuntimeError("store unreachable")
                    note("startup")
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    note("shutdown")
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope["path"]
        if path == "/slow":
            ms = int(parse_qs(scope["query_string"].decode()).get("ms", ["0"])[0])
            await asyncio.sleep(ms / 1000)
        body = json.dumps({"path": path, "pid": os.getpid(), "scheme": scope["scheme"]}).encode()
        status = 200 if path in ("/healthz", "/pid", "/slow") else 404
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app


def main(argv: list[str]) -> None:
    from sessionward.app.instance import ensure_certificate
    from sessionward.server import run_gunicorn

    instance, port, workers = argv[0], int(argv[1]), int(argv[2])
    fail = "--fail-startup" in argv
    certfile, keyfile = ensure_certificate(Path(instance), hosts=("127.0.0.1",))
    run_gunicorn(host="127.0.0.1", port=port, workers=workers, certfile=str(certfile), keyfile=str(keyfile),
                 instance=instance, asgi=True, factory=lambda path: create_standin_app(path, fail_startup=fail))


if __name__ == "__main__":
    main(sys.argv[1:])
