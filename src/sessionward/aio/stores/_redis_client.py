"""Redis store URLs and clients: standalone (redis://, rediss://, unix://), Sentinel and Cluster.

One source for both flavours: the async clients here, the sync ones in the module generated from it."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import redis.exceptions as rex
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from sessionward.aio.stores._flavour import ready_cluster
from sessionward.exceptions import ConfigError, StoreUnavailable

_UNAVAILABLE = (
    rex.ConnectionError,  # includes AuthenticationError, BusyLoadingError, MasterNotFoundError
    rex.TimeoutError,
    rex.ClusterError,  # ClusterDownError, MasterDownError
    rex.RedisClusterException,  # cluster cannot be reached, slot not covered
    rex.TryAgainError,
    rex.ReadOnlyError,  # talking to a replica after a failover
    rex.OutOfMemoryError,
)


# -- URLs ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RedisURL:
    """A parsed store URL. `mode` is "standalone" (redis://, rediss://, unix://), "sentinel" or "cluster"."""

    mode: str
    url: str
    hosts: tuple[tuple[str, int], ...] = ()
    service_name: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None


def _split_hosts(netloc: str, default_port: int, url: str) -> tuple[tuple[str, int], ...]:
    hosts = []
    for raw in netloc.split(","):
        part = raw.strip()
        m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?|([^:\[\]]+)(?::(\d+))?", part)
        if m is None:
            raise ConfigError("SESSIONWARD_STORE_URL", f"bad host {part!r} in {_redact(url)}")
        host = m.group(1) or m.group(3)
        port = int(m.group(2) or m.group(4) or default_port)
        hosts.append((host, port))
    return tuple(hosts)


def _redact(url: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", url)


def parse_redis_url(url: str) -> RedisURL:
    """Parse a store URL. Raises `ConfigError` for an unknown scheme or a malformed URL."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ConfigError("SESSIONWARD_STORE_URL", f"not a URL: {_redact(url)}")
    if scheme in ("redis", "rediss", "unix"):
        return RedisURL(mode="standalone", url=url)
    if scheme not in ("redis+sentinel", "redis+cluster"):
        raise ConfigError("SESSIONWARD_STORE_URL", f"unknown Redis URL scheme {scheme!r}")
    netloc, _, path = rest.partition("/")
    username, password, netloc = _split_userinfo(netloc)
    if not netloc:
        raise ConfigError("SESSIONWARD_STORE_URL", f"no host in {_redact(url)}")
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    if scheme == "redis+cluster":
        if parts:
            raise ConfigError("SESSIONWARD_STORE_URL", "a cluster URL has no path (cluster mode has only db 0)")
        return RedisURL(mode="cluster", url=url, hosts=_split_hosts(netloc, 6379, url), username=username,
                        password=password)
    service_name, db = _sentinel_path(parts)
    return RedisURL(mode="sentinel", url=url, hosts=_split_hosts(netloc, 26379, url), service_name=service_name,
                    db=db, username=username, password=password)


def _split_userinfo(netloc: str) -> tuple[str | None, str | None, str]:
    """(username, password, hosts) of `[user[:password]@]hosts`."""
    if "@" not in netloc:
        return None, None, netloc
    userinfo, _, hosts = netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return unquote(user) or None, unquote(password) or None, hosts


def _sentinel_path(parts: list[str]) -> tuple[str, int]:
    """(service_name, db) of a Sentinel URL's path `service_name[/db]`."""
    service_name, _, db = "/".join(parts).partition("/")
    db = db or "0"
    if not service_name or not db.isdigit():  # also refuses a third part ("2/x" is no number)
        raise ConfigError("SESSIONWARD_STORE_URL", "use redis+sentinel://host:port[,host:port]/service_name[/db]")
    return service_name, int(db)


def _is_cluster(client: Any) -> bool:
    from redis.asyncio.cluster import RedisCluster

    return isinstance(client, RedisCluster)


async def make_client(
    url: str,
    *,
    socket_timeout: float = 2.0,
    socket_connect_timeout: float = 2.0,
    max_connections: int = 50,
    health_check_interval: int = 30,
    ssl_ca_certs: str | None = None,
) -> Any:
    """A redis-py client for a store URL (see the store's `from_url`), with redis-py's own retries off (the
    store retries reads itself). Raises `ConfigError`; `StoreUnavailable` if a cluster cannot be reached."""
    parsed = parse_redis_url(url)
    common: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_connect_timeout,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": health_check_interval,
    }
    if parsed.mode == "standalone":
        if ssl_ca_certs is not None and url.lower().startswith("rediss://"):
            common["ssl_ca_certs"] = ssl_ca_certs
        try:
            return Redis.from_url(url, max_connections=max_connections, **common)
        except ValueError as exc:
            raise ConfigError("SESSIONWARD_STORE_URL", f"bad Redis URL {_redact(url)}: {exc}") from None
    auth: dict[str, Any] = {"username": parsed.username, "password": parsed.password}
    if parsed.mode == "sentinel":
        from redis.asyncio.sentinel import Sentinel

        sentinel = Sentinel(list(parsed.hosts), sentinel_kwargs=dict(common), **common)
        return sentinel.master_for(parsed.service_name, db=parsed.db, max_connections=max_connections, **auth)
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    client = None
    try:
        client = RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in parsed.hosts], max_connections=max_connections,
            **auth, **common,
        )
        await ready_cluster(client)
    except _UNAVAILABLE as exc:
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()
        raise StoreUnavailable(f"Redis cluster unavailable: {type(exc).__name__}") from exc
    return client
