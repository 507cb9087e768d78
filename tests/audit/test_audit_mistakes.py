"""Each check of `sessionward audit` that neither lab app nor a broken reference variant shows, shown on
the one mistake it names (tests/audit/labapps/mistakes_app.py, a URL prefix per mistake), and only there:
the same probe run on a prefix without that mistake reports nothing."""

from __future__ import annotations

import pytest
from auditrun import found, probe_status, run_audit

# mistake -> (probe, the checks it must report)
COOKIE_MISTAKES = {
    "insecure-cookie": ("cookies", {"cookie-secure", "cookie-samesite", "cookie-scope", "cookie-lifetime",
                                    "cookie-prefix"}),
    "counter-ids": ("session-ids", {"session-id-entropy"}),
    "fixation": ("session-ids", {"session-fixation"}),
    "open-redirect": ("open-redirect", {"login-open-redirect"}),
    "enumeration": ("enumeration", {"login-enumeration"}),
    "traceback": ("debug", {"debug-traceback"}),
    "cross-site": ("csrf", {"csrf-cross-site"}),
}
TOKEN_MISTAKES = {
    "alg-none": ("token-forgery", {"token-alg-none"}),
    "empty-signature": ("token-forgery", {"token-signature"}),
    "signature-only": ("token-forgery", {"token-tampered"}),
    "key-confusion": ("token-forgery", {"token-key-confusion"}),
    "embedded-jwk": ("token-forgery", {"token-embedded-key"}),
    "kid-path": ("token-forgery", {"token-kid-injection"}),
    "weak-no-exp": ("token-claims", {"token-weak-secret", "token-expiry", "token-lifetime", "token-claims"}),
    "refresh-reuse": ("token-life", {"token-refresh-reuse"}),
}
CLEAN = "none"  # a prefix with no mistake: every route above behaves correctly there


def cookie_recipe(m: str) -> tuple[str, ...]:
    return ("--insecure", "--form-login", f"/c/{m}/login", "--username", "alice", "--protected", f"/c/{m}/home",
            "--logout", f"/c/{m}/logout")


def token_recipe(m: str) -> tuple[str, ...]:
    return ("--insecure", "--json-login", f"/t/{m}/login", "--username", "alice", "--protected", f"/t/{m}/profile",
            "--api-logout", f"/t/{m}/logout", "--refresh", f"/t/{m}/refresh", "--jwks", f"/t/{m}/jwks")


def _audit(mistakes, recipe: tuple[str, ...], probe: str) -> set[str]:
    result, doc = run_audit(mistakes.url, *recipe, "--only", probe, password=mistakes.password)
    assert doc is not None, result.stderr
    status = probe_status(doc)[probe]
    assert status in ("found", "passed"), (status, doc["probes"])
    assert mistakes.password not in result.stdout
    return found(doc)


@pytest.mark.parametrize("mistake", sorted(COOKIE_MISTAKES))
def test_cookie_session_mistake_reported_by_its_probe(mistakes, mistake: str) -> None:
    probe, expected = COOKIE_MISTAKES[mistake]
    assert _audit(mistakes, cookie_recipe(mistake), probe) == expected
    assert _audit(mistakes, cookie_recipe(CLEAN), probe) == ({"cookie-prefix"} if probe == "cookies" else set())


@pytest.mark.parametrize("mistake", sorted(TOKEN_MISTAKES))
def test_token_mistake_reported_by_its_probe(mistakes, mistake: str) -> None:
    probe, expected = TOKEN_MISTAKES[mistake]
    assert _audit(mistakes, token_recipe(mistake), probe) == expected
    if probe != "token-forgery" or mistake == "alg-none":  # the clean run of each probe once is enough
        assert _audit(mistakes, token_recipe(CLEAN), probe) == set()
