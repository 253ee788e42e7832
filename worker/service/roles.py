"""The long-running modes: poller, worker, ``run --once`` and the ``run`` process tree.

``run`` itself (the process tree) is in ``worker.service.supervisor``. Each mode imports
its side's libraries when it starts, so a poller never loads apprise and a
worker never loads aiohttp or feedparser: ``run``'s idle memory is the sum of
its processes' (README "Benchmarks").
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

from worker.core import keys
from worker.service.app import RELOAD_EVERY, App, install
from worker.service.queue import (
    depths,
    enqueue_flush,
    enqueue_match,
    make_scheduler,
    make_worker,
    pending,
)

if TYPE_CHECKING:
    from worker.poll.outcome import PollOutcome

log = logging.getLogger("newsalert.run")

_PR_SET_PDEATHSIG = 1
#: Seconds within which a second SIGTERM/SIGINT is the first one again: a dyno manager
#: (or Ctrl-C) signals the whole process group, and ``run`` forwards it to its children.
#: Taken as "stop now", the echo abandoned the job in hand and left RQ's scheduler lock
#: held for a minute after every restart.
SIGNAL_ECHO = 2.0


def die_with_parent() -> None:
    """Get SIGTERM when the parent process dies (Linux; elsewhere a no-op).

    Children of ``newsalert run`` whose supervisor was SIGKILLed would otherwise
    run on unsupervised forever, beside the children of the next ``run``.
    SIGTERM lets them finish the job in hand and exit.
    """
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _supervised() -> bool:
    return os.environ.get("NEWSALERT_CHILD") == "1"


def serve_metrics(app: App, port: int | None, roles: tuple[str, ...]) -> None:
    """Serve /metrics and /healthz on ``port`` (nothing when it is None)."""
    if port is None:
        return
    from worker.service.exporter import RedisCollector, serve

    client = app.redis
    serve(
        client,
        port,
        # The live version as the processes publish it: this one may not load the config.
        RedisCollector(
            client,
            lambda: depths(client),
            lambda: (client.get(keys.CONFIG_VERSION) or b"none").decode(),
        ),
        roles,
    )


def poll_once(app: App) -> list[PollOutcome]:
    """Poll every feed once and queue what is new."""
    from worker.poll.outcome import summarise_first_polls
    from worker.poll.poller import Poller

    outcomes = asyncio.run(Poller(app.redis, app.config(), enqueue=enqueue_match).poll_all())
    summarise_first_polls(outcomes)
    failed = [o for o in outcomes if o.error]
    log.info(
        "polled %d feeds: %d new items queued, %d failed",
        len(outcomes),
        sum(o.queued for o in outcomes),
        len(failed),
    )
    return outcomes


def work_burst(app: App, queues: tuple[str, ...]) -> None:
    """Run the queued (and due scheduled) jobs of each queue in turn, in this thread.

    One RQ worker per queue, as in ``work_forever``: RQ then takes jobs with LMOVE, so a
    kill between taking a job and starting it leaves it where RQ finds it again.
    """
    for name in queues:
        make_worker(app.redis, name).work(burst=True, with_scheduler=True, logging_level="WARNING")


def drain(app: App, wait: float) -> int:
    """Run jobs in this process until none is pending or ``wait`` seconds pass; return what is left."""
    from worker.deliver.outbox import flush_due

    install(app)
    deadline = time.monotonic() + wait
    while True:
        work_burst(app, keys.QUEUES)
        # Outboxes whose quiet hours or digest time has come.
        flush_due(app.redis, app.config(), enqueue_flush=enqueue_flush)
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
    from worker.poll.poller import Poller

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        while not stop.is_set():
            # One round per config version: a reload ends the round and starts the next.
            round_stop = asyncio.Event()
            task = asyncio.create_task(
                Poller(app.redis, app.config(), enqueue=enqueue_match).run(round_stop)
            )
            while not task.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=RELOAD_EVERY)
                if stop.is_set() or app.reload():
                    round_stop.set()
                    break
            await task
            app.publish_version()

    if _supervised():
        die_with_parent()
    app.publish_version()
    log.info("poller started: %d feeds, config %s", len(app.config().feeds), app.config().version)
    asyncio.run(main())
    log.info("poller stopped")


def work_forever(app: App, burst: bool = False, queues: tuple[str, ...] = keys.QUEUES) -> None:
    """Run one RQ worker thread per queue until SIGTERM (each finishes its job in hand).

    ``--burst`` runs ``work_burst`` once instead: the jobs queued now, then exit.
    """
    from worker.deliver.outbox import flush_due

    if _supervised():
        die_with_parent()
    install(app)
    app.engine()  # compile before taking the first job
    if burst:
        work_burst(app, queues)
        return
    scheduler = make_scheduler(app.redis, queues)
    workers = [make_worker(app.redis, q, before_job=app.maybe_reload) for q in queues]
    # Outbox wake-ups once per process, not once per queue thread.
    workers[0].tick = lambda: flush_due(app.redis, app.config(), enqueue_flush=enqueue_flush)
    stopping = threading.Event()
    first_signal: list[float] = []

    def on_signal(signum: int, _frame: object) -> None:
        if first_signal and time.monotonic() - first_signal[0] < SIGNAL_ECHO:
            return  # the same stop request, delivered twice
        if stopping.is_set():  # a second signal: stop now; a job in hand is re-run elsewhere
            os._exit(128 + signum)
        first_signal.append(time.monotonic())
        stopping.set()
        for worker in workers:
            worker.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threads = [
        threading.Thread(
            target=w.work, kwargs={"logging_level": "WARNING"}, name=f"worker-{w.queue_names()[0]}"
        )
        for w in workers
    ]
    for thread in threads:
        thread.start()
    log.info(
        "worker %s started on %s, config %s", os.getpid(), ", ".join(queues), app.config().version
    )
    while any(t.is_alive() for t in threads):
        if not stopping.is_set():
            # Only this thread starts the scheduler: two scheduler threads in one process
            # would both move a due job to its queue, and it would run twice.
            scheduler.keep_running()
        for thread in threads:
            thread.join(timeout=1.0)  # a timed join lets the signal handler run
        if not stopping.is_set() and not all(t.is_alive() for t in threads):
            log.error("a worker thread stopped unexpectedly; stopping the process to be restarted")
            on_signal(signal.SIGTERM, None)
    scheduler.stop_thread()
