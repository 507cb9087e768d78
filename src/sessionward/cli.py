"""`sessionward`: run the reference service and administer users, sessions and keys.

Every subcommand takes `--instance DIR` (default `$SESSIONWARD_INSTANCE`, else `./instance`), so the server
and the admin commands work on the same data. Errors print one line and exit non-zero; never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import getpass
import os
import secrets
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cli_keys import add_key_commands
from .clock import iso_utc
from .exceptions import SessionwardError

EXIT_USAGE = 2
DEFAULT_MANAGEMENT_PORT = 9000  #: like Keycloak's management interface
MAX_PORT = 65535


class CLIError(Exception):
    """A one-line message for the user; exit code 2."""


@dataclass
class Services:
    store: Any
    users: Any
    sessions: Any
    clock: Any
    database_url: str
    secrets: Any
    settings: Any  #: the validated `sessionward.settings.Settings` the server would run with


def instance_settings(path: Path, secrets: Any) -> Any:
    """The `Settings` of the instance at `path`: the environment's `SESSIONWARD_*` settings with the instance's
    database URLs and secrets (the environment winning there too), exactly as the server builds them."""
    from .app.instance import database_urls
    from .settings import Settings, environment_settings

    store_url, database_url = database_urls(path)
    return Settings.from_mapping({
        **environment_settings(),
        "SESSIONWARD_STORE_URL": store_url,
        "SESSIONWARD_DATABASE_URL": database_url,
        "SESSIONWARD_CSRF_KEY": secrets.csrf_key,
        "SESSIONWARD_REFRESH_KEY": secrets.refresh_key,
        "SESSIONWARD_KEK": secrets.kek,
    })


def open_services(instance: str | None) -> Services:
    """The core objects over the instance's data (the same stores the server uses; no web framework is loaded)."""
    from .app.instance import instance_path, load_secrets
    from .assembly import open_settings_store, open_user_store
    from .clock import SystemClock
    from .passwords import Argon2idHasher
    from .sessions import SessionManager

    path = instance_path(instance)
    keys = load_secrets(path)
    settings = instance_settings(path, keys)
    clock = SystemClock()
    store = open_settings_store(settings)  # publishes revocations on Redis
    users = open_user_store(settings, hasher=Argon2idHasher(), clock=clock)
    sessions = SessionManager(store=store, policy=settings.session, clock=clock)
    return Services(store, users, sessions, clock, settings.database_url, keys, settings)


def _user_by_name(svc: Services, name: str) -> Any:
    user = svc.users.get_by_username(name)
    if user is None:
        raise CLIError(f"no user named {name!r}")
    return user


def ensure_admin(svc: Services, out: Callable[[str], None] = print) -> None:
    """On first start with no users, create `admin` with a random password printed once."""
    if svc.users.count() > 0:
        return
    password = secrets.token_urlsafe(15)
    svc.users.create("admin", password)
    out("=" * 64)
    out("First start: created user 'admin' with password:")
    out(f"    {password}")
    out("It is shown only this once. Change it at /password after signing in.")
    out("=" * 64)


# -- commands ---------------------------------------------------------------------------------

def cmd_serve(args: argparse.Namespace) -> int:
    # Before anything imports prometheus_client: workers must inherit the multiprocess mode.
    from .extras import require

    asgi = args.asgi or args.server == "uvicorn"
    if asgi:  # the ASGI service under uvicorn (workers): `pip install 'sessionward[asgi]'`
        for module in ("fastapi", "uvicorn", *(("gunicorn", "uvicorn_worker") if args.server == "gunicorn" else ())):
            require(module, "asgi")
    else:
        require("flask", "server")  # the Flask service under gunicorn: `pip install 'sessionward[server]'`
        require("gunicorn", "server")
    _metrics_dir(Path(args.instance or os.environ.get("SESSIONWARD_INSTANCE") or "instance").resolve())
    from .app.instance import check_private, database_urls, ensure_certificate, instance_path, private_paths

    path = instance_path(args.instance)
    os.environ["SESSIONWARD_INSTANCE"] = str(path)

    if args.workers < 1:
        raise CLIError("--workers must be at least 1")
    if args.management_port is not None and not 0 <= args.management_port <= MAX_PORT:
        raise CLIError("--management-port must be 0 (off) or a port number")
    if bool(args.certfile) != bool(args.keyfile):
        raise CLIError("--certfile and --keyfile go together")
    for f in (args.certfile, args.keyfile):
        if f and not os.path.isfile(f):
            raise CLIError(f"no such file: {f}")
    check_private(private_paths(path, database_urls(path), args.keyfile))  # O6: refuse a loose instance
    _build_app(path, asgi=asgi)  # validates every setting and creates the schema before any worker starts
    svc = open_services(str(path))
    ensure_admin(svc)
    certfile, keyfile = (args.certfile, args.keyfile) if args.certfile else ensure_certificate(path, hosts=(args.host,))
    _check_port_free(args.host, args.port)
    management = _management_listener(args, svc)
    kind = "ASGI, uvicorn" if args.server == "uvicorn" else "ASGI, gunicorn + uvicorn workers" if asgi else "WSGI"
    print(f"sessionward serving https://{args.host}:{args.port}/ ({kind}; instance {path})", flush=True)
    ready = management.start if management is not None else None
    if args.server == "uvicorn":
        from .server_asgi import run_uvicorn

        run_uvicorn(host=args.host, port=args.port, workers=args.workers, certfile=str(certfile),
                    keyfile=str(keyfile), before_serving=ready)
        return 0
    from .server import run_gunicorn

    run_gunicorn(
        host=args.host, port=args.port, workers=args.workers, certfile=str(certfile), keyfile=str(keyfile),
        instance=str(path), when_ready=ready, asgi=asgi,
    )
    return 0


PORT_WAIT = 3.0  #: seconds `serve` waits for a port another server still holds (one being stopped) before refusing


def _check_port_free(host: str, port: int) -> None:
    """Refuse a port another server listens on. The workers bind with SO_REUSEPORT (so that the kernel spreads
    connections over them), and Linux lets any later listener of the same user that asks for it share such a
    port: a second `serve` on a taken port would silently get half of the first one's connections. A probe
    without SO_REUSEPORT cannot bind a port that any listener holds (SO_REUSEADDR only forgives the TIME_WAIT
    leftovers of a server that just stopped). A port held for up to `PORT_WAIT` seconds more (a server being
    stopped, its last workers exiting) is waited for. Two servers started at the very same instant cannot both
    pass: each first takes a lock on the port (`sessionward.portlock`), held until its processes exit."""
    if port == 0:
        return
    from .portlock import PortTaken, hold_port

    try:  # first the lock: of two servers started at once, one waits here while the other binds
        hold_port(port, wait=PORT_WAIT)
    except PortTaken as exc:
        raise CLIError(f"cannot serve on {host}:{port}: {exc}") from None
    deadline = time.monotonic() + PORT_WAIT
    while True:
        try:
            family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
            return
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                raise CLIError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
        time.sleep(0.1)


def _build_app(path: Path, *, asgi: bool) -> None:
    """Build the service once in this process: its settings are validated, and its schema and first signing
    key are made, before any worker starts (the ASGI app runs its lifespan once: stores open and close)."""
    if not asgi:
        from .app import create_app

        create_app(path)
        return
    from .server_asgi import check_lifespan, load_asgi_factory

    check_lifespan(load_asgi_factory()(path))


def _management_listener(args: argparse.Namespace, svc: Services) -> Any:
    """The loopback listener for /metrics and the detailed /healthz (bound now, served once gunicorn is up)."""
    management = svc.settings.management  # SESSIONWARD_MANAGEMENT_PORT / _HOST, unless the flags say otherwise
    port = management.port if args.management_port is None else args.management_port
    host = management.host if args.management_host is None else args.management_host
    if not port:
        return None
    from .app.management import ManagementServer, health_checks, management_app

    try:
        server = ManagementServer(host, port, management_app(health_checks(svc.store, svc.users)))
    except OSError as exc:
        raise CLIError(f"cannot listen on {host}:{port} for --management-port: {exc.strerror or exc}") from None
    print(f"sessionward management (metrics, health) on http://{host}:{port}/", flush=True)
    return server


def _metrics_dir(path: Any) -> None:
    """Workers share Prometheus counters through files in the instance folder, emptied at each start."""
    import shutil

    folder = path / "metrics"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700, parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        data = sys.stdin.readline()
        password = data.rstrip("\r\n")
        if not password:
            raise CLIError("no password on standard input")
        return password
    if not sys.stdin.isatty():
        raise CLIError("no terminal to ask for a password; use --password-stdin")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Password again: "):
        raise CLIError("the passwords do not match")
    return first


def cmd_users_add(args: argparse.Namespace) -> int:
    svc = open_services(args.instance)
    user = svc.users.create(args.name, _read_password(args))
    print(f"created user {user.username!r} ({user.id})")
    return 0


def cmd_users_disable(args: argparse.Namespace) -> int:
    svc = open_services(args.instance)
    user = _user_by_name(svc, args.name)
    svc.users.set_disabled(user.id, True)
    ended = svc.sessions.revoke_all(user.id)  # UserStore.set_disabled logs account_disabled itself
    print(f"disabled {user.username!r}; ended {ended} session(s) and token families")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    svc = open_services(args.instance)
    users = svc.users.list()
    print(f"{'USERNAME':<24} {'STATUS':<9} {'CREATED (UTC)':<20} ID")
    for user in users:
        status = "disabled" if user.disabled else "active"
        print(f"{user.username:<24} {status:<9} {iso_utc(user.created_at):<20} {user.id}")
    return 0


def cmd_sessions_list(args: argparse.Namespace) -> int:
    svc = open_services(args.instance)
    now = svc.clock.now()
    if args.user:
        records = svc.store.list_for_user(_user_by_name(svc, args.user).id, now=now)
    else:
        records = svc.store.list_all(now=now)
    names: dict[str, str] = {}
    print(f"{'ID':<24} {'USER':<16} {'KIND':<7} {'ADDRESS':<16} {'CREATED (UTC)':<20} {'LAST SEEN (UTC)':<20} DEVICE")
    from .app.devices import describe_user_agent

    for r in records:
        if r.user_id not in names:
            user = svc.users.get(r.user_id)
            names[r.user_id] = user.username if user else "?"
        print(
            f"{r.id:<24} {names[r.user_id]:<16} {r.kind:<7} {r.ip or '-':<16} {iso_utc(r.created_at):<20} "
            f"{iso_utc(r.last_seen):<20} {describe_user_agent(r.user_agent)}"
        )
    return 0


def cmd_sessions_revoke(args: argparse.Namespace) -> int:
    svc = open_services(args.instance)
    if args.user:
        if args.id:
            raise CLIError("give a session ID or --user NAME, not both")
        user = _user_by_name(svc, args.user)
        print(f"ended {svc.sessions.revoke_all(user.id)} session(s) and token families of {user.username!r}")
        return 0
    if not args.id:
        raise CLIError("give a session ID or --user NAME")
    record = svc.store.get(args.id, now=svc.clock.now())
    if record is None or not svc.sessions.revoke(record.user_id, args.id):
        raise CLIError(f"no live session with id {args.id!r}")
    print(f"ended session {args.id}")
    return 0


def cmd_sessions_purge(args: argparse.Namespace) -> int:
    svc = open_services(args.instance)
    print(f"purged {svc.store.purge_expired(now=svc.clock.now())} expired record(s)")
    return 0


# -- parser -----------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2
        self.exit(EXIT_USAGE, f"sessionward: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)  # only lends its arguments (`parents=`); typeshed wants the subparsers' class
    common.add_argument("--instance", metavar="DIR", default=None,
                        help="instance folder (default: $SESSIONWARD_INSTANCE, else ./instance)")
    parser = _Parser(prog="sessionward", description="Secure session management: service and administration.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = sub.add_parser("serve", parents=[common], help="run the reference service over HTTPS (gunicorn)")
    serve.add_argument("--asgi", action="store_true",
                       help="serve the ASGI (Starlette) service: gunicorn with uvicorn workers")
    serve.add_argument("--server", choices=("gunicorn", "uvicorn"), default="gunicorn",
                       help="gunicorn (default; the master keeps per-worker sockets) or uvicorn alone (implies --asgi)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=5000)
    serve.add_argument("--workers", type=int, default=2)
    serve.add_argument("--certfile")
    serve.add_argument("--keyfile")
    serve.add_argument("--management-port", type=int, default=None, metavar="PORT",
                       help="plain-HTTP port for /metrics and the detailed /healthz (default "
                            f"$SESSIONWARD_MANAGEMENT_PORT, else {DEFAULT_MANAGEMENT_PORT}; 0: off)")
    serve.add_argument("--management-host", default=None, metavar="HOST",
                       help="address of the management listener (default $SESSIONWARD_MANAGEMENT_HOST, else "
                            "127.0.0.1: loopback only)")
    serve.set_defaults(func=cmd_serve)

    users = sub.add_parser("users", help="manage users").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    add = users.add_parser("add", parents=[common], help="add a user")
    add.add_argument("name")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.set_defaults(func=cmd_users_add)
    disable = users.add_parser("disable", parents=[common], help="disable a user and end all their sessions")
    disable.add_argument("name")
    disable.set_defaults(func=cmd_users_disable)
    users.add_parser("list", parents=[common], help="list users").set_defaults(func=cmd_users_list)

    sessions = sub.add_parser("sessions", help="list and end sessions").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    slist = sessions.add_parser("list", parents=[common], help="list live sessions and token families")
    slist.add_argument("--user", metavar="NAME")
    slist.set_defaults(func=cmd_sessions_list)
    revoke = sessions.add_parser("revoke", parents=[common], help="end one session, or all of a user's")
    revoke.add_argument("id", nargs="?")
    revoke.add_argument("--user", metavar="NAME")
    revoke.set_defaults(func=cmd_sessions_revoke)
    sessions.add_parser("purge", parents=[common], help="delete expired sessions, denylist entries and counters"
                        ).set_defaults(func=cmd_sessions_purge)

    from .audit.cli import add_audit_command

    add_audit_command(sub)
    add_key_commands(sub, common, open_services, CLIError)  # `keys ...` lives in its own module
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .config import PRIVATE_UMASK  # not via .app: prometheus_client must not be imported before serve's setup

    os.umask(PRIVATE_UMASK)  # every command may create instance files (database, -wal/-shm, secrets, keys): O6
    try:
        return int(args.func(args))
    except CLIError as exc:
        print(f"sessionward: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SessionwardError as exc:
        print(f"sessionward: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
