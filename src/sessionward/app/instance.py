"""The instance folder: generated secrets (mode 0600), the self-signed TLS certificate, database URLs.

Secrets come from the environment when given (`SESSIONWARD_CSRF_KEY`, `SESSIONWARD_REFRESH_KEY`,
`SESSIONWARD_KEK`, `SESSIONWARD_DPOP_NONCE_KEY`, `SESSIONWARD_DBSC_CHALLENGE_KEY`, `SESSIONWARD_DBSC_COOKIE_KEY`
as hex, or `SESSIONWARD_KEK_FILE`), else are generated once with `secrets` into `<instance>/secrets.json` with
mode 0600 and kept. Never hard-coded, never derived from one another.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import ConfigError
from ..oncefile import once_file

SECRET_NAMES = ("csrf_key", "refresh_key", "kek", "dpop_nonce_key", "dbsc_challenge_key", "dbsc_cookie_key")


@dataclass(frozen=True)
class InstanceSecrets:
    csrf_key: bytes
    refresh_key: bytes
    kek: bytes  #: key-encryption key for the signing keys stored in the database
    dbsc_challenge_key: bytes  #: DBSC registration and refresh challenges
    dbsc_cookie_key: bytes  #: the short device-bound cookie of DBSC
    dpop_nonce_key: bytes  #: MAC key of the DPoP server nonces (`SESSIONWARD_DPOP_NONCE_KEY`)


def instance_path(given: str | os.PathLike[str] | None = None) -> Path:
    """`given`, else `$SESSIONWARD_INSTANCE`, else `./instance`; created with mode 0700 if missing."""
    path = Path(given or os.environ.get("SESSIONWARD_INSTANCE") or "instance").resolve()
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError("SESSIONWARD_INSTANCE", f"cannot create instance folder {path}: {exc.strerror}") from None
    if not path.is_dir():
        raise ConfigError("SESSIONWARD_INSTANCE", f"{path} is not a folder")
    return path


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _from_env(name: str) -> bytes | None:
    value = os.environ.get(name)
    if not value:
        return None
    try:
        return bytes.fromhex(value.strip())
    except ValueError:
        raise ConfigError(name, "must be hex text of 32 or more random bytes (e.g. `openssl rand -hex 32`)") from None


def load_secrets(path: Path) -> InstanceSecrets:
    """Secrets from the environment, else from `<path>/secrets.json`, generated there on first start."""
    file = path / "secrets.json"
    stored = _read_secrets_file(file) if file.exists() else {}
    missing = [n for n in SECRET_NAMES if n not in stored]
    if missing:
        for name in missing:
            stored[name] = secrets.token_bytes(32).hex()
        tmp = file.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        _write_private(tmp, json.dumps(stored, indent=2).encode())
        os.replace(tmp, file)
    values = {n: _stored_key(file, n, stored[n]) for n in SECRET_NAMES}
    values.update(_secrets_from_environment())
    return InstanceSecrets(**values)


def _stored_key(file: Path, name: str, value: object) -> bytes:
    """One key of `secrets.json` as bytes. Raises `ConfigError` naming the file and the entry (never its value)."""
    if isinstance(value, str):
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    raise ConfigError("SESSIONWARD_INSTANCE", f"{file}: entry {name!r} must be hex text")


def _read_secrets_file(file: Path) -> dict[str, object]:
    mode = stat.S_IMODE(file.stat().st_mode)
    if mode & 0o077:
        raise ConfigError("SESSIONWARD_INSTANCE", f"{file} is readable by others (mode {mode:o}); chmod 600 it")
    try:
        stored = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError("SESSIONWARD_INSTANCE", f"{file} is unreadable: {exc}") from None
    if not isinstance(stored, dict):
        raise ConfigError("SESSIONWARD_INSTANCE", f"{file} must hold a JSON object of hex keys")
    return stored


def _secrets_from_environment() -> dict[str, bytes]:
    """The secrets set by `SESSIONWARD_KEK_FILE` and `SESSIONWARD_<NAME>`, which win over the file."""
    values: dict[str, bytes] = {}
    kek_file = os.environ.get("SESSIONWARD_KEK_FILE")
    if kek_file:
        try:
            values["kek"] = bytes.fromhex(Path(kek_file).read_text().strip())
        except (OSError, ValueError) as exc:
            raise ConfigError("SESSIONWARD_KEK_FILE", f"cannot read a hex key from {kek_file}: {exc}") from None
    for name in SECRET_NAMES:
        env = _from_env(f"SESSIONWARD_{name.upper()}")
        if env is not None:
            values[name] = env
    return values


def check_private(paths: list[Path]) -> None:
    """Refuse (like ssh with a key) a folder or file that group or others may read, write or enter (O6).
    Missing paths are skipped. Raises `ConfigError` whose one-line message names the path."""
    for item in paths:
        try:
            mode = stat.S_IMODE(item.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            fix = "700" if item.is_dir() else "600"
            raise ConfigError(
                "SESSIONWARD_INSTANCE", f"{item} is accessible by group or others (mode {mode:o}); chmod {fix} it"
            )


def private_paths(path: Path, urls: tuple[str, ...], keyfile: str | os.PathLike[str] | None = None) -> list[Path]:
    """What must stay private: the instance folder, `secrets.json`, the TLS key, and each SQLite database of
    `urls` (store, users) with its `-wal`/`-shm` files and the store's side file of one-time keys (`-once`, with
    its own `-wal`/`-shm`)."""
    paths = [path, path / "secrets.json", Path(keyfile) if keyfile else path / "tls-key.pem"]
    for database in dict.fromkeys(filter(None, map(sqlite_file, urls))):
        once = once_file(database)
        for file in (database, once):
            paths += [file, Path(f"{file}-wal"), Path(f"{file}-shm")]
    return paths


def sqlite_file(url: str) -> Path | None:
    """The file of a `sqlite:///...` URL, or None (PostgreSQL, in-memory SQLite)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url[len(prefix):] in ("", ":memory:"):
        return None
    return Path(url[len(prefix):].split("?", 1)[0])


def ensure_certificate(path: Path, *, hosts: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """A self-signed certificate for local HTTPS (like the lab's `ssl_context='adhoc'`, but kept between runs),
    naming only what the service answers as: `localhost`, 127.0.0.1, ::1 and the given `hosts` (the address
    `serve --host` binds to, when it is a specific one)."""
    cert_file, key_file = path / "tls-cert.pem", path / "tls-key.pem"
    if cert_file.exists() and key_file.exists():
        return cert_file, key_file
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(("localhost", "127.0.0.1", "::1", *hosts)):
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            names.append(x509.DNSName(host))
            continue
        if not address.is_unspecified:  # 0.0.0.0 / :: is a bind address, not a name
            names.append(x509.IPAddress(address))
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sessionward local")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_file.unlink(missing_ok=True)
    _write_private(
        key_file,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_file, key_file


def database_urls(path: Path) -> tuple[str, str]:
    """(store URL, users/keys database URL), from the environment or SQLite files in the instance folder."""
    default = f"sqlite:///{path / 'sessionward.db'}"
    database = os.environ.get("SESSIONWARD_DATABASE_URL") or default
    store = os.environ.get("SESSIONWARD_STORE_URL") or database
    for url in (database, store):
        _create_private_sqlite(url)
    return store, database


def _create_private_sqlite(url: str) -> None:
    """Create a missing SQLite database file empty with mode 0600 before SQLite does (with the process umask):
    its `-wal` and `-shm` files take the database file's mode, so all three stay private (O6)."""
    file = sqlite_file(url)
    if file is None or file.exists() or not file.parent.is_dir():
        return
    with contextlib.suppress(FileExistsError):  # another process made it first
        _write_private(file, b"")
