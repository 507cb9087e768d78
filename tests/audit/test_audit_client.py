"""The audit's safety rails, against a real server: only the given origin is contacted, and the run's and
each probe's request budgets are hard limits (a request over budget is never sent)."""

from __future__ import annotations

import pytest

from sessionward.audit.http import Browser, BudgetExceeded, Client, OriginError


@pytest.mark.parametrize("path", ["https://attacker.invalid/x", "//attacker.invalid/x", "http://127.0.0.1:1/",
                                  "https://127.0.0.1:1/"])
def test_requests_never_leave_the_origin(session_lab, path: str) -> None:
    client = Client(session_lab.url, insecure=True, rate=50)
    with pytest.raises(OriginError):
        Browser(client).get(path)
    assert client.sent == 0
    assert Browser(client).get("/login").status == 200 and client.sent == 1


def test_run_budget_is_a_hard_limit(session_lab) -> None:
    client = Client(session_lab.url, insecure=True, rate=50, max_requests=2)
    b = Browser(client)
    b.get("/login"), b.get("/login")
    with pytest.raises(BudgetExceeded):
        b.get("/login")
    assert client.sent == 2


def test_probe_budget_is_a_hard_limit(session_lab) -> None:
    client = Client(session_lab.url, insecure=True, rate=50)
    client.start_probe(1)
    Browser(client).get("/login")
    with pytest.raises(BudgetExceeded):
        Browser(client).get("/login")
    assert client.end_probe() == 1
    Browser(client).get("/login")  # the next probe starts with its own budget
    assert client.sent == 2


def test_certificate_checked_unless_told_otherwise(session_lab) -> None:
    from sessionward.audit.http import AuditHTTPError

    with pytest.raises(AuditHTTPError, match="--insecure"):
        Browser(Client(session_lab.url, rate=50)).get("/login")


def test_requests_are_paced_to_the_rate(session_lab) -> None:
    """The n-th request may start no earlier than n/rate seconds after the first: with a clock that stands
    still, the client sleeps 1/4, 2/4, 3/4 s at rate 4 (the global rate limit, checked without waiting)."""
    slept: list[float] = []
    client = Client(session_lab.url, insecure=True, rate=4, monotonic=lambda: 100.0, sleep=slept.append)
    for _ in range(4):
        Browser(client).get("/login")
    assert slept == pytest.approx([0.25, 0.5, 0.75])
