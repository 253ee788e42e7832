"""``/metrics`` (Prometheus) and ``/healthz`` over the counters in ``worker.core.metrics``.

The same port serves the WebSub callback (``/websub/…``, ``worker.poll.websub``):
hubs reach the deployment where ``$PORT`` is routed. Only the process that
serves them imports prometheus_client.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from worker.core import keys
from worker.core.metrics import COUNTERS, HEARTBEAT_MAX_AGE, LATENCY_BUCKETS, heartbeats, read
from worker.poll import websub
from worker.poll.cadence import Rate
from worker.poll.state import FeedState

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
        yield from self._feeds()

    def _feeds(self) -> Iterator[GaugeMetricFamily]:
        """Yield each scheduled feed's interval and estimated rate, and its last push."""
        ids = [m.decode() for m in self.client.zrange(keys.SCHEDULE, 0, -1)]
        with self.client.pipeline(transaction=False) as pipe:
            for fid in ids:
                pipe.hgetall(keys.feed_state(fid))
            states = pipe.execute()
        now = time.time()
        every = GaugeMetricFamily(
            "newsalert_feed_interval_seconds", "Each feed's current poll interval.", labels=["feed"]
        )
        rate = GaugeMetricFamily(
            "newsalert_feed_items_per_hour",
            "Each feed's estimated new items per hour.",
            labels=["feed"],
        )
        for fid, raw in zip(ids, states, strict=True):
            state = FeedState.read(raw)
            if state.poll_interval is not None:
                every.add_metric([fid], state.poll_interval)
            if state.rate_since is not None:
                rate.add_metric([fid], Rate.from_state(state, now).per_hour(now))
        pushed = GaugeMetricFamily(
            "newsalert_websub_last_push_timestamp_seconds",
            "When a WebSub hub last pushed each subscribed feed.",
            labels=["feed", "state"],
        )
        for fid, sub in websub.records(self.client).items():
            pushed.add_metric([fid, sub.get("state", "")], float(sub.get("last_push") or 0))
        yield from (every, rate, pushed)

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


class _Handler(BaseHTTPRequestHandler):
    """Answer ``/metrics``, ``/healthz`` and ``/websub/…`` (the class attributes are set by ``serve``)."""

    client: redis.Redis
    registry: CollectorRegistry
    roles: tuple[str, ...]

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
            ok, reason = health(self.client, self.roles)
            self._answer(
                200 if ok else 503,
                json.dumps({"ok": ok, "reason": reason}).encode(),
                "application/json",
            )
        elif path == "/metrics":
            try:
                self._answer(200, generate_latest(self.registry), "text/plain; version=0.0.4")
            except redis.RedisError as exc:
                self._answer(503, f"Redis unreachable: {exc}\n".encode(), "text/plain")
        elif "/websub/" in path:
            self._websub(b"")
        else:
            self._answer(404, b"not found: try /metrics or /healthz\n", "text/plain")

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length", "")
        if "/websub/" not in self.path or not length.isdigit():
            self._answer(404 if "/websub/" not in self.path else 411, b"", "text/plain")
        elif int(length) > websub.MAX_PUSH:
            self._answer(413, b"too large\n", "text/plain")
        else:
            self._websub(self.rfile.read(int(length)))

    def _websub(self, body: bytes) -> None:
        path, _, query = self.path.partition("?")
        hdrs = {k.lower(): v for k, v in self.headers.items()}
        try:
            status, out = websub.answer(
                self.client, self.command, path, query, hdrs, body, time.time()
            )
        except redis.RedisError as exc:
            status, out = 503, f"Redis unreachable: {exc}\n".encode()
        self._answer(status, out, "text/plain")


def serve(
    client: redis.Redis,
    port: int,
    collector: RedisCollector,
    roles: Iterable[str] = ("poller", "worker"),
) -> ThreadingHTTPServer:
    """Serve ``/metrics``, ``/healthz`` and ``/websub/…`` on 0.0.0.0:``port`` from a daemon thread."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)

    handler = type(
        "Handler", (_Handler,), {"client": client, "registry": registry, "roles": tuple(roles)}
    )
    server = ThreadingHTTPServer(("0.0.0.0", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("metrics on :%d/metrics, health on :%d/healthz", port, port)
    return server
