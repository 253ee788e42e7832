"""Decide which feeds are due, fetch them, and queue what is new.

Scheduling lives in Redis so any number of pollers share the work: a sorted
set holds each feed's next due time, and a poller takes a feed only after
winning its lease (``worker.core.locks``), so no feed is fetched twice in one
interval; a crashed poller's leases expire after ``lease_ttl``.

What is new: each feed has a seen-set of 8-byte item ids (``worker.poll.seen``).
New items are stored and queued *before* they are marked seen, so a poller
that dies in between causes a repeat match (which the delivery ledger
absorbs), never a lost item.

Decisions:

- **Parse only what can hold news.** A 304 is never parsed. A 200 is first
  pre-scanned for item ids (``xml.etree``, ~1 ms); when every id is already
  seen (feeds that change only ``<lastBuildDate>``), or on a first poll
  without ``backfill``, the ids are all we need and the full parse is
  skipped. Full parses run in a process pool (``worker.poll.parse_pool``).
- **First poll** of a feed marks what is already there as seen and queues
  only the newest ``backfill`` items, so adding feeds never floods anyone.
  A primed feed whose seen-set has expired (no successful poll for
  ``SEEN_TTL``) is primed again the same way rather than flooding.
- **Overflow**: when every item of a fetch of ``OVERFLOW_MIN`` or more is new,
  the feed may have dropped items between polls: warned once, polled faster
  (``worker.poll.pacing.overflow``).
- **GUID churn**: a feed that mints new GUIDs for old stories on every fetch
  would look like an overflow and re-alert everything. The seen-set also
  holds each item's link id, so when an all-new fetch is mostly links that
  were already seen, the feed is switched for good to link identity
  (``identity: link`` in its state; logged once) and only unseen links are
  new. A feed whose GUIDs *and* links both churn cannot be told from a very
  busy feed: it is treated as an overflow (warned once, polled faster).
- **Intervals** follow the feed's rate (``interval: auto``) or its fixed
  ``interval:``; server hints, ``Retry-After`` and error back-off win over
  both (``worker.poll.pacing``). Content a WebSub hub pushes goes through
  the same ``_take`` as a fetched body (``take_pushed``), under the same lease.
- **Health** per feed in its state hash: ``last_ok``, ``last_error``,
  ``last_reason``, ``last_error_at``, ``failures`` (consecutive), ``status``,
  ``items_new`` since ``primed_at`` (items per day), the rate estimate
  (``rate_*``), ``poll_interval``, ``next_due`` and ``last_push``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import redis

from worker.config import Config, Feed
from worker.core import keys
from worker.core.archive import Archive
from worker.core.locks import hold
from worker.core.metrics import heartbeat, incr, incr_hourly
from worker.errors import FailureReason, FeedError
from worker.poll import pacing, seen, websub
from worker.poll.fetch import Fetcher, FetchLimits, FetchResult
from worker.poll.fulltext import Articles
from worker.poll.intake import EnqueueMatch, Intake
from worker.poll.outcome import PollOutcome, summarise_first_polls
from worker.poll.parse_pool import ParsePool, pool_size
from worker.poll.state import FeedState
from worker.poll.subscriptions import Push

log = logging.getLogger("newsalert.poller")

BATCH_SIZE = 50


class Poller(Intake):
    """Polls the feeds of one config into one Redis."""

    def __init__(
        self,
        client: redis.Redis,
        config: Config,
        *,
        enqueue: EnqueueMatch,
        limits: FetchLimits | None = None,
        batch_size: int = BATCH_SIZE,
        clock: Callable[[], float] = time.time,
        lease_ttl: int = keys.LEASE_TTL,
        parse_workers: int | None = None,
    ) -> None:
        self.redis = client
        self.config = config
        self.enqueue = enqueue
        self.limits = limits or FetchLimits(**config.fetch)  # type: ignore[arg-type]
        self.batch_size = batch_size
        self.clock = clock
        self.lease_ttl = lease_ttl
        self.pool = ParsePool(
            pool_size(len(config.feeds)) if parse_workers is None else parse_workers
        )
        self.parses = 0  # full parses done by this poller (tests, benchmarks)
        self.token = secrets.token_hex(8)
        self._first_polls: list[PollOutcome] = []
        self.articles = Articles(client, config)
        self.archive = Archive(client, config.archive, config.archive_max)

    def _pushed(self, feed: Feed) -> bool:
        """Return whether a hub pushes this feed to us (then polling is only a safety net)."""
        return bool(self.config.websub_callback) and websub.pushing(
            self.redis, feed.id, self.clock()
        )

    def _record_failure(self, feed: Feed, state: FeedState, exc: FeedError) -> float:
        """Record a failed fetch; return the delay before the next try."""
        now = self.clock()
        mapping, delay = pacing.backoff(feed, state, exc, now, pushed=self._pushed(feed))
        if exc.reason is FailureReason.GONE:
            log.error(
                "feed %s: disabled: the server says it is gone (410)",
                feed.id,
                extra={"feed": feed.id},
            )
        self.redis.hset(keys.feed_state(feed.id), mapping=FeedState.encode(mapping))
        incr_hourly(self.redis, "fetches", feed.id, exc.reason, now=now)
        return delay

    async def poll_feed(self, fetcher: Fetcher, feed: Feed) -> tuple[PollOutcome, float]:
        """Poll one feed; return what happened and the delay until it is due again."""
        out = PollOutcome(feed.id)
        state_key = keys.feed_state(feed.id)
        state = FeedState.load(self.redis, feed.id)
        if state.disabled:
            out.error = "disabled: " + state.disabled
            return out, pacing.MAX_BACKOFF
        url = feed.url
        if state.config_url == feed.url and state.url:
            url = state.url  # a permanent redirect moved it
        try:
            res = await fetcher.fetch(
                url, etag=state.etag or None, last_modified=state.last_modified or None
            )
            out.status = res.status
            updates = {} if res.status == 304 else await self._take(feed, res, state, out, fetcher)
        except FeedError as exc:
            incr(self.redis, "fetches", feed.id, exc.reason)
            out.status, out.error = exc.status, str(exc)
            log.warning("feed %s: %s", feed.id, exc, extra={"feed": feed.id, "reason": exc.reason})
            return out, self._record_failure(feed, state, exc)
        now = self.clock()
        updates.update(pacing.observed(state, res, out.times, now, first=out.first_poll))
        mapping: dict[str, Any] = {
            "failures": 0,
            "last_ok": now,
            "status": res.status,
            "config_url": feed.url,
            **updates,
        }
        if res.permanent_redirect:
            mapping["url"] = res.permanent_redirect
            log.warning(
                "feed %s: moved permanently to %s",
                feed.id,
                res.permanent_redirect,
                extra={"feed": feed.id},
            )
        for name, value in (("etag", res.etag), ("last_modified", res.last_modified)):
            if value:
                mapping[name] = value
        hub = websub.hub_of(res) if self.config.websub_callback else None
        if hub:
            websub.offer(self.redis, feed.id, *hub)
        merged, first, pushed = replace(state, **updates), out.first_poll, self._pushed(feed)
        pace, delay = pacing.after_fetch(feed, merged, res, now, first=first, pushed=pushed)
        mapping.update(pace)
        outcome = "not_modified" if res.status == 304 else "ok"
        with self.redis.pipeline(transaction=False) as pipe:
            incr(pipe, "fetches", feed.id, outcome)
            incr_hourly(pipe, "fetches", feed.id, outcome, now=now)
            pipe.hset(state_key, mapping=FeedState.encode(mapping))
            pipe.hincrby(state_key, "items_new", out.new)
            if res.status == 304:
                seen.expire(pipe, feed.id)
            pipe.execute()
        return out, delay

    async def poll_all(self, feeds: Sequence[Feed] | None = None) -> list[PollOutcome]:
        """Poll every feed once, now, whatever its schedule (``run --once``, ``poll --once``)."""
        feeds = list(self.config.feeds if feeds is None else feeds)
        with self.pool:
            async with Fetcher(
                self.limits, allow_private=self.config.allow_private_networks
            ) as fetcher:
                results = await asyncio.gather(*(self._leased(fetcher, f) for f in feeds))
        return [r for r in results if r is not None]

    def _lease(self, feed_id: str) -> contextlib.AbstractContextManager[bool]:
        """Hold a feed's lease for the block (``worker.core.locks``); yield whether we got it."""
        return hold(self.redis, keys.lease(feed_id), self.lease_ttl)

    async def _leased(
        self, fetcher: Fetcher, feed: Feed, *, only_if_due: bool = False
    ) -> PollOutcome | None:
        """Poll a feed under its lease and reschedule it; None if another poller has it."""
        with self._lease(feed.id) as got:
            if not got:
                return None
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

    async def take_pushed(
        self, fetcher: Fetcher, feed: Feed, body: bytes, headers: dict[str, str]
    ) -> PollOutcome | None:
        """Take content a hub pushed like a fetched body, under the lease; None if busy."""
        with self._lease(feed.id) as got:
            if not got:
                return None
            out = PollOutcome(feed.id, pushed=True, status=200)
            state = FeedState.load(self.redis, feed.id)
            res = FetchResult(200, feed.url, body, headers, None, None, None, 0.0)
            updates = await self._take(feed, res, state, out, fetcher)
            now = self.clock()
            first = out.first_poll
            updates.update(pacing.observed(state, res, out.times, now, first=first), last_push=now)
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.hset(keys.feed_state(feed.id), mapping=FeedState.encode(updates))
                pipe.hincrby(keys.feed_state(feed.id), "items_new", out.new)
                pipe.execute()
            return out

    def sync_schedule(self) -> None:
        """Add new feeds to the schedule (due soon, spread out) and drop removed ones."""
        ids = {f.id for f in self.config.feeds}
        scheduled = {m.decode() for m in self.redis.zrange(keys.SCHEDULE, 0, -1)}
        stale = scheduled - ids
        if stale:
            self.redis.zrem(keys.SCHEDULE, *stale)
        now = self.clock()
        fresh = {
            f.id: now + random.uniform(0, min(f.interval or f.min_interval, 10.0))
            for f in self.config.feeds
            if f.id not in scheduled
        }
        if fresh:
            self.redis.zadd(keys.SCHEDULE, fresh, nx=True)

    async def run(
        self, stop: asyncio.Event, *, max_in_flight: int = 100, push_every: float = 5.0
    ) -> None:
        """Poll due feeds until ``stop`` is set; look after WebSub every ``push_every`` s."""
        self.sync_schedule()
        in_flight: set[asyncio.Task[PollOutcome | None]] = set()
        with self.pool:
            async with Fetcher(
                self.limits, allow_private=self.config.allow_private_networks
            ) as fetcher:
                beat, push = 0.0, Push(self, fetcher, every=push_every)
                while not stop.is_set():
                    push.tick()
                    if time.monotonic() - beat > 5:
                        heartbeat(self.redis, "poller", self.token)
                        beat = time.monotonic()
                    room = max_in_flight - len(in_flight)
                    due = (
                        self.redis.zrangebyscore(
                            keys.SCHEDULE, "-inf", self.clock(), start=0, num=room
                        )
                        if room > 0
                        else []
                    )
                    busy = {t.get_name() for t in in_flight}
                    for raw in due:
                        feed = self.config.feed(raw.decode())
                        if feed is None or feed.id in busy:
                            continue
                        task = asyncio.create_task(
                            self._leased(fetcher, feed, only_if_due=True), name=feed.id
                        )
                        in_flight.add(task)
                        task.add_done_callback(in_flight.discard)
                    if self._first_polls and not in_flight:
                        summarise_first_polls(self._first_polls)
                        self._first_polls.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=0.5)
                if in_flight:
                    await asyncio.wait(in_flight, timeout=20)
                await push.close()
