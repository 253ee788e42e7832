"""The Redis token bucket: refill arithmetic, and one bucket shared by racing clients."""

from __future__ import annotations

import threading

import pytest

from worker.core.store import connect
from worker.deliver.ratelimit import take


@pytest.mark.parametrize(("rate", "steps"), [
    # (count, seconds), [(now, expected wait)]
    ((1, 1.0), [(0.0, 0.0), (0.1, 0.9), (0.5, 0.5), (1.0, 0.0), (1.0, 1.0), (5.0, 0.0), (5.0, 1.0)]),
    ((20, 60.0), [(0.0, 0.0)] * 20 + [(0.0, 3.0), (3.0, 0.0), (3.0, 3.0)]),
    ((2, 10.0), [(0.0, 0.0), (0.0, 0.0), (0.0, 5.0), (100.0, 0.0), (100.0, 0.0), (100.0, 5.0)]),
])  # fmt: skip
def test_bucket_refills_at_the_configured_rate(redis_client, rate, steps):
    for i, (now, wait) in enumerate(steps):
        assert take(redis_client, "dest", rate, now=1000.0 + now) == pytest.approx(
            wait, abs=1e-6
        ), i


def test_buckets_are_per_destination(redis_client):
    assert take(redis_client, "a", (1, 1.0), now=0.0) == 0.0
    assert take(redis_client, "b", (1, 1.0), now=0.0) == 0.0
    assert take(redis_client, "a", (1, 1.0), now=0.0) > 0


@pytest.mark.parametrize("server_time", [True, False], ids=["redis-time", "injected-time"])
def test_racing_clients_share_one_bucket(redis_client, redis_url, server_time):
    """Eight clients (as eight workers would) take 200 times from a 5/h bucket: 5 succeed."""
    clients = [connect(redis_url) for _ in range(8)]
    barrier = threading.Barrier(len(clients))
    taken: list[int] = []

    def worker(client) -> None:
        barrier.wait()
        won = sum(
            take(client, "slack", (5, 3600.0), None if server_time else 42.0) == 0.0
            for _ in range(25)
        )
        taken.append(won)

    threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for c in clients:
        c.close()
    assert len(taken) == len(clients)
    assert sum(taken) == 5
