"""Parse feeds in a pool of processes so that parsing uses every core.

Parsing a 30-item feed with feedparser costs 20-50 ms of CPU, which bounds
how fast one process can take in feeds; fetching is cheap. A ``ParsePool``
runs ``parse_feed`` in worker processes (a ``worker.core.pools.IdlePool``: started
by the first parse, stopped after a minute without one) while the poller's
event loop keeps fetching.

Decisions:

- **Size**: ``pool_size``: one worker per core for ``POOL_MIN_FEEDS`` feeds or
  more; below that (and with ``workers=0``) parsing runs in a thread of the
  poller: a few changed feeds a minute cost milliseconds.
- **Errors travel as data**: the worker returns the ``FeedError``'s message
  and reason (a keyword-argument exception does not survive pickling), and
  any other exception in feedparser becomes a ``parse`` error of that feed.
  A worker that dies (killed, out of memory) fails only the feeds in flight;
  the next parse starts a new pool.
- **Time**: a parse that takes over ``timeout`` seconds fails its feed; the
  worker finishes it in the background (the byte and item caps of
  ``worker.poll.parse`` bound how long that is).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from concurrent.futures.process import BrokenProcessPool

from worker.core.pools import IdlePool
from worker.errors import FailureReason, FeedError
from worker.poll.parse import ParsedFeed, parse_feed

__all__ = ["PARSE_TIMEOUT", "POOL_MIN_FEEDS", "ParsePool", "pool_size"]

log = logging.getLogger("newsalert.parsing")

PARSE_TIMEOUT = 60.0
#: Configs with at least this many feeds get a pool of parse processes.
POOL_MIN_FEEDS = 100


def pool_size(feeds: int) -> int:
    """Return how many parse processes a poller of ``feeds`` feeds should run."""
    return (os.cpu_count() or 1) if feeds >= POOL_MIN_FEEDS else 0


def _parse(
    body: bytes, feed_id: str, url: str, headers: Mapping[str, str]
) -> tuple[ParsedFeed | None, str, FailureReason]:
    """Parse in a worker; return (parsed, "", ERROR) or (None, error message, reason)."""
    try:
        return parse_feed(body, feed_id=feed_id, url=url, headers=headers), "", FailureReason.ERROR
    except FeedError as exc:
        return None, str(exc), exc.reason
    except Exception as exc:
        return None, f"parser crashed: {type(exc).__name__}: {exc}", FailureReason.PARSE


class ParsePool(IdlePool):
    """A pool of parse workers; use as ``with ParsePool() as pool``."""

    def __init__(self, workers: int | None = None, *, timeout: float = PARSE_TIMEOUT) -> None:
        super().__init__((os.cpu_count() or 1) if workers is None else workers)
        self.timeout = timeout

    async def parse(
        self, body: bytes, *, feed_id: str, url: str, headers: Mapping[str, str]
    ) -> ParsedFeed:
        """Parse a fetched feed off the event loop; raise ``FeedError`` like ``parse_feed``."""
        try:
            parsed, message, reason = await self.run(
                _parse, body, feed_id, url, dict(headers), timeout=self.timeout
            )
        except TimeoutError:
            raise FeedError(
                f"parsing took longer than {self.timeout:.0f}s", reason=FailureReason.PARSE
            ) from None
        except BrokenProcessPool:
            log.error("a parse worker died (feed %s); the pool starts again", feed_id)
            raise FeedError(
                "the parse worker died while parsing this feed", reason=FailureReason.PARSE
            ) from None
        if parsed is None:
            raise FeedError(message, reason=reason)
        return parsed
