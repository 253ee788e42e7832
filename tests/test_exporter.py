"""``/healthz`` and ``/metrics`` over real HTTP, from the heartbeats and counters in a real Redis."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from serving import get

from worker.core import keys
from worker.core.metrics import HEARTBEAT_MAX_AGE, heartbeat
from worker.core.store import connect
from worker.service.exporter import RedisCollector, serve
from worker.service.queue import depths


def exporter(client: redis.Redis) -> Iterator[str]:
    """Serve /healthz and /metrics for ``client``; yield the base URL."""
    collector = RedisCollector(client, lambda: depths(client), lambda: "v1")
    server = serve(client, 0, collector)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def base(redis_url: str) -> Iterator[str]:
    """One exporter for the module (each test's ``redis_client`` flushes the same database)."""
    client = connect(redis_url)
    yield from exporter(client)
    client.close()


def beat(client: redis.Redis, name: str, age: float) -> None:
    """Record a heartbeat of ``role:id`` ``age`` seconds ago."""
    client.hset(keys.HEARTBEATS, name, time.time() - age)


@pytest.mark.parametrize(
    ("beats", "status", "reason"),
    [
        ({}, 503, "no poller has reported"),
        ({"poller:p1": 1}, 503, "no worker has reported"),
        ({"worker:w1": 1}, 503, "no poller has reported"),
        ({"poller:p1": 1, "worker:w1": HEARTBEAT_MAX_AGE + 15}, 503, "no worker heartbeat for 75s"),
        ({"poller:p1": 2 * HEARTBEAT_MAX_AGE, "worker:w1": 1}, 503, "no poller heartbeat for 120s"),
        # One live process of each role is enough: a dead one's old heartbeat does not count.
        ({"poller:p1": 1, "worker:w1": 1, "worker:w2": 3600}, 200, "ok"),
    ],
)
def test_healthz_answers_503_with_the_reason_until_every_role_is_alive(
    redis_client: redis.Redis, base: str, beats: dict[str, float], status: int, reason: str
) -> None:
    for name, age in beats.items():
        beat(redis_client, name, age)
    got, body = get(base + "/healthz")
    assert (got, json.loads(body)) == (status, {"ok": status == 200, "reason": reason})


def test_healthz_turns_200_when_the_processes_report(redis_client: redis.Redis, base: str) -> None:
    assert get(base + "/healthz")[0] == 503
    heartbeat(redis_client, "poller", "p1")
    heartbeat(redis_client, "worker", "w1")
    assert get(base + "/healthz") == (200, json.dumps({"ok": True, "reason": "ok"}))


def test_healthz_and_metrics_answer_503_when_redis_is_unreachable() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = redis.Redis(port=port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    for base in exporter(client):
        status, body = get(base + "/healthz")
        assert status == 503
        assert json.loads(body)["reason"].startswith("Redis unreachable:"), body
        status, body = get(base + "/metrics")
        assert status == 503 and body.startswith("Redis unreachable:"), body
