"""What the probes share: the target's login recipe, logging in (form or JSON), "does this still work?"
checks against the protected route, and evidence lines with secrets masked."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http import HTTPStatus
from typing import Any

from .forge import looks_like_jwt
from .http import Browser, Client, Response
from .model import mask

__all__ = ["Context", "FormSpec", "LoginFailed", "Target", "evidence", "parse_forms"]


class LoginFailed(Exception):
    """The login recipe did not give a working session or token (the message says what happened)."""


@dataclass(frozen=True)
class Target:
    """The recipe from the command line. Paths are relative to the origin."""

    form_login: str | None = None
    json_login: str | None = None
    username: str | None = None
    password: str | None = None
    username_field: str | None = None
    password_field: str | None = None
    protected: str | None = None
    api_protected: str | None = None
    logout: str | None = None
    logout_method: str | None = None
    api_logout: str | None = None
    refresh: str | None = None
    unsafe: str | None = None
    jwks: str | None = None
    public_key_pem: bytes | None = None
    aggressive: bool = False
    throttle_attempts: int = 10
    id_samples: int = 3

    @property
    def token_protected(self) -> str | None:
        return self.api_protected or (self.protected if self.json_login and not self.form_login else None)


@dataclass
class FormSpec:
    action: str | None
    method: str
    inputs: list[dict[str, str]] = field(default_factory=list)

    def fields(self) -> dict[str, str]:
        return {i["name"]: i.get("value", "") for i in self.inputs if i.get("name") and i.get("type") != "submit"}

    def by_type(self, kind: str) -> list[str]:
        return [i["name"] for i in self.inputs if i.get("name") and i.get("type", "text") == kind]

    def hidden(self) -> dict[str, str]:
        return {i["name"]: i.get("value", "") for i in self.inputs if i.get("name") and i.get("type") == "hidden"}


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[FormSpec] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "form":
            self.forms.append(FormSpec(a.get("action") or None, (a.get("method") or "get").upper()))
        elif tag in ("input", "button", "textarea", "select") and self.forms:
            kind = (a.get("type") or ("submit" if tag == "button" else "text")).lower()
            self.forms[-1].inputs.append({"name": a.get("name", ""), "type": kind, "value": a.get("value", "")})


def parse_forms(html: str) -> list[FormSpec]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


CSRF_FIELD_HINTS = ("csrf", "xsrf", "authenticity", "_token", "nonce", "requestverification")


def csrf_fields(form: FormSpec) -> dict[str, str]:
    return {k: v for k, v in form.hidden().items() if any(h in k.lower() for h in CSRF_FIELD_HINTS)}


def evidence(resp: Response, *, show: tuple[str, ...] = (), note: str = "") -> list[str]:
    """Request line (with Cookie / Authorization / Origin masked or shown) and the response line, plus
    the response headers named in `show`."""
    req = resp.request_headers
    path = resp.url.split("://", 1)[-1].split("/", 1)[-1]
    lines = [f"> {resp.method} /{path}"]
    if "Cookie" in req:
        jar = "; ".join(f"{k}={mask(v)}" for k, _, v in (c.partition("=") for c in req["Cookie"].split("; ")))
        lines.append(f">   Cookie: {jar}")
    if "Authorization" in req:
        scheme, _, cred = req["Authorization"].partition(" ")
        lines.append(f">   Authorization: {scheme} {mask(cred)}")
    for name in ("Origin", "Sec-Fetch-Site", "Content-Type"):
        if name in req:
            lines.append(f">   {name}: {req[name]}")
    lines.append(f"< {resp.status} {resp.reason}")
    for name in show:
        values = resp.header_all(name)
        if name.lower() == "set-cookie":
            values = [_mask_cookie(v) for v in values]
        lines.extend(f"<   {name}: {v}" for v in values) if values else lines.append(f"<   ({name} absent)")
    if note:
        lines.append(f"  {note}")
    return lines


def _mask_cookie(header: str) -> str:
    first, sep, rest = header.partition(";")
    name, _, value = first.partition("=")
    return f"{name}={mask(value)}{sep}{rest}"


class Context:
    """One audit run's shared state; probes use it, never the raw client directly."""

    def __init__(self, client: Client, target: Target) -> None:
        self.client = client
        self.target = target
        self._baseline: Response | None = None
        self._token_baseline: Response | None = None
        self.login_form: FormSpec | None = None
        self.session_cookies: list[str] = []  # names of the cookies the login set
        self.login_cookies: dict[str, Any] = {}  # name -> SetCookie as set at login
        self.notes: list[str] = []

    @property
    def https(self) -> bool:
        return self.client.scheme == "https"

    def browser(self, cookies: dict[str, str] | None = None) -> Browser:
        return Browser(self.client, cookies)

    # -- form login ---------------------------------------------------------------------------------
    def fetch_login_form(self, b: Browser) -> tuple[Response, FormSpec]:
        assert self.target.form_login
        page = b.get(self.target.form_login)
        forms = parse_forms(page.text) if page.status == HTTPStatus.OK else []
        chosen = next((f for f in forms if f.by_type("password")), None) or next(
            (f for f in forms if f.method == "POST"), None
        )
        if chosen is None:
            raise LoginFailed(f"GET {self.target.form_login} answered {page.status} without a login form")
        self.login_form = chosen
        return page, chosen

    def form_fields(self, form: FormSpec, username: str, password: str | None) -> dict[str, str]:
        data = form.fields()
        candidates = form.by_type("text") + form.by_type("email")
        user_field = self.target.username_field or next(
            (n for n in candidates if any(h in n.lower() for h in ("user", "login", "email", "name"))),
            None,
        ) or next(iter(candidates), None)
        if user_field is None:
            raise LoginFailed("no username field in the login form (give --username-field)")
        data[user_field] = username
        pw_field = self.target.password_field or next(iter(form.by_type("password")), None)
        if pw_field is not None:
            data[pw_field] = password or ""
        return data

    def form_login(
        self, b: Browser | None = None, *, username: str | None = None, password: str | None = None,
        extra: dict[str, str] | None = None, drop: tuple[str, ...] = (),
    ) -> tuple[Browser, Response]:
        """GET the form, POST it like a browser; returns the browser and the POST's response."""
        login_url = self.target.form_login
        if not login_url:
            raise LoginFailed("no login form to post to (give --form-login)")
        b = b or self.browser()
        _, form = self.fetch_login_form(b)
        data = self.form_fields(
            form,
            username or self.target.username or "",
            password if password is not None else self.target.password,
        )
        for name in drop:
            data.pop(name, None)
        data.update(extra or {})
        action = form.action or login_url  # a form without an action posts back to its own page
        resp = b.post(action, form=data, headers={"Origin": self.client.origin})
        return b, resp

    def login(self) -> Browser:
        """A logged-in browser (checked against the protected route); records the session cookie names."""
        b, resp = self.form_login()
        if not self.authenticated(b):
            raise LoginFailed(f"POST {self.target.form_login} answered {resp.status}, and {self.target.protected} "
                              "still does not work: check --username / --password-env / field names")
        set_now = [c for c in resp.set_cookies if not c.deletes]
        if set_now:
            names = [c.name for c in set_now]
            self.login_cookies = {c.name: c for c in set_now}
            self.session_cookies = names
        return b

    def session_cookie(self) -> str | None:
        """The cookie that carries the session: the one named like a session, else the longest."""
        if not self.login_cookies:
            return None
        hints = ("sess", "sid", "auth", "token", "jwt", "access")
        named = [n for n in self.login_cookies if any(h in n.lower() for h in hints) and "csrf" not in n.lower()]
        return named[0] if named else max(self.login_cookies, key=lambda n: len(self.login_cookies[n].value))

    # -- "does it work?" --------------------------------------------------------------------------
    def baseline(self) -> Response:
        if self._baseline is None:
            assert self.target.protected
            self._baseline = self.browser().get(self.target.protected)
        return self._baseline

    def authenticated(self, b: Browser) -> bool:
        assert self.target.protected
        return self.works(b.get(self.target.protected), self.baseline())

    def works(self, resp: Response, baseline: Response) -> bool:
        if not resp.is_success:
            return False
        if not baseline.is_success:
            return True
        return resp.body != baseline.body and bool(self.target.username and self.target.username.encode() in resp.body)

    # -- tokens ------------------------------------------------------------------------------------
    def json_login(self, *, username: str | None = None, password: str | None = None) -> Response:
        assert self.target.json_login
        body = {
            self.target.username_field or "username": username if username is not None else self.target.username,
            self.target.password_field or "password": password if password is not None else self.target.password,
        }
        return self.browser().post(self.target.json_login, json_body=body)

    def token_login(self) -> dict[str, str]:
        """{"access": token, "refresh": token-or-absent, "access_field": name, "refresh_field": name}."""
        resp = self.json_login()
        try:
            data = resp.json()
        except ValueError:
            data = None
        found = dict(_find_tokens(data)) if isinstance(data, dict) else {}
        access = next((k for k in found if "access" in k.lower()), None) or next(
            (k for k in found if looks_like_jwt(found[k]) and "refresh" not in k.lower()), None
        )
        if access is None:
            raise LoginFailed(f"POST {self.target.json_login} answered {resp.status} without a token in its JSON")
        out = {"access": found[access], "access_field": access}
        refresh = next((k for k in found if "refresh" in k.lower()), None)
        if refresh:
            out.update(refresh=found[refresh], refresh_field=refresh)
        return out

    def token_baseline(self) -> Response:
        if self._token_baseline is None:
            assert self.target.token_protected
            self._token_baseline = self.browser().get(self.target.token_protected)
        return self._token_baseline

    def token_request(self, token: str) -> Response:
        assert self.target.token_protected
        return self.browser().get(self.target.token_protected, bearer=token)

    def token_works(self, token: str) -> tuple[bool, Response]:
        resp = self.token_request(token)
        return resp.is_success and not self.token_baseline().is_success, resp


def _find_tokens(data: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, str) and ("token" in key.lower() or looks_like_jwt(value)):
                yield key, value
            elif isinstance(value, dict):
                yield from _find_tokens(value, key)


