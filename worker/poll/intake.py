"""The taking half of a poll: which items of a fetched or pushed body are new, queued, seen.

``Poller`` (``worker.poll.poller``) decides when a feed is fetched and holds its
lease; ``Intake`` decides what of the body is news. New items are stored and
queued *before* they are marked seen, so a poller that dies in between causes
a repeat match (which the delivery ledger absorbs), never a lost item.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import redis

from worker.config import Config, Feed
from worker.core import keys
from worker.core.archive import Archive
from worker.core.metrics import incr
from worker.model import Item
from worker.poll import pacing, seen
from worker.poll.fetch import Fetcher, FetchResult
from worker.poll.fulltext import Articles
from worker.poll.outcome import PollOutcome, churned, newest, relinked
from worker.poll.parse_pool import ParsePool
from worker.poll.state import FeedState

log = logging.getLogger("newsalert.poller")

OVERFLOW_MIN = 5

#: Queue one match job for a batch of stored item ids under a config version (the service
#: passes RQ's).
EnqueueMatch = Callable[[redis.Redis, Sequence[str], str], None]


class Intake:
    """Find, store, queue and remember the new items of a body (the poller's base)."""

    redis: redis.Redis
    config: Config
    enqueue: EnqueueMatch
    batch_size: int
    clock: Callable[[], float]
    pool: ParsePool
    parses: int
    articles: Articles
    archive: Archive

    async def _queue(self, items: Sequence[Item], fetcher: Fetcher | None = None) -> int:
        """Add article text where wanted, store item bodies, queue them in batches; return how many."""
        if fetcher is not None:  # new items only, and before they are stored (worker.poll.fulltext)
            items = await self.articles.add(fetcher, items)
        now = self.clock()
        items = [Item.from_dict({**i.to_dict(), "seen_at": now}) for i in items]
        with self.redis.pipeline(transaction=False) as pipe:
            for it in items:
                pipe.set(keys.item(it.id), json.dumps(it.to_dict()), ex=keys.ITEM_TTL)
            archived = self.archive.write(pipe, items, now)
            results = pipe.execute()
        if archived:
            self.archive.written(results[-1])
        for start in range(0, len(items), self.batch_size):
            batch = items[start : start + self.batch_size]
            self.enqueue(self.redis, [i.id for i in batch], self.config.version)
            incr(self.redis, "batches")
        return len(items)

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
        items, new = self._sort_new(feed, parsed.items, state, known, primed, updates, out)
        self._count(feed, primed, new=len(new), total=len(items), out=out)
        if primed:
            out.times = [i.published for i in new]
            out.queued = await self._queue(new, fetcher)
        else:
            out.queued = await self._queue(newest(new, feed.backfill), fetcher)
            out.marked_seen = len(new) - out.queued
        link_ids = [seen.link_id(feed.id, i.link) for i in parsed.items]
        stored = [bytes.fromhex(i.id) for i in items] + [lk for lk in link_ids if lk]
        stored += [bytes.fromhex(i.id) for i in parsed.items]
        seen.store(self.redis, feed.id, stored, self.clock())
        return updates

    def _sort_new(
        self,
        feed: Feed,
        parsed: Sequence[Item],
        state: FeedState,
        known: dict[bytes, int],
        primed: bool,
        updates: dict[str, Any],
        out: PollOutcome,
    ) -> tuple[list[Item], list[Item]]:
        """Return a parse's items under the feed's identity, and those not seen before.

        An all-new fetch is either GUID churn (switch the feed to link identity for
        good) or an overflow (warn, poll faster).
        """
        link_ids = [seen.link_id(feed.id, i.link) for i in parsed]
        by_link = state.identity == "link"
        items = relinked(parsed, link_ids) if by_link else list(parsed)
        new = [i for i in items if bytes.fromhex(i.id) not in known]
        overflowing = len(items) >= OVERFLOW_MIN and len(new) == len(items)
        if not (primed and overflowing and not out.pushed):  # a hub pushes only what is new
            return items, new
        if not by_link and churned(items, link_ids, known):
            out.churn = True
            updates["identity"] = "link"
            log.warning(
                "feed %s: its GUIDs change on every fetch; telling its items apart "
                "by link from now on",
                feed.id,
                extra={"feed": feed.id},
            )
            items = relinked(parsed, link_ids)
            return items, [i for i in items if bytes.fromhex(i.id) not in known]
        self._overflow(feed, state, updates, out)
        return items, new

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
        updates.update(pacing.overflow(feed, state, self.clock()))
