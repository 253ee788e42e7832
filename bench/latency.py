"""Publish → alert latency: adaptive intervals and WebSub push against a fixed 5-minute interval.

Prints one JSON line. Two parts, both on loopback with real Redis:

1. **Polling, time-scaled.** ``--feeds`` feeds each publish an item every
   60-120 s (uniformly random gaps), plus one feed that publishes once a day.
   The real poller (``Poller.poll_feed``: real HTTP, ETag/304, parsing,
   seen-sets, Redis state) runs on a *virtual clock*: each feed is fetched at
   the virtual time the poller chose, and the server answers with what was
   published by then. ``--hours`` virtual hours take a few minutes of real
   time; the time scale is not a constant factor but "jump to the next due
   fetch". What it measures is the wait from publication to the fetch that
   first sees an item (``publish → seen``), for the default settings
   (``interval: auto``, 1m-30m) and for a fixed ``interval: 5m``, in the
   same run, and the fetches each spends. The first 30 virtual minutes are
   left out of the latency figures (the estimate's start), not of the costs.
2. **Push, real time.** A real ``newsalert run`` (supervisor, poller and one
   worker process) with ``websub.callback`` set and ``$PORT`` serving the
   callback; a hub (tests/websubhub.py, written from the W3C text) pushes
   ``--pushes`` matching items, one a second; measured from the hub's POST to
   the alert arriving at a loopback webhook. newsalert's own histogram gives
   ``seen → alert`` (first seen by the poller → accepted by the destination).

``publish → alert`` for polling is reported as publish → seen (part 1) plus
the mean seen → alert of part 2: the part after the fetch does not depend on
how the item was found.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE.parent)]

import redis
from configs import write_config
from faults import WATCHLIST, Receiver, wait_for
from loopfeeds import Answer, FeedServer
from virtualpoll import Run, Source, every, simulate
from websubhub import Hub, feed_body

from worker.core import keys
from worker.core.store import EmbeddedRedis
from worker.service.stats import feed_health

T0 = 1_760_000_000.0
WARM_UP = 1800.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def wire_times(rng: random.Random, end: float) -> list[float]:
    """Return publication times 60-120 s apart, 20 of them before T0."""
    times = [T0 - 20 * 90.0]
    while times[-1] < end:
        times.append(times[-1] + rng.uniform(60, 120))
    return times


def polling(client: redis.Redis, server: FeedServer, args: argparse.Namespace) -> dict[str, Any]:
    """Run part 1 for both settings; return their figures."""
    rng = random.Random(args.seed)
    end = T0 + args.hours * 3600
    wires = {f"wire-{i}": wire_times(rng, end) for i in range(args.feeds)}
    out: dict[str, Any] = {}
    for mode, settings in (("adaptive", {}), ("fixed_5m", {"interval": 300.0})):
        client.flushdb()
        sources = {fid: Source(times, dict(settings)) for fid, times in wires.items()}
        if mode == "adaptive":  # once a day; 20 days of items when first read, the next 2 h in
            sources["daily"] = Source(every(86400, T0 + 7200 - 20 * 86400, end))
        run = simulate(client, server, sources, T0, args.hours)
        out[mode] = figures(client, run, wires, args.hours)
        if mode == "adaptive":
            out["daily_feed"] = daily(run, args.hours)
    return out


def figures(client: redis.Redis, run: Run, wires: dict[str, Any], hours: float) -> dict[str, Any]:
    """Return one setting's publish → seen waits and fetch costs over the wire feeds."""
    late = [w for fid in wires for t, w in run.waits[fid] if t >= T0 + WARM_UP]
    rows = {r["id"]: r for r in feed_health(client, run.feeds, run.clock.now)}
    shares = [rows[f]["not_modified_share"] or 0.0 for f in wires]
    return {
        "publish_to_seen_p50_s": pct(late, 0.5),
        "publish_to_seen_p90_s": pct(late, 0.9),
        "items_seen": len(late),
        "fetches_per_hour_per_feed": round(
            sum(len(run.polls[f]) for f in wires) / len(wires) / hours, 1
        ),
        "not_modified_share": round(statistics.mean(shares), 3),
    }


def daily(run: Run, hours: float) -> dict[str, Any]:
    """Return the once-a-day feed's fetches: per hour overall and the most in any hour after the first."""
    times = [t for t, _ in run.polls["daily"]]
    after = [t for t in times if t >= T0 + 3600]
    most = max(sum(1 for u in after if t <= u < t + 3600) for t in after) if after else 0
    return {"fetches_per_hour": round(len(times) / hours, 2), "most_in_any_hour_after_first": most}


def pushing(url: str, client: redis.Redis, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run part 2: a real ``newsalert run`` taking pushes from the test hub."""
    client.flushdb()
    server, hub, receiver = FeedServer(), Hub(lease_seconds=3600), Receiver()
    topic = server.url("/world.xml")
    items = [(f"old-{i}", f"Old story {i}", time.time() - 600 * i) for i in range(5)]

    def body() -> bytes:
        return feed_body(items, hub=hub.url, topic=topic, link_base="https://n.example.com/story/")

    server.answers["/world.xml"] = lambda: Answer(body(), etag=True)
    port = free_port()
    feeds = (
        "allow_private_networks: true\n"
        f"websub: {{callback: 'http://127.0.0.1:{port}'}}\n"
        "defaults: {fulltext: never}\n"
        f"feeds:\n  - id: world\n    url: {topic}\n"
    )
    root = write_config(
        tmp / "config",
        feeds=feeds,
        destinations=f"hook:\n  url: {receiver.url}\n",
        watchlists={"kursk": WATCHLIST},
    )
    env = dict(os.environ, NEWSALERT_CONFIG=str(root), REDIS_URL=url, PORT=str(port))
    env["NEWSALERT_LOG_LEVEL"] = os.environ.get("LOG_LEVEL", "WARNING")
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "run", "--workers", "1"],
        env=env,
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "run.log").open("w"),
    )
    try:
        subscribed = wait_for(lambda: hub.subscribers(topic), 90, "the WebSub subscription")
        fetches = server.count("/world.xml")
        latencies = []
        for k in range(args.pushes):
            items.append((f"push-{k}", f"Troops near Kursk, push {k}", time.time()))
            start = time.time()
            hub.publish(topic, body())
            wait_for(lambda k=k: f"push-{k}" in receiver.stories(), 30, f"push {k}", step=0.01)
            arrived = next(r.at for r in receiver.receipts if f"push-{k}" in r.stories)
            latencies.append(arrived - start)
            time.sleep(1.0)
        raw = {k.decode(): float(v) for k, v in client.hgetall(keys.counter("latency")).items()}
        count = sum(v for k, v in raw.items() if k != "sum")
        return {
            "pushes": len(latencies),
            "push_to_alert_p50_s": round(statistics.median(latencies), 3),
            "push_to_alert_max_s": round(max(latencies), 3),
            "feed_fetches_during_pushes": server.count("/world.xml") - fetches,
            "subscribed_after_s": round(subscribed, 1),
            "seen_to_alert_mean_s": round(raw.get("sum", 0.0) / count, 3) if count else None,
        }
    finally:
        proc.terminate()
        proc.wait(timeout=40)
        for part in (server, hub, receiver):
            part.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--feeds", type=int, default=10, help="feeds publishing every 60-120 s")
    ap.add_argument("--hours", type=float, default=4.0, help="virtual hours of polling")
    ap.add_argument("--pushes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=18)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="newsalert-latency-"))
    embedded = EmbeddedRedis(tmp / "redis")
    url = embedded.start()
    client = redis.Redis.from_url(url)
    server = FeedServer()
    try:
        started = time.monotonic()
        polled = polling(client, server, args)
        polled["real_seconds"] = round(time.monotonic() - started, 1)
        pushed = pushing(url, client, tmp, args)
    finally:
        server.close()
        embedded.stop()
    after = pushed["seen_to_alert_mean_s"] or 0.0
    adaptive = polled["adaptive"]["publish_to_seen_p50_s"] + after
    fixed = polled["fixed_5m"]["publish_to_seen_p50_s"] + after
    out = {
        "bench": "latency",
        "time_scale": "virtual clock for polling (next due fetch, real HTTP and Redis); "
        "real time for push",
        "feeds": args.feeds,
        "publish_every_s": [60, 120],
        "virtual_hours": args.hours,
        "publish_to_alert_p50_s": {"adaptive": round(adaptive, 1), "fixed_5m": round(fixed, 1)},
        "p50_ratio_fixed_over_adaptive": round(fixed / adaptive, 2),
        "fetch_ratio_adaptive_over_fixed": round(
            polled["adaptive"]["fetches_per_hour_per_feed"]
            / polled["fixed_5m"]["fetches_per_hour_per_feed"],
            2,
        ),
        **polled,
        "push": pushed,
        "targets": {
            "adaptive_p50_le_60s": adaptive <= 60,
            "daily_at_most_2_an_hour": polled["daily_feed"]["most_in_any_hour_after_first"] <= 2,
            "push_within_2s": pushed["push_to_alert_max_s"] <= 2,
        },
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
