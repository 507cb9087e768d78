"""The request-path metrics: batched latency observations add up to exactly what direct observations give."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram

from sessionward.metrics import BatchedObserver

BUCKETS = (0.0001, 0.001, 0.01)


def _samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    return {(s.name, s.labels.get("le", "")): s.value for m in registry.collect() for s in m.samples
            if not s.name.endswith("_created")}


def test_batched_observer_matches_direct_observations() -> None:
    values = [0.00005, 0.0001, 0.0002, 0.005, 0.5, 0.0009, 0.01] * 40  # edges included: le is inclusive
    direct_reg, batched_reg = CollectorRegistry(), CollectorRegistry()
    direct = Histogram("lat", "d", buckets=BUCKETS, registry=direct_reg)
    batched = BatchedObserver(Histogram("lat", "b", buckets=BUCKETS, registry=batched_reg), every=64)
    for v in values:
        direct.observe(v)
        batched.observe(v)
    assert _samples(batched_reg) != _samples(direct_reg)  # 280 = 4 x 64 + 24 still pending...
    batched.flush()  # ...until a scrape flushes them
    got, want = _samples(batched_reg), _samples(direct_reg)
    assert got.pop(("lat_sum", "")) == pytest.approx(want.pop(("lat_sum", "")))  # summed in another order
    assert got == want
    assert _samples(batched_reg)[("lat_count", "")] == len(values)
