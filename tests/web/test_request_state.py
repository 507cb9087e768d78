"""`sessionward.web`: the framework-free per-request state and the start-up state every adapter shares."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sessionward.exceptions import TokenError
from sessionward.web import UNSET, RequestState

SRC = Path(__file__).resolve().parents[2] / "src" / "sessionward"


def session(secret: str = "s3cret") -> Any:
    return SimpleNamespace(secret=secret, user_id="u1", record=SimpleNamespace(epoch=0, secret_hash="h"))


def test_a_fresh_request_has_looked_nothing_up_and_needs_no_store_header() -> None:
    rs = RequestState()
    assert rs.session is UNSET and rs.user is UNSET and rs.claims is None and rs.token_results == {}
    assert not rs.no_store and not rs.has_session


def test_login_sets_the_cookie_and_no_store() -> None:
    rs = RequestState()
    s = session()
    rs.logged_in(s, "alice")  # type: ignore[arg-type]
    assert rs.session is s and rs.user == "alice" and rs.new_cookie == "s3cret" and rs.no_store


def test_a_replaced_session_forgets_the_user() -> None:
    rs = RequestState(user="alice")  # type: ignore[arg-type]
    rs.logged_in(session("new"), None)  # type: ignore[arg-type]
    assert rs.user is UNSET and rs.new_cookie == "new"


def test_logout_clears_session_and_user() -> None:
    rs = RequestState(session=session(), user="alice")  # type: ignore[arg-type]
    rs.logged_out()
    assert rs.session is None and rs.user is None and rs.logout and not rs.new_cookie


def test_a_verified_token_becomes_the_identity_once() -> None:
    rs = RequestState(user=SimpleNamespace(id="u2"))  # type: ignore[arg-type]  # the cookie session's user
    claims: Any = SimpleNamespace(sub="u2")
    rs.identify(claims)
    assert rs.claims is claims and rs.user is UNSET and rs.authenticated and rs.no_store
    rs.user = "token user"  # type: ignore[assignment]
    rs.identify(claims)  # the same token again: the looked-up user stays
    assert rs.user == "token user"


def test_a_token_of_another_user_than_the_one_already_acted_as_is_refused() -> None:
    rs = RequestState(user=SimpleNamespace(id="u1"))  # type: ignore[arg-type]
    with pytest.raises(TokenError):
        rs.identify(SimpleNamespace(sub="u2"))  # type: ignore[arg-type]
    assert rs.claims is None and rs.user.id == "u1"  # type: ignore[union-attr]
    nobody = RequestState(user=None)  # looked up, no session: any token may identify
    nobody.identify(SimpleNamespace(sub="u2"))  # type: ignore[arg-type]
    assert nobody.user is UNSET


def test_a_loaded_session_means_no_store() -> None:
    assert RequestState(session=session()).no_store  # type: ignore[arg-type]
    assert not RequestState(session=None).no_store


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            found.update(f"{'.' * node.level}{node.module or ''}:{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_flask_extension_and_jwt_do_not_import_each_other() -> None:
    """The cycle is gone: jwt.py and extension.py both import downwards (context.py), never each other."""
    jwt_imports = _imports(SRC / "flask" / "jwt.py")
    assert not any(i.startswith(".extension") or i == ".:extension" for i in jwt_imports), jwt_imports
    context_imports = _imports(SRC / "flask" / "context.py")
    assert not any(i.startswith((".extension", ".jwt")) for i in context_imports), context_imports
    assert any(i.startswith(".jwt:") for i in _imports(SRC / "flask" / "extension.py"))  # the one direction


def test_the_shared_shapes_import_no_web_framework() -> None:
    code = ("import sys, sessionward.web, sessionward.assembly, sessionward.settings; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug', 'starlette')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_flask_keeps_one_request_state_in_g(tmp_path: Path) -> None:
    """No string flags on `flask.g`: one typed object per request."""
    from flask import g

    from sessionward.app import create_app
    from sessionward.flask import request_state

    app = create_app(tmp_path / "i")
    with app.test_request_context("/"):
        rs = request_state()
        assert isinstance(rs, RequestState) and request_state() is rs
        assert [k for k in vars(g._get_current_object()) if k.startswith("_sw")] == []
