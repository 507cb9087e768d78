"""The instance folder: generated secrets (mode 0600), the self-signed TLS certificate, database URLs.

Secrets come from the environment when given (`SESSIONWARD_CSRF_KEY`, `SESSIONWARD_REFRESH_KEY`,
`SESSIONWARD_KEK` as hex, or `SESSIONWARD_KEK_FILE`), else are generated once with `secrets` into
`<instance>/secrets.json` with mode 0600 and kept. Never hard-coded, never derived from one another.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from ..exceptions import ConfigError

SECRET_NAMES = ("csrf_key", "refresh_key", "kek")


@dataclass(frozen=True)
class InstanceSecrets:
    csrf_key: bytes
    refresh_key: bytes
    kek: bytes  #: key-encryption key for the signing keys stored in the database


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
    values = {n: bytes.fromhex(stored[n]) for n in SECRET_NAMES}
    values.update(_secrets_from_environment())
    return InstanceSecrets(**values)


def _read_secrets_file(file: Path) -> dict[str, str]:
    mode = stat.S_IMODE(file.stat().st_mode)
    if mode & 0o077:
        raise ConfigError("SESSIONWARD_INSTANCE", f"{file} is readable by others (mode {mode:o}); chmod 600 it")
    try:
        return json.loads(file.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError) as exc:
        raise ConfigError("SESSIONWARD_INSTANCE", f"{file} is unreadable: {exc}") from None


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


def ensure_certificate(path: Path, *, hosts: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """A self-signed certificate for local HTTPS (like the lab's `ssl_context='adhoc'`, but kept between runs)."""
    cert_file, key_file = path / "tls-cert.pem", path / "tls-key.pem"
    if cert_file.exists() and key_file.exists():
        return cert_file, key_file
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in ("localhost", "app.test", "attacker.test", *hosts)]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "127.0.0.2", "::1")]
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
    return store, database
