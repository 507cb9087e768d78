"""The core never imports a web framework: importing `sessionward` and its framework-free modules (everything
outside `sessionward.flask` and `sessionward.app`) leaves Flask, Werkzeug, Django and Starlette unloaded."""

from __future__ import annotations

import subprocess
import sys

CORE = [
    "sessionward", "sessionward.sessions", "sessionward.csrf", "sessionward.passwords", "sessionward.users",
    "sessionward.throttle", "sessionward.auth", "sessionward.stores.sql", "sessionward.stores.redis",
    "sessionward.tokens", "sessionward.events", "sessionward.metrics",
    "sessionward.settings", "sessionward.assembly", "sessionward.extras", "sessionward.web", "sessionward.web.state",
    "sessionward.web.context", "sessionward.app.instance", "sessionward.httpshape", "sessionward.bearer",
    "sessionward.app.common", "sessionward.app.openapi", "sessionward.aio", "sessionward.aio.sessions",
    "sessionward.cli", "sessionward.cli_keys",
    "sessionward.audit", "sessionward.audit.cli", "sessionward.audit.report", "sessionward.audit.probes",
    "sessionward.aio.stores", "sessionward.aio.stores.sql", "sessionward.aio.stores.redis",
    "sessionward.aio.stores.cache",
    "sessionward.dpop", "sessionward.dbsc", "sessionward.popkeys", "sessionward.timedmac", "sessionward.sfv",
]


def test_core_does_not_import_flask_or_werkzeug():
    code = (
        "import sys, importlib\n"
        f"for m in {CORE!r}: importlib.import_module(m)\n"
        "import sessionward; [getattr(sessionward, n) for n in sessionward.__all__]\n"
        "from sessionward.audit.probes import all_probes; all_probes()\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug', 'django', 'starlette')]\n"
        "print(','.join(bad)); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"core imported a web framework: {result.stdout} {result.stderr[-2000:]}"


def test_the_asgi_adapter_and_service_import_no_flask():
    """An `[asgi]`-only install works: the adapter and the ASGI reference service load neither Flask nor Werkzeug."""
    code = (
        "import sys, importlib\n"
        "for m in ('sessionward.asgi', 'sessionward.app.asgi'): importlib.import_module(m)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug', 'django')]\n"
        "print(','.join(bad)); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"the ASGI side imported Flask: {result.stdout} {result.stderr[-2000:]}"
