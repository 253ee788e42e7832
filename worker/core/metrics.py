"""Counters and heartbeats kept in Redis (``worker.service.exporter`` serves them).

Counts live in Redis hashes (``newsalert:count:<name>``, one field per label
set) rather than in each process's memory: the poller and every worker add to
the same figures, ``stats`` reads them, and whichever process serves
``/metrics`` exports the whole deployment's numbers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import redis

from worker.core import keys

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
    "shadow_matches": (
        "Matches of shadow rules (counted, never delivered), by watchlist and rule.",
        ("watchlist", "rule"),
    ),
    "muted_matches": (
        "Matches of muted rules (newsalert mute or the volume guard): counted, not "
        "delivered, not held; by watchlist and rule.",
        ("watchlist", "rule"),
    ),
    "deliveries": (
        "Alerts by destination and outcome: sent, failed (an attempt), dead "
        "(dead-lettered), duplicate (suppressed), cancelled (its watchlist was removed), "
        "muted (dropped at delivery: its rules were muted), queued (held in the outbox of a "
        "destination with a rate limit, digest or quiet hours).",
        ("destination", "outcome"),
    ),
    "digests": ("Digest messages sent, by destination.", ("destination",)),
    "stories": (
        "Matched items by watchlist and what they did to stories: opened (a new story, "
        "alerted) or folded (a copy of an open story, no new alert).",
        ("watchlist", "outcome"),
    ),
    "config_reload_errors": ("Config changes rejected as invalid.", ()),
    "websub": (
        "WebSub events by feed and outcome: requested (subscribe or renew sent), verified, "
        "denied, unsubscribed, failed (a hub request), push (content taken), forged (bad "
        "signature: dropped), unexpected (content for no live subscription).",
        ("feed", "outcome"),
    ),
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


def summary(counts: Mapping[tuple[str, ...], int], index: int) -> dict[str, int]:
    """Sum a counter over every label but the one at ``index``."""
    out: dict[str, int] = {}
    for labels, n in counts.items():
        if len(labels) > index:
            out[labels[index]] = out.get(labels[index], 0) + n
    return out
