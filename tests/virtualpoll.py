"""Run the real poller on a virtual clock against a loopback feed server (tests and bench/latency).

Each feed publishes items at given (virtual) times; the server answers every
fetch with the newest 20 items published by the clock's "now" (ETag and 304
included). Feeds are polled one at a time in due order, each when the poller
said it would be due, so hours pass in seconds while every fetch is real HTTP
and every decision is the poller's own.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis
from loopfeeds import Answer, FeedServer, local_feed
from websubhub import feed_body

from worker.config import Config, Feed
from worker.poll.fetch import Fetcher
from worker.poll.poller import Poller
from worker.service.queue import enqueue_match


@dataclass
class Clock:
    now: float

    def __call__(self) -> float:
        return self.now


@dataclass
class Source:
    """A feed that publishes at ``times`` (virtual seconds) with these settings and headers."""

    times: Sequence[float]
    settings: dict[str, float] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def body(self, url: str, now: float) -> bytes:
        shown = [t for t in self.times if t <= now][-20:]
        items = [(f"item-{t:.0f}", f"Story at {t:.0f}", t) for t in shown]
        return feed_body(items, hub=None, topic=url)


@dataclass
class Run:
    """What happened, per feed: (time, delay chosen) of each poll, (published, wait) of each item."""

    clock: Clock
    feeds: list[Feed]
    polls: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    waits: dict[str, list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))


def every(gap: float, start: float, end: float) -> list[float]:
    """Return the times of one item every ``gap`` seconds from ``start`` up to ``end``."""
    return [start + k * gap for k in range(int((end - start) // gap) + 1)]


def simulate(
    client: redis.Redis, server: FeedServer, sources: dict[str, Source], start: float, hours: float
) -> Run:
    """Poll every feed whenever it is due, from ``start`` for ``hours`` virtual hours."""
    run = Run(Clock(start), [])
    for fid, src in sources.items():
        url = server.url(f"/{fid}.xml")
        server.answers[f"/{fid}.xml"] = lambda s=src, u=url: Answer(  # type: ignore[misc]
            s.body(u, run.clock.now), etag=True, headers=s.headers
        )
        run.feeds.append(local_feed(fid, url, **src.settings))  # type: ignore[arg-type]
    config = Config(
        root="",
        version="virtual",
        feeds=tuple(run.feeds),
        watchlists=(),
        destinations={},
        allow_private_networks=True,
    )
    poller = Poller(client, config, enqueue=enqueue_match, clock=run.clock, parse_workers=0)
    due = {f.id: start for f in run.feeds}

    async def loop() -> None:
        with poller.pool:
            async with Fetcher(allow_private=True) as fetcher:
                while (fid := min(due, key=due.__getitem__)) and due[fid] <= start + hours * 3600:
                    run.clock.now = due[fid]
                    feed = config.feed(fid)
                    assert feed is not None
                    out, delay = await poller.poll_feed(fetcher, feed)
                    assert out.error is None, out.error
                    due[fid] = run.clock.now + delay
                    run.polls[fid].append((run.clock.now, delay))
                    run.waits[fid] += [(t, run.clock.now - t) for t in out.times if t is not None]

    asyncio.run(loop())
    return run
