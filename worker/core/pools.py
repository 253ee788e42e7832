"""Process pools that start with their first task and stop when idle.

The poller hands its CPU-heavy work to them: parsing feeds (``worker.poll.parse_pool``)
and extracting article text (``worker.poll.fulltext``), so that it uses more than
one core and its event loop keeps fetching.

Decisions:

- **Started on demand, stopped when idle**: the workers start with the first
  task and stop after ``IDLE_CLOSE`` seconds without one, so a quiet
  deployment does not hold their memory (feedparser, or trafilatura with
  lxml: 40-70 MB a worker) for nothing (README "Benchmarks").
- **spawn**, not fork: a pool may start at any time, when the poller already
  has threads (the resolver's) that a fork could copy mid-lock. A spawned
  worker imports its libraries afresh, once per pool start (0.3-1 s).
- **No workers** (``workers=0``) runs tasks in a thread of this process.
- **Time**: a task over its ``timeout`` raises ``TimeoutError``; its worker
  finishes it in the background (the callers' inputs are size-capped).
- A worker that dies breaks the pool: the tasks in flight raise
  ``BrokenProcessPool`` and the next task starts a new pool.
- **No resource tracker at idle**: spawn starts multiprocessing's resource
  tracker, a Python process (13 MB) that unlinks the pool's named semaphores if
  this process is killed. Once the last pool of the process has stopped there
  are no semaphores left, so the tracker is stopped too; the next pool starts
  a new one. That uses ``ResourceTracker._stop``, which CPython's own tests use
  (3.8 to 3.13); without it the tracker simply stays.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import threading
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import resource_tracker
from typing import Any, Self, TypeVar

__all__ = ["IDLE_CLOSE", "IdlePool"]

#: Seconds without a task after which a pool's workers stop.
IDLE_CLOSE = 60.0

T = TypeVar("T")

_open_pools = 0  # process pools of this process not yet fully stopped
_open_lock = threading.Lock()


def _start_executor(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    global _open_pools
    with _open_lock:
        _open_pools += 1
    return concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn")
    )


def _retire(executor: concurrent.futures.ProcessPoolExecutor) -> None:
    """Stop ``executor``'s workers and wait; then stop the resource tracker if no pool is left."""
    global _open_pools
    executor.shutdown(wait=True, cancel_futures=True)  # drops its queues: their semaphores go
    with _open_lock:
        _open_pools -= 1
        stop = getattr(resource_tracker._resource_tracker, "_stop", None)
        if _open_pools == 0 and stop is not None:
            stop()


def _retire_later(executor: concurrent.futures.ProcessPoolExecutor) -> None:
    """Retire ``executor`` in a thread: an event loop must not wait for its workers."""
    threading.Thread(target=_retire, args=(executor,), name="pool-retire", daemon=True).start()


class IdlePool:
    """A pool of worker processes; use as ``with IdlePool(n) as pool`` (closes it at the end)."""

    def __init__(self, workers: int, *, idle_close: float = IDLE_CLOSE) -> None:
        self.workers = workers
        self.idle_close = idle_close
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None
        self._busy = 0
        self._last_used = 0.0
        self._closer: asyncio.TimerHandle | None = None
        self._closer_loop: asyncio.AbstractEventLoop | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def pids(self) -> list[int]:
        """Return the worker process ids (for benchmarks and tests)."""
        procs: dict[int, Any] = getattr(self._executor, "_processes", None) or {}
        return list(procs)

    def close(self, wait: bool = True) -> None:
        """Stop the workers (the next task starts them again)."""
        if self._closer is not None:
            self._closer.cancel()
            self._closer = None
        if self._executor is not None:
            (_retire if wait else _retire_later)(self._executor)
            self._executor = None

    async def run(self, fn: Callable[..., T], *args: Any, timeout: float | None = None) -> T:
        """Run ``fn(*args)`` in a worker (``fn`` and its arguments must pickle)."""
        if self.workers > 0 and self._executor is None:
            self._executor = _start_executor(self.workers)
        executor = self._executor  # None: a thread of this process (asyncio's default executor)
        loop = asyncio.get_running_loop()
        self._busy += 1
        try:
            return await asyncio.wait_for(loop.run_in_executor(executor, fn, *args), timeout)
        except BrokenProcessPool:
            if executor is not None and self._executor is executor:  # the first to notice
                self._executor = None  # the next task starts a new pool
                _retire_later(executor)
            raise
        finally:
            self._busy -= 1
            self._last_used = time.monotonic()
            self._watch_idle(loop)

    def _watch_idle(self, loop: asyncio.AbstractEventLoop) -> None:
        """Make sure a timer will stop the workers once they have been idle long enough."""
        if self._executor is None:
            return
        if self._closer is not None and self._closer_loop is loop and not loop.is_closed():
            return  # one timer is enough (a timer of a finished event loop never fires)
        self._closer_loop = loop
        self._closer = loop.call_later(self.idle_close, self._close_when_idle, loop)

    def _close_when_idle(self, loop: asyncio.AbstractEventLoop) -> None:
        self._closer = None
        if self._executor is None:
            return
        idle = time.monotonic() - self._last_used
        if self._busy == 0 and idle >= self.idle_close:
            self.close(wait=False)  # idle workers exit at once; do not block the event loop
            return
        self._closer = loop.call_later(
            max(self.idle_close - idle, 1.0), self._close_when_idle, loop
        )
