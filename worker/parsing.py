"""Parse feeds in a pool of processes so that parsing uses every core.

Parsing a 30-item feed with feedparser costs 20-50 ms of CPU, which bounds
how fast one process can take in feeds; fetching is cheap. A ``ParsePool``
runs ``parse_feed`` in worker processes while the poller's event loop keeps
fetching.

Decisions:

- **fork**, not spawn/forkserver: a forked worker inherits the already
  imported feedparser and starts in ~10 ms; spawn would re-import the whole
  package (~0.3 s) and re-run ``__main__``. The pool starts all its workers
  at once, before the poller opens its HTTP client, so no other thread of
  ours (the resolver's) exists to be copied mid-lock.
- **Size**: one worker per core by default; ``workers=0`` parses inline
  (what a one-feed command or a test may want).
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
from collections.abc import Mapping
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Self

from worker.errors import FeedError
from worker.feeds import ParsedFeed, parse_feed

__all__ = ["PARSE_TIMEOUT", "ParsePool"]

log = logging.getLogger("newsalert.parsing")

PARSE_TIMEOUT = 60.0


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


def _ready() -> int:
    return os.getpid()


class ParsePool:
    """A pool of parse workers; use as ``with ParsePool() as pool``."""

    def __init__(self, workers: int | None = None, *, timeout: float = PARSE_TIMEOUT) -> None:
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        self.timeout = timeout
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        """Start every worker now (see module docstring: before any other thread exists)."""
        if self.workers <= 0 or self._executor is not None:
            return
        self._executor = concurrent.futures.ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("fork")
        )
        for f in [self._executor.submit(_ready) for _ in range(self.workers)]:
            f.result()

    def pids(self) -> list[int]:
        """Return the worker process ids (for benchmarks and tests)."""
        procs: dict[int, Any] = getattr(self._executor, "_processes", None) or {}
        return list(procs)

    def close(self) -> None:
        """Stop the workers."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    async def parse(
        self, body: bytes, *, feed_id: str, url: str, headers: Mapping[str, str]
    ) -> ParsedFeed:
        """Parse a fetched feed off the event loop; raise ``FeedError`` like ``parse_feed``."""
        executor = self._executor
        if executor is None:
            parsed, message, reason = _parse(body, feed_id, url, dict(headers))
        else:
            loop = asyncio.get_running_loop()
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
                if self._executor is executor:  # the first feed to notice rebuilds it
                    log.error("a parse worker died (feed %s); restarting the pool", feed_id)
                    self._restart()
                raise FeedError(
                    "the parse worker died while parsing this feed", reason="parse"
                ) from None
        if parsed is None:
            raise FeedError(message, reason=reason)
        return parsed

    def _restart(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        self.start()
