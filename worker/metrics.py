"""Counters kept in Redis, exported as Prometheus metrics, and ``/healthz``.

Counts live in Redis hashes (``newsalert:count:<name>``, one field per label
set) rather than in each process's memory: the poller and every worker add to
the same figures, ``stats`` reads them, and whichever process serves
``/metrics`` exports the whole deployment's numbers. The only module that
imports prometheus_client.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from worker import keys

log = logging.getLogger("newsalert.metrics")

#: Upper bounds (seconds) of the "first seen by the poller → accepted by the destination" buckets.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)

#: name → (help, label names) of every counter.
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "fetches": (
        "Feed fetches by feed and outcome (ok, not_modified or the failure reason).",
        ("feed", "outcome"),
    ),
    "items": (
        "Items read by the poller, by feed and state (new, seen, or first_poll: there "
        "before the feed's first poll).",
        ("feed", "state"),
    ),
    "batches": ("Match batches queued.", ()),
    "articles": (
        "Full-text article fetches by feed and outcome (ok, cached, deadline, "
        "robots, backed_off, paywall, or an HTTP status).",
        ("feed", "outcome"),
    ),
    "matches": ("Rule matches by watchlist and rule.", ("watchlist", "rule")),
    "deliveries": (
        "Alerts by destination and outcome: sent, failed (an attempt), dead "
        "(dead-lettered), duplicate (suppressed), cancelled (its watchlist was removed), queued (held in the outbox of a "
        "destination with a rate limit, digest or quiet hours).",
        ("destination", "outcome"),
    ),
    "digests": ("Digest messages sent, by destination.", ("destination",)),
    "config_reload_errors": ("Config changes rejected as invalid.", ()),
}

#: How recent a heartbeat must be for /healthz.
HEARTBEAT_MAX_AGE = 60.0


def incr(client: redis.Redis | Any, name: str, *labels: str, by: int = 1) -> None:
    """Add ``by`` to counter ``name`` for ``labels`` (``client`` may be a pipeline)."""
    client.hincrby(keys.counter(name), "\x1f".join(labels), by)


def incr_hourly(
    client: redis.Redis | Any, name: str, *labels: str, now: float | None = None
) -> None:
    """Count one ``name`` event in the current hour's bucket (kept 25 hours), for "last 24 h"."""
    hour = int((time.time() if now is None else now) // 3600)
    key = keys.hourly(name, hour)
    client.hincrby(key, "\x1f".join(labels), 1)
    client.expire(key, 25 * 3600)


def read_last_day(
    client: redis.Redis, name: str, now: float | None = None
) -> dict[tuple[str, ...], int]:
    """Return the counts of ``name`` over the last 24 hourly buckets."""
    hour = int((time.time() if now is None else now) // 3600)
    with client.pipeline(transaction=False) as pipe:
        for h in range(hour - 23, hour + 1):
            pipe.hgetall(keys.hourly(name, h))
        buckets = pipe.execute()
    out: dict[tuple[str, ...], int] = {}
    for bucket in buckets:
        for k, v in bucket.items():
            labels = tuple(k.decode().split("\x1f"))
            out[labels] = out.get(labels, 0) + int(v)
    return out


def observe_latency(client: redis.Redis | Any, seconds: float) -> None:
    """Record one alert's latency from first seen to accepted."""
    bucket = next((str(b) for b in LATENCY_BUCKETS if seconds <= b), "+Inf")
    key = keys.counter("latency")
    client.hincrby(key, bucket, 1)
    client.hincrbyfloat(key, "sum", max(seconds, 0.0))


def read(client: redis.Redis, name: str) -> dict[tuple[str, ...], int]:
    """Return counter ``name`` as {label values: count}."""
    raw = client.hgetall(keys.counter(name))
    return {tuple(k.decode().split("\x1f")) if k else (): int(float(v)) for k, v in raw.items()}


def heartbeat(client: redis.Redis, role: str, name: str) -> None:
    """Say that a poller or worker is alive."""
    client.hset(keys.HEARTBEATS, f"{role}:{name}", time.time())


def heartbeats(client: redis.Redis) -> dict[str, float]:
    """Return {role:name → seconds since its last heartbeat}, forgetting those silent a day."""
    now = time.time()
    ages = {k.decode(): now - float(v) for k, v in client.hgetall(keys.HEARTBEATS).items()}
    gone = [name for name, age in ages.items() if age > 86400]
    if gone:
        client.hdel(keys.HEARTBEATS, *gone)
    return {name: age for name, age in ages.items() if name not in gone}


class RedisCollector:
    """Exports the Redis-held counters, queue depths and the config version."""

    def __init__(self, client: redis.Redis, queue_depths: Any, config_version: Any) -> None:
        self.client = client
        self.queue_depths = queue_depths
        self.config_version = config_version

    def collect(self) -> Iterator[Any]:
        for name, (text, labels) in COUNTERS.items():
            family = CounterMetricFamily(f"newsalert_{name}", text, labels=list(labels))
            for values, count in read(self.client, name).items():
                if len(values) == len(labels):
                    family.add_metric(list(values), count)
            yield family
        depth = GaugeMetricFamily(
            "newsalert_queue_depth", "Jobs waiting per queue and state.", labels=["queue", "state"]
        )
        for queue, states in self.queue_depths().items():
            for state, n in states.items():
                depth.add_metric([queue, state], n)
        yield depth
        info = GaugeMetricFamily(
            "newsalert_config_info", "The live config version.", labels=["version"]
        )
        info.add_metric([self.config_version()], 1)
        yield info
        yield self._latency()

    def _latency(self) -> HistogramMetricFamily:
        raw = {
            k.decode(): float(v) for k, v in self.client.hgetall(keys.counter("latency")).items()
        }
        buckets, running = [], 0.0
        for bound in (*map(str, LATENCY_BUCKETS), "+Inf"):
            running += raw.get(bound, 0.0)
            buckets.append((bound, running))
        family = HistogramMetricFamily(
            "newsalert_alert_latency_seconds",
            "From the poller first seeing an item to the destination accepting its alert.",
        )
        family.add_metric([], buckets, sum_value=raw.get("sum", 0.0))
        return family


def health(client: redis.Redis, roles: Iterable[str] = ("poller", "worker")) -> tuple[bool, str]:
    """Return (healthy, reason): Redis answers and every role has a recent heartbeat."""
    try:
        client.ping()
        beats = heartbeats(client)
    except redis.RedisError as exc:
        return False, f"Redis unreachable: {exc}"
    for role in roles:
        ages = [age for key, age in beats.items() if key.startswith(role + ":")]
        if not ages:
            return False, f"no {role} has reported"
        if min(ages) > HEARTBEAT_MAX_AGE:
            return False, f"no {role} heartbeat for {min(ages):.0f}s"
    return True, "ok"


def serve(
    client: redis.Redis,
    port: int,
    collector: RedisCollector,
    roles: Iterable[str] = ("poller", "worker"),
) -> ThreadingHTTPServer:
    """Serve ``/metrics`` and ``/healthz`` on 0.0.0.0:``port`` from a daemon thread."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)  # type: ignore[arg-type]
    role_list = tuple(roles)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                ok, reason = health(client, role_list)
                self._answer(
                    200 if ok else 503,
                    json.dumps({"ok": ok, "reason": reason}).encode(),
                    "application/json",
                )
            elif path == "/metrics":
                try:
                    self._answer(200, generate_latest(registry), "text/plain; version=0.0.4")
                except redis.RedisError as exc:
                    self._answer(503, f"Redis unreachable: {exc}\n".encode(), "text/plain")
            else:
                self._answer(404, b"not found: try /metrics or /healthz\n", "text/plain")

    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("metrics on :%d/metrics, health on :%d/healthz", port, port)
    return server


def summary(counts: Mapping[tuple[str, ...], int], index: int) -> dict[str, int]:
    """Sum a counter over every label but the one at ``index``."""
    out: dict[str, int] = {}
    for labels, n in counts.items():
        if len(labels) > index:
            out[labels[index]] = out.get(labels[index], 0) + n
    return out
