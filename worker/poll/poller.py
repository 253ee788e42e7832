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
  the feed may have dropped items between polls. The poller warns once per
  feed and halves that feed's interval, down to ``MIN_INTERVAL`` (or the
  configured interval if that is shorter); the current interval is kept in
  the feed's state and reset when the configured interval changes.
- **GUID churn**: a feed that mints new GUIDs for old stories on every fetch
  would look like an overflow and re-alert everything. The seen-set also
  holds each item's link id, so when an all-new fetch is mostly links that
  were already seen, the feed is switched for good to link identity
  (``identity: link`` in its state; logged once) and only unseen links are
  new. A feed whose GUIDs *and* links both churn cannot be told from a very
  busy feed: it is treated as an overflow (warned once, polled faster).
- **Intervals** never go below the configured one except by overflow:
  ``<ttl>`` and ``Cache-Control: max-age`` raise them (capped at
  ``HINT_CAP``), jitter only adds 0-10%, and the first poll's follow-up is
  spread over 1-1.5 intervals so feeds added together drift apart.
  ``Retry-After`` on 429/503 is honoured exactly (up to ``MAX_RETRY_AFTER``);
  other failures back off exponentially with ±10% jitter up to ``MAX_BACKOFF``
  (``worker.core.retry.backoff``).
- **Health** per feed in its state hash: ``last_ok``, ``last_error``,
  ``last_reason``, ``last_error_at``, ``failures`` (consecutive), ``status``,
  ``items_new`` since ``primed_at`` (items per day), ``poll_interval`` and
  ``next_due``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import redis

from worker.config import Config, Feed
from worker.core import keys
from worker.core.locks import hold
from worker.core.metrics import heartbeat, incr
from worker.core.retry import backoff
from worker.errors import FailureReason, FeedError
from worker.model import Item
from worker.poll import seen
from worker.poll.fetch import Fetcher, FetchLimits, FetchResult
from worker.poll.fulltext import Articles
from worker.poll.parse_pool import ParsePool, pool_size
from worker.poll.state import FeedState

log = logging.getLogger("newsalert.poller")

BATCH_SIZE = 50
MAX_BACKOFF = 6 * 3600.0
MAX_RETRY_AFTER = 24 * 3600.0
HINT_CAP = 3600.0
MIN_INTERVAL = 30.0
OVERFLOW_MIN = 5
CHURN_SHARE = 0.8
_TTL = re.compile(rb"<ttl>\s*(\d{1,7})\s*</ttl>")
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)")


#: Queue one match job for a batch of stored item ids under a config version (the service
#: passes RQ's).
EnqueueMatch = Callable[[redis.Redis, Sequence[str], str], None]


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
    parsed: bool = False
    overflow: bool = False
    churn: bool = False


def summarise_first_polls(outcomes: Sequence[PollOutcome]) -> None:
    """Log the one line that says how many existing items first polls marked seen."""
    first = [o for o in outcomes if o.first_poll]
    if first:
        log.info(
            "%d feeds polled for the first time: %d existing items marked seen, %d backfilled",
            len(first),
            sum(o.marked_seen for o in first),
            sum(o.queued for o in first),
        )


def _newest(items: Sequence[Item], n: int) -> list[Item]:
    """Return the newest ``n`` items (feed order breaks ties: feeds list newest first)."""
    if n <= 0:
        return []
    order = sorted(range(len(items)), key=lambda i: (-(items[i].published or 0), i))
    return [items[i] for i in order[:n]]


def _hints(res: FetchResult, state: FeedState) -> tuple[float, float]:
    """Return (RSS ttl, Cache-Control max-age) in seconds, 0 when absent."""
    if res.status == 304:
        ttl = state.ttl
    else:
        m = _TTL.search(res.body)
        ttl = int(m.group(1)) * 60.0 if m else 0.0
    m2 = _MAX_AGE.search(res.headers.get("cache-control", "").lower())
    return ttl, float(m2.group(1)) if m2 else 0.0


class Poller:
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

    async def _queue(self, items: Sequence[Item], fetcher: Fetcher | None = None) -> int:
        """Add article text where wanted, store item bodies, queue them in batches; return how many."""
        if fetcher is not None:  # new items only, and before they are stored (worker.poll.fulltext)
            items = await self.articles.add(fetcher, items)
        now = self.clock()
        items = [Item.from_dict({**i.to_dict(), "seen_at": now}) for i in items]
        with self.redis.pipeline(transaction=False) as pipe:
            for it in items:
                pipe.set(keys.item(it.id), json.dumps(it.to_dict()), ex=keys.ITEM_TTL)
            pipe.execute()
        for start in range(0, len(items), self.batch_size):
            batch = items[start : start + self.batch_size]
            self.enqueue(self.redis, [i.id for i in batch], self.config.version)
            incr(self.redis, "batches")
        return len(items)

    def _interval(self, feed: Feed, state: FeedState) -> float:
        """Return the feed's interval now: the configured one, or what overflow made of it."""
        if state.interval and state.interval_config == feed.interval:
            return state.interval
        return feed.interval

    def _record_failure(self, feed: Feed, state: FeedState, exc: FeedError) -> float:
        """Record a failed fetch; return the delay before the next try."""
        failures = state.failures + 1
        mapping: dict[str, Any] = {
            "failures": failures,
            "last_error": str(exc)[:500],
            "last_error_at": self.clock(),
            "last_reason": exc.reason,
        }
        if exc.status is not None:
            mapping["status"] = exc.status
        if exc.reason is FailureReason.GONE:
            mapping["disabled"] = "410 Gone"
            log.error(
                "feed %s: disabled: the server says it is gone (410)",
                feed.id,
                extra={"feed": feed.id},
            )
        base = self._interval(feed, state)
        delay = backoff(base, failures, MAX_BACKOFF, jitter=0.1)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:  # after the jitter: the server said "not before"
            delay = max(delay, min(float(retry_after), MAX_RETRY_AFTER))
        mapping["poll_interval"] = delay
        self.redis.hset(keys.feed_state(feed.id), mapping=FeedState.encode(mapping))
        return delay

    async def poll_feed(self, fetcher: Fetcher, feed: Feed) -> tuple[PollOutcome, float]:
        """Poll one feed; return what happened and the delay until it is due again."""
        out = PollOutcome(feed.id)
        state_key = keys.feed_state(feed.id)
        state = FeedState.load(self.redis, feed.id)
        if state.disabled:
            out.error = "disabled: " + state.disabled
            return out, MAX_BACKOFF
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
        ttl, max_age = _hints(res, state)
        mapping["ttl"] = ttl
        interval = self._interval(feed, replace(state, **updates))
        interval = max(interval, min(max(ttl, max_age), HINT_CAP))
        spread = random.uniform(1.0, 1.5) if out.first_poll else random.uniform(1.0, 1.1)
        delay = interval * spread
        mapping.update(poll_interval=interval, next_due=now + delay)
        with self.redis.pipeline(transaction=False) as pipe:
            incr(pipe, "fetches", feed.id, "not_modified" if res.status == 304 else "ok")
            pipe.hset(state_key, mapping=FeedState.encode(mapping))
            pipe.hincrby(state_key, "items_new", out.new)
            if res.status == 304:
                seen.expire(pipe, feed.id)
            pipe.execute()
        return out, delay

    async def _take(
        self,
        feed: Feed,
        res: FetchResult,
        state: FeedState,
        out: PollOutcome,
        fetcher: Fetcher | None = None,
    ) -> dict[str, Any]:
        """Find the new items of a fetched body, queue them, mark all seen; return state updates."""
        updates: dict[str, Any] = {}
        known = seen.load(self.redis, feed.id)
        primed = state.primed and known is not None
        if state.primed and known is None:
            log.warning(
                "feed %s: its seen-set expired; existing items are marked seen again, not alerted",
                feed.id,
                extra={"feed": feed.id},
            )
        known = known or {}
        if not primed:
            updates.update(primed=True, primed_at=self.clock(), items_new=0)
        by_link = state.identity == "link"
        pre = seen.prescanned(feed.id, res.body)
        if pre is not None:
            ids, link_ids = pre
            check = [lk or i for i, lk in zip(ids, link_ids, strict=False)] if by_link else ids
            fresh = sum(c not in known for c in check)
            if (primed and not fresh) or (not primed and feed.backfill == 0):
                stored = ids + [lk for lk in link_ids if lk]
                if not primed or seen.needs_write(known, stored, self.clock()):
                    seen.store(self.redis, feed.id, stored, self.clock())
                else:
                    seen.expire(self.redis, feed.id)
                self._count(feed, primed, new=0, total=len(ids), out=out)
                return updates
        parsed = await self.pool.parse(res.body, feed_id=feed.id, url=res.url, headers=res.headers)
        self.parses += 1
        out.parsed = True
        if parsed.warning:
            log.info(
                "feed %s: malformed but readable: %s",
                feed.id,
                parsed.warning,
                extra={"feed": feed.id},
            )
        items = parsed.items
        link_ids = [seen.link_id(feed.id, i.link) for i in items]
        if by_link:
            items = [
                replace(i, id=lk.hex()) if lk else i for i, lk in zip(items, link_ids, strict=False)
            ]
        new = [i for i in items if bytes.fromhex(i.id) not in known]
        if primed and len(items) >= OVERFLOW_MIN and len(new) == len(items):
            linked = [(i, lk) for i, lk in zip(items, link_ids, strict=False) if lk]
            if not by_link and sum(lk in known for _, lk in linked) >= CHURN_SHARE * len(items):
                out.churn = True
                updates["identity"] = "link"
                log.warning(
                    "feed %s: its GUIDs change on every fetch; telling its items apart "
                    "by link from now on",
                    feed.id,
                    extra={"feed": feed.id},
                )
                items = [
                    replace(i, id=lk.hex()) if lk else i
                    for i, lk in zip(items, link_ids, strict=False)
                ]
                new = [i for i in items if bytes.fromhex(i.id) not in known]
            else:
                self._overflow(feed, state, updates, out)
        self._count(feed, primed, new=len(new), total=len(items), out=out)
        if primed:
            out.queued = await self._queue(new, fetcher)
        else:
            out.queued = await self._queue(_newest(new, feed.backfill), fetcher)
            out.marked_seen = len(new) - out.queued
        stored = [bytes.fromhex(i.id) for i in items] + [lk for lk in link_ids if lk]
        stored += [bytes.fromhex(i.id) for i in parsed.items]
        seen.store(self.redis, feed.id, stored, self.clock())
        return updates

    def _count(self, feed: Feed, primed: bool, *, new: int, total: int, out: PollOutcome) -> None:
        """Count a fetch's items in the metrics and ``out``."""
        out.first_poll = not primed
        out.new = new if primed else 0
        if not primed:
            out.marked_seen = total
        with self.redis.pipeline(transaction=False) as pipe:
            incr(
                pipe,
                "items",
                feed.id,
                "new" if primed else "first_poll",
                by=new if primed else total,
            )
            incr(pipe, "items", feed.id, "seen", by=total - new if primed else 0)
            pipe.execute()

    def _overflow(
        self, feed: Feed, state: FeedState, updates: dict[str, Any], out: PollOutcome
    ) -> None:
        """React to a fetch in which every item is new: warn once, poll the feed faster."""
        out.overflow = True
        current = self._interval(feed, state)
        faster = max(min(MIN_INTERVAL, feed.interval), current / 2)
        updates.update(interval=faster, interval_config=feed.interval)
        if state.overflow_warned is None:
            updates["overflow_warned"] = self.clock()
            log.warning(
                "feed %s: every item was new; items may have been missed between polls. "
                "Polling it every %.0fs instead of %.0fs",
                feed.id,
                faster,
                current,
                extra={"feed": feed.id},
            )
        else:
            log.info("feed %s: every item new again; interval %.0fs", feed.id, faster)

    async def poll_all(self, feeds: Sequence[Feed] | None = None) -> list[PollOutcome]:
        """Poll every feed once, now, whatever its schedule (``run --once``, ``poll --once``)."""
        feeds = list(self.config.feeds if feeds is None else feeds)
        with self.pool:
            async with Fetcher(
                self.limits, allow_private=self.config.allow_private_networks
            ) as fetcher:
                results = await asyncio.gather(*(self._leased(fetcher, f) for f in feeds))
        return [r for r in results if r is not None]

    async def _leased(
        self, fetcher: Fetcher, feed: Feed, *, only_if_due: bool = False
    ) -> PollOutcome | None:
        """Poll a feed under its lease and reschedule it; None if another poller has it."""
        with hold(self.redis, keys.lease(feed.id), self.lease_ttl) as ours:
            if not ours:
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

    def sync_schedule(self) -> None:
        """Add new feeds to the schedule (due soon, spread out) and drop removed ones."""
        ids = {f.id for f in self.config.feeds}
        scheduled = {m.decode() for m in self.redis.zrange(keys.SCHEDULE, 0, -1)}
        stale = scheduled - ids
        if stale:
            self.redis.zrem(keys.SCHEDULE, *stale)
        now = self.clock()
        fresh = {
            f.id: now + random.uniform(0, min(f.interval, 10.0))
            for f in self.config.feeds
            if f.id not in scheduled
        }
        if fresh:
            self.redis.zadd(keys.SCHEDULE, fresh, nx=True)

    async def run(self, stop: asyncio.Event, *, max_in_flight: int = 100) -> None:
        """Poll due feeds until ``stop`` is set."""
        self.sync_schedule()
        in_flight: set[asyncio.Task[PollOutcome | None]] = set()
        with self.pool:
            async with Fetcher(
                self.limits, allow_private=self.config.allow_private_networks
            ) as fetcher:
                beat = 0.0
                while not stop.is_set():
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
