"""The long-running modes: poller, worker, ``run --once`` and the ``run`` process tree.

``run`` is a small supervisor: it starts (or connects to) Redis, then one
``newsalert poll`` and ``--workers`` ``newsalert work`` child processes that
share it through ``REDIS_URL``. A child that dies is restarted with backoff
and the reason is logged. SIGTERM/SIGINT are passed on to the children,
which finish what they are doing; the supervisor waits up to
``SHUTDOWN_GRACE`` seconds (a dyno gets 30) before it kills what is left.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from worker import keys
from worker.app import App, install
from worker.poller import PollOutcome, Poller
from worker.queue import make_worker, pending

log = logging.getLogger("newsalert.run")

SHUTDOWN_GRACE = 25.0
RELOAD_EVERY = 5.0


def summarise_first_polls(outcomes: list[PollOutcome]) -> None:
    """Log the one line that says how many existing items were marked seen."""
    first = [o for o in outcomes if o.first_poll]
    if first:
        marked = sum(o.marked_seen for o in first)
        log.info("%d feeds polled for the first time, %d existing items marked seen, %d backfilled",
                 len(first), marked, sum(o.queued for o in first))


def poll_once(app: App) -> list[PollOutcome]:
    """Poll every feed once and queue what is new."""
    outcomes = asyncio.run(Poller(app.redis, app.config()).poll_all())
    summarise_first_polls(outcomes)
    failed = [o for o in outcomes if o.error]
    log.info("polled %d feeds: %d new items queued, %d failed",
             len(outcomes), sum(o.queued for o in outcomes), len(failed))
    return outcomes


def drain(app: App, wait: float) -> int:
    """Run jobs in this process until none is pending or ``wait`` seconds pass; return what is left."""
    install(app)
    worker = make_worker(app.redis)
    deadline = time.monotonic() + wait
    while True:
        worker.work(burst=True, with_scheduler=True, logging_level="WARNING")
        left = pending(app.redis)
        if left == 0 or time.monotonic() >= deadline:
            return left
        time.sleep(0.5)


def run_once(app: App, wait: float) -> int:
    """Poll, match and deliver once; return how many jobs were still pending at the deadline."""
    app.publish_version()
    poll_once(app)
    left = drain(app, wait)
    if left:
        log.warning("%d jobs still pending after %.0fs; they stay queued in Redis", left, wait)
    return left


def poll_forever(app: App) -> None:
    """Poll due feeds until SIGTERM/SIGINT, picking up config changes."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        while not stop.is_set():
            # One round per config version: a reload ends the round and starts the next.
            round_stop = asyncio.Event()
            task = asyncio.create_task(Poller(app.redis, app.config()).run(round_stop))
            while not task.done():
                try:
                    await asyncio.wait_for(stop.wait(), timeout=RELOAD_EVERY)
                except asyncio.TimeoutError:
                    pass
                if stop.is_set() or app.reload():
                    round_stop.set()
                    break
            await task
            app.publish_version()

    app.publish_version()
    log.info("poller started: %d feeds, config %s", len(app.config().feeds), app.config().version)
    asyncio.run(main())
    log.info("poller stopped")


def work_forever(app: App, burst: bool = False, queues: tuple[str, ...] = keys.QUEUES) -> None:
    """Run an RQ worker over our queues until SIGTERM (RQ finishes the current job first)."""
    install(app)
    app.engine()  # compile before taking the first job
    worker = make_worker(app.redis, queues)
    log.info("worker %s started on %s, config %s", worker.name, ", ".join(queues), app.config().version)
    worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")


@dataclass
class Child:
    """A supervised child process."""

    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started: float = field(default=0.0)


def supervise(app: App, workers: int, extra_args: list[str]) -> int:
    """Run the poller and workers as child processes until SIGTERM; return the exit code."""
    env = dict(os.environ, REDIS_URL=app.redis_url or "", NEWSALERT_CONFIG=str(app.config_dir))
    _ = app.redis  # start the embedded Redis, if any, before the children need it
    env["REDIS_URL"] = app.redis_url or ""
    base = [sys.executable, "-m", "worker.cli", *extra_args]
    children = [Child("poller", [*base, "poll"])]
    children += [Child(f"worker-{i + 1}", [*base, "work"]) for i in range(workers)]
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("newsalert run: %d feeds, %d watchlists, %d workers, config %s",
             len(app.config().feeds), len(app.config().watchlists), workers, app.config().version)
    while not stopping:
        now = time.monotonic()
        for child in children:
            if child.proc is not None and child.proc.poll() is not None:
                code = child.proc.returncode
                lived = now - child.started
                child.restarts = 0 if lived > 60 else child.restarts + 1
                delay = min(2 ** child.restarts, 60)
                log.error("%s exited with code %s; restarting in %ds", child.name, code, delay)
                child.proc, child.next_start = None, now + delay
            if child.proc is None and now >= child.next_start:
                child.proc = subprocess.Popen(child.argv, env=env)
                child.started = now
        time.sleep(0.2)
    log.info("shutting down: waiting up to %.0fs for children to finish", SHUTDOWN_GRACE)
    for child in children:
        if child.proc and child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + SHUTDOWN_GRACE
    for child in children:
        if child.proc is None:
            continue
        try:
            child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.error("%s did not stop in time; killing it", child.name)
            child.proc.kill()
            child.proc.wait()
    return 0
