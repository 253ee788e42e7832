"""``/metrics`` (Prometheus) and ``/healthz`` over the counters in ``worker.core.metrics``.

Only the process that serves them imports prometheus_client.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from worker.core import keys
from worker.core.metrics import COUNTERS, HEARTBEAT_MAX_AGE, LATENCY_BUCKETS, heartbeats, read

log = logging.getLogger("newsalert.metrics")


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
    registry.register(collector)
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
