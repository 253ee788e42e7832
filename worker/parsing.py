"""Parse feeds in a pool of processes so that parsing uses every core.

Parsing a 30-item feed with feedparser costs 20-50 ms of CPU, which bounds
how fast one process can take in feeds; fetching is cheap. A ``ParsePool``
runs ``parse_feed`` in worker processes while the poller's event loop keeps
fetching.

Decisions:

- **Size**: ``pool_size``: one worker per core for ``POOL_MIN_FEEDS`` feeds or
  more; below that (and with ``workers=0``) parsing runs in a thread of the
  poller: a few changed feeds a minute cost milliseconds.
- **Started on demand, closed when idle**: the workers start with the first
  parse and stop after ``IDLE_CLOSE`` seconds without one, so a quiet
  deployment does not hold ~40 MB per core for nothing (README "Benchmarks").
- **spawn**, not fork: the pool may start at any time, when the poller
  already has threads (the resolver's, the thread parser's) that a fork
  could copy mid-lock. A spawned worker imports feedparser afresh (~0.3 s,
  once per pool start).
- **Errors travel as data**: the worker returns the ``FeedError``'s message
  and reason (a keyword-argument exception does not survive pickling), and
  any other exception in feedparser becomes a ``parse`` error of that feed.
  A worker that dies (killed, out of memory) breaks the pool: the pool is
  rebuilt and only the feeds in flight fail.
- **Time**: a parse that takes over ``timeout`` seconds fails its feed; the
  worker finishes it in the background (the byte and item caps of
  ``worker.feeds`` bound how long that is).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import os
import time
from collections.abc import Mapping
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Self

from worker.errors import FeedError
from worker.feeds import ParsedFeed, parse_feed

__all__ = ["IDLE_CLOSE", "PARSE_TIMEOUT", "POOL_MIN_FEEDS", "ParsePool", "pool_size"]

log = logging.getLogger("newsalert.parsing")

PARSE_TIMEOUT = 60.0
#: Seconds without a parse after which the pool's workers stop.
IDLE_CLOSE = 60.0
#: Configs with at least this many feeds get a pool of parse processes.
POOL_MIN_FEEDS = 100


def pool_size(feeds: int) -> int:
    """Return how many parse processes a poller of ``feeds`` feeds should run."""
    return (os.cpu_count() or 1) if feeds >= POOL_MIN_FEEDS else 0


def _parse(
    body: bytes, feed_id: str, url: str, headers: Mapping[str, str]
) -> tuple[ParsedFeed | None, str, str]:
    """Parse in a worker; return (parsed, "", "") or (None, error message, reason)."""
    try:
        return parse_feed(body, feed_id=feed_id, url=url, headers=headers), "", ""
    except FeedError as exc:
        return None, str(exc), exc.reason
    except Exception as exc:
        return None, f"parser crashed: {type(exc).__name__}: {exc}", "parse"


class ParsePool:
    """A pool of parse workers; use as ``with ParsePool() as pool`` (closes it at the end)."""

    def __init__(
        self,
        workers: int | None = None,
        *,
        timeout: float = PARSE_TIMEOUT,
        idle_close: float = IDLE_CLOSE,
    ) -> None:
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        self.timeout = timeout
        self.idle_close = idle_close
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None
        self._busy = 0
        self._last_used = 0.0
        self._closer: asyncio.TimerHandle | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _pool(self) -> concurrent.futures.ProcessPoolExecutor | None:
        """Return the process pool, starting it if needed (None: parse in a thread)."""
        if self.workers > 0 and self._executor is None:
            self._executor = concurrent.futures.ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn")
            )
        return self._executor

    def pids(self) -> list[int]:
        """Return the worker process ids (for benchmarks and tests)."""
        procs: dict[int, Any] = getattr(self._executor, "_processes", None) or {}
        return list(procs)

    def close(self, wait: bool = True) -> None:
        """Stop the workers (the next parse starts them again)."""
        if self._closer is not None:
            self._closer.cancel()
            self._closer = None
        if self._executor is not None:
            self._executor.shutdown(wait=wait, cancel_futures=True)
            self._executor = None

    def _close_when_idle(self) -> None:
        self._closer = None
        idle = time.monotonic() - self._last_used
        if self._executor is None:
            return
        if self._busy == 0 and idle >= self.idle_close:
            log.debug("no feed to parse for %.0fs: parse workers stopped", idle)
            self.close(wait=False)  # idle workers exit at once; do not block the event loop
            return
        delay = max(self.idle_close - idle, 1.0)
        self._closer = asyncio.get_running_loop().call_later(delay, self._close_when_idle)

    async def parse(
        self, body: bytes, *, feed_id: str, url: str, headers: Mapping[str, str]
    ) -> ParsedFeed:
        """Parse a fetched feed off the event loop; raise ``FeedError`` like ``parse_feed``."""
        executor = self._pool()  # None: a thread of this process (asyncio's default executor)
        loop = asyncio.get_running_loop()
        self._busy += 1
        try:
            parsed, message, reason = await asyncio.wait_for(
                loop.run_in_executor(executor, _parse, body, feed_id, url, dict(headers)),
                self.timeout,
            )
        except TimeoutError:
            raise FeedError(
                f"parsing took longer than {self.timeout:.0f}s", reason="parse"
            ) from None
        except BrokenProcessPool:
            if executor is not None and self._executor is executor:  # the first to notice rebuilds
                log.error("a parse worker died (feed %s); restarting the pool", feed_id)
                self._restart()
            raise FeedError(
                "the parse worker died while parsing this feed", reason="parse"
            ) from None
        finally:
            self._busy -= 1
            self._last_used = time.monotonic()
            if self._executor is not None and self._closer is None:
                self._closer = loop.call_later(self.idle_close, self._close_when_idle)
        if parsed is None:
            raise FeedError(message, reason=reason)
        return parsed

    def _restart(self) -> None:
        executor, self._executor = self._executor, None  # the next parse starts a new pool
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
