"""`sessionward audit URL`: the command line around `run_audit`.

Exit status: 0 no finding at or above --fail-on, 1 findings, 2 usage error or target unreachable.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .context import Target
from .http import AuditHTTPError, Client
from .model import Severity

__all__ = ["add_audit_command", "cmd_audit"]

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


class AuditUsageError(Exception):
    """A wrong option (exit 2)."""


def add_audit_command(sub: Any) -> None:
    p = sub.add_parser("audit", help="audit a running web app's session management (cookies, logout, CSRF, tokens...)",
                       description="Probe a running app's session management and report what it lacks, with "
                                   "evidence and the fix. Only URL's origin is contacted.")
    p.add_argument("url", metavar="URL", help="the app's origin, e.g. https://127.0.0.1:5000")
    g = p.add_argument_group("login recipe (without one, only passive probes run)")
    g.add_argument("--form-login", metavar="PATH", help="HTML login form (fields detected from the form)")
    g.add_argument("--json-login", metavar="PATH", help="JSON login endpoint returning a token")
    g.add_argument("--username", metavar="U")
    g.add_argument("--password-env", metavar="VAR", help="read the password from this environment variable")
    g.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    g.add_argument("--username-field", metavar="NAME")
    g.add_argument("--password-field", metavar="NAME")
    g.add_argument("--protected", metavar="PATH", help="a page or API route that needs the session/token")
    g.add_argument("--api-protected", metavar="PATH", help="the API route for the token (default: --protected)")
    g.add_argument("--logout", metavar="PATH")
    g.add_argument("--logout-method", choices=["GET", "POST"], type=str.upper)
    g.add_argument("--api-logout", metavar="PATH", help="the token logout route (default: --logout)")
    g.add_argument("--refresh", metavar="PATH", help="the refresh-token route")
    g.add_argument("--unsafe", metavar="PATH",
                   help="a state-changing POST route for the CSRF probe (default: --logout)")
    g.add_argument("--jwks", metavar="PATH", help="the JWKS route (default /.well-known/jwks.json)")
    g.add_argument("--public-key", metavar="PEM", help="the server's public key file, for the key-confusion probe")
    s = p.add_argument_group("safety")
    s.add_argument("--rate", type=float, default=4.0, help="requests per second at most (default 4)")
    s.add_argument("--max-requests", type=int, default=400, help="requests for the whole run at most (default 400)")
    s.add_argument("--aggressive", action="store_true",
                   help="also hammer the real account (throttling, timing): may lock it out")
    s.add_argument("--throttle-attempts", type=int, default=10,
                   help="failed logins for the throttling probe (default 10)")
    s.add_argument("--timeout", type=float, default=10.0)
    s.add_argument("--insecure", action="store_true",
                   help="do not verify the TLS certificate (self-signed dev servers)")
    s.add_argument("--cacert", metavar="FILE", help="trust this CA / self-signed certificate")
    o = p.add_argument_group("output")
    o.add_argument("--format", choices=["table", "json", "sarif", "junit"], default="table")
    o.add_argument("--output", "-o", metavar="FILE", help="write the report here (default: standard output)")
    o.add_argument("--fail-on", default="medium", type=Severity.parse,
                   help="exit 1 when a finding is at or above this severity (default medium)")
    o.add_argument("--only", metavar="PROBE", action="append", help="run only these probes (repeatable)")
    o.add_argument("--quiet", "-q", action="store_true", help="no progress on standard error")
    p.set_defaults(func=cmd_audit)


def _password(args: argparse.Namespace) -> str | None:
    if args.password_env:
        value = os.environ.get(args.password_env)
        if value is None:
            raise AuditUsageError(f"--password-env {args.password_env}: the variable is not set")
        return value
    if args.password_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise AuditUsageError("no password on standard input")
        return line
    return None


def target_from(args: argparse.Namespace) -> Target:
    if (args.form_login or args.json_login) and not args.username:
        raise AuditUsageError("a login recipe needs --username")
    if (args.form_login or args.json_login) and not (args.protected or args.api_protected):
        raise AuditUsageError("a login recipe needs --protected PATH (a page or route that needs the login)")
    if args.rate <= 0 or args.max_requests < 1 or args.throttle_attempts < 1:
        raise AuditUsageError("--rate, --max-requests and --throttle-attempts must be positive")
    pem = None
    if args.public_key:
        try:
            with open(args.public_key, "rb") as fh:
                pem = fh.read()
        except OSError as exc:
            raise AuditUsageError(f"--public-key: {exc.strerror}: {args.public_key}") from None
    return Target(
        form_login=args.form_login, json_login=args.json_login, username=args.username, password=_password(args),
        username_field=args.username_field, password_field=args.password_field, protected=args.protected,
        api_protected=args.api_protected, logout=args.logout, logout_method=args.logout_method,
        api_logout=args.api_logout, refresh=args.refresh, unsafe=args.unsafe, jwks=args.jwks, public_key_pem=pem,
        aggressive=args.aggressive, throttle_attempts=args.throttle_attempts,
    )


def cmd_audit(args: argparse.Namespace) -> int:
    from .report import render
    from .runner import run_audit

    try:
        target = target_from(args)
        client = Client(args.url, rate=args.rate, max_requests=args.max_requests, timeout=args.timeout,
                        insecure=args.insecure, cacert=args.cacert)
    except (AuditUsageError, ValueError) as exc:
        print(f"sessionward: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.only:
        from .probes import all_probes

        names = {p.name for p in all_probes()}
        unknown = sorted(set(args.only) - names)
        if unknown:
            print(f"sessionward: error: --only {unknown[0]}: no such probe (one of {', '.join(sorted(names))})",
                  file=sys.stderr)
            return EXIT_USAGE
    progress = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    try:
        report = run_audit(client, target, only=set(args.only) if args.only else None, progress=progress)
    except AuditHTTPError as exc:
        print(f"sessionward: error: target unreachable: {exc}", file=sys.stderr)
        return EXIT_USAGE
    text = render(report, args.format, fail_on=args.fail_on)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    worst = report.worst()
    return EXIT_FINDINGS if worst is not None and worst >= args.fail_on else EXIT_OK
