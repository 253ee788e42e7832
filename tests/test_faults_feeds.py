"""Fault injection: 200 feeds, 20 of them hostile; the healthy 180 keep their freshness.

Healthy feeds sit on nine loopback servers (20 feeds each, as feeds spread over
publishers' hosts), the hostile ones on servers of their own kind: slow (1 byte/s),
huge (60 MB), gzip bomb (200 MB inflated), redirect loop, invalid XML.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest
from configs import write_config
from faults import (
    WATCHLIST,
    FeedServer,
    Rig,
    feeds_config,
    story_items,
    tally,
    wait_for,
)

INTERVAL = 5.0
BAD_KINDS = ("slow", "huge", "bomb", "loop", "invalid")


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    extra: list[FeedServer] = []
    r.extra = extra  # type: ignore[attr-defined]
    yield r
    for server in extra:
        server.close()
    r.close()


def gaps(hits: list[float], start: float) -> list[float]:
    """Seconds between consecutive fetches of one feed after ``start``."""
    after = [t for t in hits if t >= start]
    return [b - a for a, b in pairwise(after)]


@pytest.mark.parametrize(
    "observe",
    [pytest.param(30.0, id="30s"), pytest.param(120.0, id="2min", marks=pytest.mark.slow)],
)
def test_hostile_feeds_do_not_slow_healthy_ones(rig: Rig, observe: float) -> None:
    servers = [rig.feeds] + [FeedServer() for _ in range(8)]
    rig.extra.extend(servers[1:])  # type: ignore[attr-defined]
    urls: dict[str, str] = {}
    home: dict[str, FeedServer] = {}
    for i in range(180):
        name, server = f"ok{i}", servers[i % len(servers)]
        server.publish(name, story_items(name, 3, term="weather"))
        urls[name], home[name] = server.url(name), server
    for kind in BAD_KINDS:
        server = FeedServer()
        rig.extra.append(server)  # type: ignore[attr-defined]
        for j in range(4):
            name = f"{kind}{j}"
            server.modes[name] = kind
            urls[name] = server.url(name)
    write_config(
        rig.config_dir,
        feeds=feeds_config(urls, interval=f"{INTERVAL:.0f}s"),
        destinations=f"hook:\n  url: {rig.receiver.url}\n",
        watchlists={"kursk": WATCHLIST},
    )
    run = rig.spawn("run", "--workers", "2")
    healthy = [n for n in urls if n.startswith("ok")]
    wait_for(
        lambda: all(home[n].hits.get(n) for n in healthy), 60, "every healthy feed's first poll"
    )
    start = time.time() + INTERVAL  # after the first round, which sync_schedule spreads out
    time.sleep(observe / 2)
    # New matching stories on every tenth healthy feed, mid-run: they must arrive promptly.
    published = {}
    for name in healthy[::10]:
        home[name].publish(name, story_items(name, 1, start=3))
        published[f"{name}-3"] = time.time()
    time.sleep(observe / 2)
    end = time.time()
    worst = {
        n: max(gaps([t for t in home[n].hits[n] if t <= end], start), default=observe)
        for n in healthy
    }
    late = {n: round(g, 1) for n, g in worst.items() if g > INTERVAL * 1.05 + 2.0}
    all_gaps = sorted(g for n in healthy for g in gaps(home[n].hits[n], start))
    p99 = all_gaps[int(len(all_gaps) * 0.99)] if all_gaps else None
    print(
        f"healthy feeds: {len(all_gaps)} re-polls, median gap "
        f"{all_gaps[len(all_gaps) // 2]:.2f}s, p99 {p99:.2f}s, worst {max(worst.values()):.2f}s "
        f"(interval {INTERVAL}s); late feeds: {late}"
    )
    wait_for(lambda: set(published) <= set(rig.receiver.stories()), 30, "the mid-run alerts")
    latency = [
        r.at - published[s] for r in rig.receiver.receipts for s in r.stories if s in published
    ]
    print(f"publish→alert: max {max(latency):.1f}s over {len(latency)} alerts")
    t = tally("200 feeds, 20 hostile", published, rig.receiver)
    assert (t.lost, t.duplicated) == (0, 0), t
    assert not late, f"healthy feeds polled late: {late}"
    assert max(latency) <= INTERVAL * 1.05 + 5.0
    assert run.proc.poll() is None
