"""The public async API (`sessionward.aio`): every exported name resolves, importing the package is cheap and
loads no web framework, and each async class has its generated sync twin under today's public name."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

import sessionward.aio

TWINS = {  # async source -> generated sync twin (today's public names)
    "sessionward.aio.sessions.AsyncSessionManager": "sessionward.sessions.SessionManager",
    "sessionward.aio.throttle.AsyncLoginThrottle": "sessionward.throttle.LoginThrottle",
    "sessionward.aio.auth.AsyncAuthenticator": "sessionward.auth.Authenticator",
    "sessionward.aio.users.AsyncUserStore": "sessionward.users.UserStore",
    "sessionward.aio.users.AsyncRecentUsers": "sessionward.users.RecentUsers",
    "sessionward.aio.tokens.service.AsyncTokenService": "sessionward.tokens.service.TokenService",
    "sessionward.aio.tokens.keystore.AsyncSQLKeyRepository": "sessionward.tokens.keystore.SQLKeyRepository",
}


def _load(path: str) -> type:
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def test_every_export_resolves() -> None:
    for name in sessionward.aio.__all__:
        assert getattr(sessionward.aio, name) is not None, name
    with pytest.raises(AttributeError):
        sessionward.aio.NoSuchThing  # noqa: B018


@pytest.mark.parametrize(("source", "twin"), TWINS.items())
def test_each_async_class_has_a_sync_twin_with_the_same_methods(source: str, twin: str) -> None:
    async_cls, sync_cls = _load(source), _load(twin)
    public = {n for n, v in vars(async_cls).items() if not n.startswith("_") and callable(v)}
    assert public <= set(dir(sync_cls)), public - set(dir(sync_cls))
    for name in public:
        a, s = getattr(async_cls, name), getattr(sync_cls, name)
        if inspect.iscoroutinefunction(a):
            assert not inspect.iscoroutinefunction(s), name  # the generated twin is plain sync code
        assert list(inspect.signature(a).parameters) == list(inspect.signature(s).parameters), name


def test_importing_the_package_is_cheap_and_framework_free() -> None:
    code = (
        "import sys, sessionward.aio\n"
        "early = [m for m in ('sqlalchemy', 'redis', 'argon2') if m in sys.modules]\n"
        "[getattr(sessionward.aio, n) for n in sessionward.aio.__all__]\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug', 'django', 'starlette', 'fastapi')]\n"
        "print(early, bad); sys.exit(1 if early or bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
