"""`sessionward audit` against the lab's two apps, as the lab wrote them: it reports their real weaknesses
and not what they do right (issue 12)."""

from __future__ import annotations

from auditrun import found, probe_status, run_audit

SESSION_LAB_WEAKNESSES = {
    "logout-get",  # GET /logout
    "logout-replay",  # the signed cookie still works after logout
    "csrf-login",  # no anti-CSRF token anywhere, login included
    "headers-csp", "headers-hsts", "headers-framing", "headers-nosniff", "headers-referrer", "headers-cache",
    "debug-interactive",  # debug=True: Werkzeug's console
    "login-throttle",
}
SESSION_LAB_DONE_RIGHT = {"cookie-httponly", "cookie-secure", "cookie-samesite", "cookie-lifetime", "cookie-scope",
                          "session-fixation", "login-open-redirect", "login-plain-http"}

JWT_LAB_WEAKNESSES = {
    "login-plain-http",  # credentials and token over plain HTTP
    "token-no-revocation",  # no logout at all: a token lives until exp
    "token-weak-secret",  # JWT_SECRET_KEY = "super-secret"
    "debug-interactive",
    "login-throttle",
    "headers-nosniff", "headers-cache",
    "token-claims",  # no aud / iss
}
JWT_LAB_DONE_RIGHT = {"token-alg-none", "token-signature", "token-tampered", "token-embedded-key",
                      "token-kid-injection", "token-expiry", "token-lifetime", "login-enumeration"}


def test_session_lab_app_weaknesses_reported_and_strengths_not(session_lab) -> None:
    result, doc = run_audit(session_lab.url, "--insecure", "--form-login", "/login", "--username", "admin",
                            "--protected", "/dashboard", "--logout", "/logout")
    assert result.returncode == 1, result.stderr
    ids = found(doc)
    assert ids >= SESSION_LAB_WEAKNESSES, f"missed: {SESSION_LAB_WEAKNESSES - ids}"
    assert not ids & SESSION_LAB_DONE_RIGHT, f"false positives: {ids & SESSION_LAB_DONE_RIGHT}"
    assert "session-client-side" in found(doc, "info")
    status = probe_status(doc)
    assert status["cookies"] == "found" and status["session-ids"] == "found"  # ran, only the prefix / info
    assert {f["id"] for f in doc["findings"] if f["id"].startswith("cookie-")} == {"cookie-prefix"}
    # bounded and quick: every probe within its budget, the whole run within --max-requests
    assert all(p["requests"] <= p["budget"] for p in doc["probes"])
    assert doc["requests"] <= 400 and doc["seconds"] < 60


def test_jwt_lab_app_weaknesses_reported_and_strengths_not(jwt_lab) -> None:
    result, doc = run_audit(jwt_lab.url, "--json-login", "/login", "--username", "apiuser", "--protected", "/profile",
                            password=jwt_lab.password)
    assert result.returncode == 1, result.stderr
    ids = found(doc)
    assert ids >= JWT_LAB_WEAKNESSES, f"missed: {JWT_LAB_WEAKNESSES - ids}"
    assert not ids & JWT_LAB_DONE_RIGHT, f"false positives: {ids & JWT_LAB_DONE_RIGHT}"
    status = probe_status(doc)
    assert status["token-forgery"] == "passed"  # ran every forged token, and the app refused them all
    assert status["enumeration"] == "passed"
    assert all(p["requests"] <= p["budget"] for p in doc["probes"])
    assert doc["seconds"] < 60
    # the password and the token never appear in the report
    assert jwt_lab.password not in result.stdout + result.stderr
    assert "super-secret" not in result.stdout


def test_passive_run_without_a_login_recipe(session_lab) -> None:
    result, doc = run_audit(session_lab.url, "--insecure")
    assert result.returncode == 1
    assert found(doc) == {"debug-interactive"}
    status = probe_status(doc)
    assert status["debug"] == "found" and status["cookies"] == "skipped"
