"""The README's "Use it in your FastAPI app" snippet runs as written: log in through the form with the login
CSRF token, the dashboard, and a bearer route with its scope."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from fastapi import Request
from starlette.testclient import TestClient

from sessionward.asgi import csrf_token

README = Path(__file__).resolve().parents[2] / "README.md"
PASSWORD = "correct horse battery staple"


def snippet() -> str:
    text = README.read_text()
    match = re.search(r"## Use it in your FastAPI app\n\n```python\n(.*?)```", text, re.S)
    assert match, "README.md has no FastAPI snippet"
    return match.group(1)


def test_readme_fastapi_snippet_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "instance").mkdir()
    for name in ("CSRF_KEY", "REFRESH_KEY", "KEK"):
        monkeypatch.setenv(name, secrets.token_hex(32))
    namespace: dict[str, object] = {"__name__": "readme_app"}
    exec(compile(snippet(), "README.md", "exec"), namespace)  # noqa: S102 - our own README
    app = namespace["app"]

    @app.get("/login")  # type: ignore[attr-defined]
    async def form(request: Request) -> dict[str, str]:
        return {"csrf_token": await csrf_token(request)}

    with TestClient(app, base_url="https://localhost", follow_redirects=False) as c:  # type: ignore[arg-type]
        st = app.state.sessionward  # type: ignore[attr-defined]
        user = c.portal.call(lambda: st.users.create("alice", PASSWORD))  # type: ignore[union-attr]
        assert c.get("/dashboard", headers={"Accept": "application/json"}).status_code == 401
        token = c.get("/login").json()["csrf_token"]
        assert c.post("/login", data={"username": "alice", "password": PASSWORD}).status_code == 403
        r = c.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": token})
        assert r.status_code == 303 and r.headers["location"] == "/dashboard"
        assert c.get("/dashboard").json() == {"hello": "alice"}
        tokens = st.token_service()
        pair = c.portal.call(lambda: tokens.issue(user.id, fresh=True, extra_claims={"scope": "items:read"}))
        r = c.get("/api/items", headers={"Authorization": f"Bearer {pair.access_token}"})
        assert r.json() == {"user_id": user.id}
        assert app.openapi()["paths"]["/api/items"]["get"]["security"] == [{"bearerAuth": ["items:read"]}]  # type: ignore[attr-defined]
