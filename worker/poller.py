"""Decide which feeds are due, fetch them, and queue what is new.

Scheduling lives in Redis so any number of pollers share the work: a sorted
set holds each feed's next due time, and a poller takes a feed only after
winning its lease (``SET NX EX``), so no feed is fetched twice in one
interval; a crashed poller's leases expire after ``LEASE_TTL``.

What is new: each feed has a seen-set of 8-byte item ids scored by when the
item was last in the feed; entries not seen for ``SEEN_TTL`` expire. New
items are stored and queued *before* they are marked seen, so a poller that
dies in between causes a repeat match (which the delivery ledger absorbs),
never a lost item.

The first poll of a feed marks what is already there as seen and queues
only the newest ``backfill`` items, so adding feeds never floods anyone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from worker import keys
from worker.config import Config, Feed
from worker.errors import FeedError
from worker.feeds import parse_feed
from worker.fetch import Fetcher, FetchLimits
from worker.metrics import heartbeat, incr
from worker.model import Item
from worker.queue import enqueue_match

log = logging.getLogger("newsalert.poller")

BATCH_SIZE = 50
MAX_BACKOFF = 6 * 3600.0


@dataclass
class PollOutcome:
    """What one poll of one feed did."""

    feed: str
    new: int = 0
    queued: int = 0
    marked_seen: int = 0
    first_poll: bool = False
    status: int | None = None
    error: str | None = None


def summarise_first_polls(outcomes: Sequence[PollOutcome]) -> None:
    """Log the one line that says how many existing items first polls marked seen."""
    first = [o for o in outcomes if o.first_poll]
    if first:
        log.info("%d feeds polled for the first time: %d existing items marked seen, %d backfilled",
                 len(first), sum(o.marked_seen for o in first), sum(o.queued for o in first))


def _newest(items: Sequence[Item], n: int) -> list[Item]:
    """Return the newest ``n`` items (feed order breaks ties: feeds list newest first)."""
    if n <= 0:
        return []
    order = sorted(range(len(items)), key=lambda i: (-(items[i].published or 0), i))
    return [items[i] for i in order[:n]]


class Poller:
    """Polls the feeds of one config into one Redis."""

    def __init__(self, client: redis.Redis, config: Config, *, limits: FetchLimits | None = None,
                 batch_size: int = BATCH_SIZE, clock: Callable[[], float] = time.time) -> None:
        self.redis = client
        self.config = config
        self.limits = limits or FetchLimits()
        self.batch_size = batch_size
        self.clock = clock
        self.token = secrets.token_hex(8)
        self._first_polls: list[PollOutcome] = []

    def _queue(self, items: Sequence[Item]) -> int:
        """Store item bodies and queue them for matching in batches; return how many."""
        now = self.clock()
        items = [Item.from_dict({**i.to_dict(), "seen_at": now}) for i in items]
        with self.redis.pipeline(transaction=False) as pipe:
            for it in items:
                pipe.set(keys.item(it.id), json.dumps(it.to_dict()), ex=keys.ITEM_TTL)
            pipe.execute()
        for start in range(0, len(items), self.batch_size):
            batch = items[start:start + self.batch_size]
            enqueue_match(self.redis, [i.id for i in batch], self.config.version)
            incr(self.redis, "batches")
        return len(items)

    def _mark_seen(self, feed: Feed, ids: Sequence[bytes]) -> None:
        now = self.clock()
        key = keys.seen(feed.id)
        with self.redis.pipeline(transaction=False) as pipe:
            if ids:
                pipe.zadd(key, dict.fromkeys(ids, now))
            pipe.zremrangebyscore(key, "-inf", now - keys.SEEN_TTL)
            pipe.expire(key, keys.SEEN_TTL)
            pipe.execute()

    def _record_failure(self, feed: Feed, state: dict[bytes, bytes], exc: FeedError) -> float:
        """Record a failed fetch; return the delay before the next try."""
        failures = int(state.get(b"failures", 0)) + 1
        mapping = {"failures": failures, "last_error": str(exc)[:500], "last_error_at": self.clock(),
                   "last_reason": exc.reason}
        if exc.status is not None:
            mapping["status"] = exc.status
        if exc.reason == "gone":
            mapping["disabled"] = "410 Gone"
            log.error("feed %s: disabled: the server says it is gone (410)", feed.id,
                      extra={"feed": feed.id})
        self.redis.hset(keys.feed_state(feed.id), mapping=mapping)
        delay = min(feed.interval * 2 ** min(failures - 1, 10), MAX_BACKOFF)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            delay = max(delay, float(retry_after))
        return delay * random.uniform(0.9, 1.1)

    async def poll_feed(self, fetcher: Fetcher, feed: Feed) -> tuple[PollOutcome, float]:
        """Poll one feed; return what happened and the delay until it is due again."""
        out = PollOutcome(feed.id)
        state_key = keys.feed_state(feed.id)
        state = self.redis.hgetall(state_key)
        if state.get(b"disabled"):
            out.error = "disabled: " + state[b"disabled"].decode()
            return out, MAX_BACKOFF
        url = feed.url
        if state.get(b"config_url", b"").decode() == feed.url and state.get(b"url"):
            url = state[b"url"].decode()  # a permanent redirect moved it
        try:
            res = await fetcher.fetch(
                url, etag=(state.get(b"etag") or b"").decode() or None,
                last_modified=(state.get(b"last_modified") or b"").decode() or None)
            out.status = res.status
            parsed = None if res.status == 304 else parse_feed(
                res.body, feed_id=feed.id, url=res.url, headers=res.headers)
        except FeedError as exc:
            incr(self.redis, "fetches", feed.id, exc.reason)
            out.status, out.error = exc.status, str(exc)
            log.warning("feed %s: %s", feed.id, exc, extra={"feed": feed.id, "reason": exc.reason})
            return out, self._record_failure(feed, state, exc)
        incr(self.redis, "fetches", feed.id, "not_modified" if res.status == 304 else "ok")
        now = self.clock()
        mapping: dict[str, str | float | int] = {
            "failures": 0, "last_ok": now, "status": res.status, "config_url": feed.url}
        if res.permanent_redirect:
            mapping["url"] = res.permanent_redirect
            log.warning("feed %s: moved permanently to %s", feed.id, res.permanent_redirect,
                        extra={"feed": feed.id})
        for name, value in (("etag", res.etag), ("last_modified", res.last_modified)):
            if value:
                mapping[name] = value
        interval = feed.interval
        if parsed is not None:
            if parsed.warning:
                log.info("feed %s: malformed but readable: %s", feed.id, parsed.warning,
                         extra={"feed": feed.id})
            self._take(feed, parsed.items, primed=bool(state.get(b"primed")), out=out)
            mapping["primed"] = 1
            if parsed.ttl:
                interval = max(interval, min(float(parsed.ttl), 3600.0))
        self.redis.hset(state_key, mapping=mapping)
        self.redis.hincrby(state_key, "items_new", out.new)
        return out, interval * random.uniform(0.95, 1.05)

    def _take(self, feed: Feed, items: Sequence[Item], *, primed: bool, out: PollOutcome) -> None:
        ids = [bytes.fromhex(i.id) for i in items]
        scores = self.redis.zmscore(keys.seen(feed.id), ids) if ids else []
        new = [item for item, score in zip(items, scores) if score is None]
        new = list({i.id: i for i in new}.values())
        with self.redis.pipeline(transaction=False) as pipe:
            incr(pipe, "items", feed.id, "new" if primed else "first_poll", by=len(new))
            incr(pipe, "items", feed.id, "seen", by=len(items) - len(new))
            pipe.execute()
        if primed:
            out.new = len(new)
            out.queued = self._queue(new)
        else:
            out.first_poll = True
            out.queued = self._queue(_newest(new, feed.backfill))
            out.marked_seen = len(new) - out.queued
        self._mark_seen(feed, ids)

    async def poll_all(self, feeds: Sequence[Feed] | None = None) -> list[PollOutcome]:
        """Poll every feed once, now, whatever its schedule (``run --once``, ``poll --once``)."""
        feeds = list(self.config.feeds if feeds is None else feeds)
        async with Fetcher(self.limits, allow_private=self.config.allow_private_networks) as fetcher:
            results = await asyncio.gather(*(self._leased(fetcher, f) for f in feeds))
        return [r for r in results if r is not None]

    async def _leased(self, fetcher: Fetcher, feed: Feed, *, only_if_due: bool = False
                      ) -> PollOutcome | None:
        """Poll a feed under its lease and reschedule it; None if another poller has it."""
        lease = keys.lease(feed.id)
        if not self.redis.set(lease, self.token, nx=True, ex=keys.LEASE_TTL):
            return None
        try:
            if only_if_due:
                # Another poller may have polled and rescheduled it since we read the schedule.
                due = self.redis.zscore(keys.SCHEDULE, feed.id)
                if due is not None and due > self.clock():
                    return None
            out, delay = await self.poll_feed(fetcher, feed)
            self.redis.zadd(keys.SCHEDULE, {feed.id: self.clock() + delay})
            if out.first_poll:
                self._first_polls.append(out)
            return out
        finally:
            if self.redis.get(lease) == self.token.encode():
                self.redis.delete(lease)

    def sync_schedule(self) -> None:
        """Add new feeds to the schedule (due soon, spread out) and drop removed ones."""
        ids = {f.id for f in self.config.feeds}
        scheduled = {m.decode() for m in self.redis.zrange(keys.SCHEDULE, 0, -1)}
        stale = scheduled - ids
        if stale:
            self.redis.zrem(keys.SCHEDULE, *stale)
        now = self.clock()
        fresh = {f.id: now + random.uniform(0, min(f.interval, 10.0))
                 for f in self.config.feeds if f.id not in scheduled}
        if fresh:
            self.redis.zadd(keys.SCHEDULE, fresh, nx=True)

    async def run(self, stop: asyncio.Event, *, max_in_flight: int = 100) -> None:
        """Poll due feeds until ``stop`` is set."""
        self.sync_schedule()
        in_flight: set[asyncio.Task[PollOutcome | None]] = set()
        async with Fetcher(self.limits, allow_private=self.config.allow_private_networks) as fetcher:
            beat = 0.0
            while not stop.is_set():
                if time.monotonic() - beat > 5:
                    heartbeat(self.redis, "poller", self.token)
                    beat = time.monotonic()
                room = max_in_flight - len(in_flight)
                due = self.redis.zrangebyscore(keys.SCHEDULE, "-inf", self.clock(), start=0, num=room) if room > 0 else []
                busy = {t.get_name() for t in in_flight}
                for raw in due:
                    feed = self.config.feed(raw.decode())
                    if feed is None or feed.id in busy:
                        continue
                    task = asyncio.create_task(
                        self._leased(fetcher, feed, only_if_due=True), name=feed.id)
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                if self._first_polls and not in_flight:
                    summarise_first_polls(self._first_polls)
                    self._first_polls.clear()
                try:
                    await asyncio.wait_for(stop.wait(), timeout=0.5)
                except asyncio.TimeoutError:
                    pass
            if in_flight:
                await asyncio.wait(in_flight, timeout=20)
