"""When a feed is due again: its interval, what its server asks for, and error back-off.

Pure: state hashes and results in, numbers and state updates out (the poller
writes them). The order of precedence, most binding first:

1. ``Retry-After`` on 429/503, honoured exactly (up to ``MAX_RETRY_AFTER``);
2. other failures back off exponentially from the current interval, ±10%
   jitter, up to ``MAX_BACKOFF``;
3. RSS ``<ttl>`` and ``Cache-Control: max-age`` raise the interval (to at most
   ``HINT_CAP``);
4. a fixed ``interval:`` from the config (halved by an overflow, see the poller);
5. a feed pushed to us by a WebSub hub: its ``max_interval``, a safety net;
6. ``interval: auto``: the feed's estimated rate (``worker.poll.cadence``).

Jitter only adds 0-10%, and a first poll's follow-up is spread over 1-1.5
intervals so feeds added together drift apart.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Sequence
from typing import Any

from worker.config import Feed
from worker.core import retry
from worker.errors import FailureReason, FeedError
from worker.poll.cadence import Rate, feed_times, interval_for
from worker.poll.fetch import FetchResult
from worker.poll.state import FeedState

__all__ = ["after_fetch", "backoff", "interval", "observed", "overflow"]

log = logging.getLogger("newsalert.poller")

MAX_BACKOFF = 6 * 3600.0
MAX_RETRY_AFTER = 24 * 3600.0
HINT_CAP = 3600.0
MIN_INTERVAL = 30.0  # the fastest an overflow makes a fixed-interval feed
_TTL = re.compile(rb"<ttl>\s*(\d{1,7})\s*</ttl>")
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)")


def hints(res: FetchResult, state: FeedState) -> tuple[float, float]:
    """Return (RSS ttl, Cache-Control max-age) in seconds, 0 when absent."""
    if res.status == 304:
        ttl = state.ttl
    else:
        m = _TTL.search(res.body)
        ttl = int(m.group(1)) * 60.0 if m else 0.0
    m2 = _MAX_AGE.search(res.headers.get("cache-control", "").lower())
    return ttl, float(m2.group(1)) if m2 else 0.0


def interval(feed: Feed, state: FeedState, now: float, *, pushed: bool = False) -> float:
    """Return the feed's interval now, before server hints and jitter."""
    if feed.interval is None:
        if pushed:
            return feed.max_interval
        rate = Rate.from_state(state, now).per_second(now)
        return interval_for(rate, feed.min_interval, feed.max_interval)
    if state.interval and state.interval_config == feed.interval:
        return state.interval  # what an overflow made of the configured one
    return feed.interval


def observed(
    state: FeedState, res: FetchResult, times: Sequence[float | None], now: float, *, first: bool
) -> dict[str, float]:
    """Return the rate fields of the state after a fetch that added items at ``times``.

    A first poll starts the estimate from the dates of the items the feed holds.
    """
    if first:
        return Rate.seeded(feed_times(res.body), now).to_state()
    return Rate.from_state(state, now).observe(times, now).to_state()


def after_fetch(
    feed: Feed, state: FeedState, res: FetchResult, now: float, *, first: bool, pushed: bool
) -> tuple[dict[str, Any], float]:
    """Return the state updates after a good fetch and the delay until the next one.

    ``state`` already holds the fetch's updates, including the rate fields.
    """
    ttl, max_age = hints(res, state)
    every = max(interval(feed, state, now, pushed=pushed), min(max(ttl, max_age), HINT_CAP))
    delay = every * (random.uniform(1.0, 1.5) if first else random.uniform(1.0, 1.1))
    return {"ttl": ttl, "poll_interval": every, "next_due": now + delay}, delay


def backoff(
    feed: Feed, state: FeedState, exc: FeedError, now: float, *, pushed: bool = False
) -> tuple[dict[str, Any], float]:
    """Return the state updates recording a failed fetch and the delay before the next try."""
    failures = state.failures + 1
    mapping: dict[str, Any] = {
        "failures": failures,
        "last_error": str(exc)[:500],
        "last_error_at": now,
        "last_reason": exc.reason,
    }
    if exc.status is not None:
        mapping["status"] = exc.status
    if exc.reason is FailureReason.GONE:
        mapping["disabled"] = "410 Gone"
    base = interval(feed, state, now, pushed=pushed)
    # The cap applies after the jitter: never longer than MAX_BACKOFF (feeds failing for
    # long all come back at the cap; the first tries keep their spread).
    delay = retry.backoff(base, failures, MAX_BACKOFF, jitter=0.1)
    retry_after = getattr(exc, "retry_after", None)
    if retry_after:  # after the jitter: the server said "not before"
        delay = max(delay, min(float(retry_after), MAX_RETRY_AFTER))
    mapping["poll_interval"] = delay
    return mapping, delay


def overflow(feed: Feed, state: FeedState, now: float) -> dict[str, Any]:
    """Return the state updates after a fetch in which every item was new; warn once.

    The feed may have dropped items between polls. A fixed interval is halved,
    down to ``MIN_INTERVAL`` (or the configured one if shorter), and kept in the
    state until the configured one changes. An ``auto`` interval needs no
    override: the burst itself raises the rate estimate.
    """
    current = interval(feed, state, now)
    updates: dict[str, Any] = {}
    quicker = current
    if feed.interval is not None:
        quicker = max(min(MIN_INTERVAL, feed.interval), current / 2)
        updates.update(interval=quicker, interval_config=feed.interval)
    if state.overflow_warned is not None:
        log.info("feed %s: every item new again; interval %.0fs", feed.id, quicker)
        return updates
    log.warning(
        "feed %s: every item was new; items may have been missed between polls. "
        "Polling it every %.0fs instead of %.0fs",
        feed.id,
        quicker,
        current,
        extra={"feed": feed.id},
    )
    return {**updates, "overflow_warned": now}
