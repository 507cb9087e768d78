"""Real Redis topologies, started once per test run and shared by the sync and async store tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _services import missing_service, start_redis_cluster, start_redis_sentinel


@pytest.fixture(scope="session")
def cluster_url() -> Iterator[str]:
    try:
        cluster = start_redis_cluster(3)
    except RuntimeError as exc:
        missing_service(f"cannot start a Redis Cluster: {exc}")
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def sentinel_url() -> Iterator[str]:
    try:
        sentinel = start_redis_sentinel()
    except RuntimeError as exc:
        missing_service(f"cannot start Redis Sentinel: {exc}")
    try:
        yield sentinel.url
    finally:
        sentinel.stop()
