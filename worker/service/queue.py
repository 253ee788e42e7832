"""The RQ queues, workers and scheduler (``worker.core.store`` owns the Redis connection).

The only module that imports ``rq``. Jobs carry JSON-able arguments and
queues and workers share one serializer (JSON), so a job never depends on
pickled Python objects.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from rq import Queue, Retry, SimpleWorker
from rq.exceptions import StopRequested
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job, JobStatus
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty

from worker.core import keys
from worker.core.metrics import heartbeat
from worker.core.retry import MATCH_RETRY_INTERVALS, delivery_retry_intervals
from worker.errors import NewsAlertError
from worker.service.timers import Timers

log = logging.getLogger("newsalert.queue")

#: Seconds an idle worker takes to notice a stop request.
STOP_LATENCY = 2


def _retry(intervals: Sequence[int]) -> Retry | None:
    """Return RQ's retry policy for ``intervals`` (None: no retries)."""
    return Retry(max=len(intervals), interval=list(intervals)) if intervals else None


class _IntermediateQueue(IntermediateQueue):
    """RQ's intermediate list, with the time a job may be stuck there made ours."""

    stuck_after = Timers.stuck_after

    def should_be_cleaned_up(self, job_id: str) -> bool:
        first_seen = self.get_first_seen(job_id)
        return first_seen is not None and (
            datetime.now(UTC) - first_seen > timedelta(seconds=self.stuck_after)
        )


class _Queue(Queue):
    stuck_after = Timers.stuck_after

    @property
    def intermediate_queue(self) -> IntermediateQueue:
        found = _IntermediateQueue(self.key, connection=self.connection)
        found.stuck_after = self.stuck_after
        return found


def queue(client: redis.Redis, name: str, timers: Timers | None = None) -> Queue:
    q = _Queue(name, connection=client, serializer=JSONSerializer)
    if timers is not None:
        q.stuck_after = timers.stuck_after
    return q


def enqueue_match(client: redis.Redis, item_ids: Sequence[str], version: str) -> None:
    """Queue one match job for a batch of stored items."""
    queue(client, keys.MATCH_QUEUE).enqueue(
        "worker.service.jobs.match_batch",
        list(item_ids),
        version,
        retry=_retry(MATCH_RETRY_INTERVALS),
        result_ttl=0,
        failure_ttl=7 * 86400,
        job_timeout=Timers.from_env().job_timeout,
        description=f"match {len(item_ids)} items",
    )


def enqueue_delivery(
    client: redis.Redis, delivery: str, payload: dict[str, Any], *, pipeline: Any = None
) -> bool:
    """Queue the delivery job ``delivery`` unless one with that id is already pending.

    The id is deterministic, so a story matched twice maps to one job; the
    ledger in ``worker.deliver.send`` still guards against a job that runs twice.
    """
    job_id = f"deliver-{delivery}"
    try:
        status = Job.fetch(job_id, connection=client, serializer=JSONSerializer).get_status()
    except Exception:  # rq raises NoSuchJobError, or fails on an expired hash
        status = None
    if status in (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED):
        return False
    queue(client, keys.DELIVER_QUEUE).enqueue(
        "worker.service.jobs.deliver",
        payload,
        job_id=job_id,
        retry=_retry(delivery_retry_intervals()),
        result_ttl=3600,
        failure_ttl=7 * 86400,
        job_timeout=Timers.from_env().job_timeout,
        description=f"deliver to {payload.get('destination')}",
        pipeline=pipeline,
    )
    return True


def recheck_delivery(
    client: redis.Redis, delivery: str, payload: dict[str, Any], after: float
) -> None:
    """Run the delivery again ``after`` seconds from now, under a job id of its own.

    For a delivery whose claim is held by a worker that may have died: when the
    claim has expired the re-run sends it, and when the holder did send it the
    re-run finds it sent and does nothing.
    """
    queue(client, keys.DELIVER_QUEUE).enqueue_in(
        timedelta(seconds=max(1.0, after)),
        "worker.service.jobs.deliver",
        payload,
        job_id=f"deliver-{delivery}-recheck-{int(time.time())}",
        result_ttl=3600,
        failure_ttl=7 * 86400,
        job_timeout=Timers.from_env().job_timeout,
        retry=_retry(delivery_retry_intervals()),
        description=f"recheck delivery to {payload.get('destination')}",
    )


def enqueue_flush(client: redis.Redis, destination: str, delay: float = 0.0) -> None:
    """Queue a flush of a destination's outbox to run in ``delay`` seconds (RQ's scheduler)."""
    q = queue(client, keys.DELIVER_QUEUE)
    options: dict[str, Any] = {
        "result_ttl": 0,
        "failure_ttl": 86400,
        "job_timeout": Timers.from_env().job_timeout,
        "description": f"flush {destination}",
    }
    if delay <= 0:
        q.enqueue("worker.service.jobs.flush", destination, **options)
    else:
        # RQ keeps scheduled times in whole seconds, truncated: round up so the job never runs early.
        at = datetime.fromtimestamp(math.ceil(time.time() + delay), UTC)
        q.enqueue_at(at, "worker.service.jobs.flush", destination, **options)


def retries_left() -> int:
    """Return how many retries the running job has left (0 when none or not in a job)."""
    from rq import get_current_job

    job = get_current_job()
    return int(job.retries_left or 0) if job is not None else 0


class ThreadScheduler(RQScheduler):
    """RQ's scheduler (retries, ``enqueue_at``) as a thread of a worker process.

    RQ forks it as a process of its own, a copy of the worker (~60 MB RSS);
    a thread that wakes once a second to move due jobs onto their queues
    costs nothing. The process's main thread handles signals.
    """

    def start(self) -> Any:
        self._status = self.Status.STARTED
        thread = threading.Thread(target=self.work, name="rq-scheduler", daemon=True)
        self._process = thread  # type: ignore[assignment]  # RQ asks it only is_alive()
        thread.start()
        return thread

    def _install_signal_handlers(self) -> None:
        pass

    def keep_running(self) -> None:
        """Start (or restart after a Redis outage) unless another process holds the lock.

        Call it from one thread only: two scheduler threads of one process hold the
        same lock, and both would move a due job to its queue.
        """
        if self._process is None or not self._process.is_alive():
            with contextlib.suppress(redis.RedisError):  # Redis away: the next call tries again
                self.acquire_locks(auto_start=True)

    def stop_thread(self) -> None:
        self.request_stop(signal.SIGTERM, None)
        if self._process is not None:
            self._process.join(timeout=5)

    #: Set by ``make_scheduler``.
    lock_ttl = Timers.scheduler_lock

    def acquire_locks(self, auto_start: bool = False) -> Any:
        found = super().acquire_locks(auto_start)
        self._expire_locks()
        return found

    def heartbeat(self) -> None:
        super().heartbeat()
        self._expire_locks()

    def _expire_locks(self) -> None:
        if self.lock_ttl < self.interval + 60:  # RQ sets interval + 60 on every refresh
            for name in self._acquired_locks:
                self.connection.expire(self.get_locking_key(name), self.lock_ttl)


class NewsWorker(SimpleWorker):
    """An in-process RQ worker for one queue, run in a thread of ``work_forever``.

    One queue per worker, because only then does RQ move a job with LMOVE into
    an intermediate list until it is marked started: with two queues it pops
    with BLPOP, and a worker killed between the pop and the start left that
    job in no list, never to run (the fault suite caught it). RQ re-queues a
    job left in the intermediate list about a minute later. The process runs
    one thread per queue, so one process still serves both queues.
    """

    #: Job time limits by a timer thread: signals reach only the main thread.
    death_penalty_class = TimerDeathPenalty
    before_job: Callable[[], object] | None = None

    def _install_signal_handlers(self) -> None:
        pass  # the process's main thread handles SIGTERM and calls ``stop``

    def request_stop(self, signum: Any = None, frame: Any = None) -> None:
        self.stop()  # RQ's own would install signal handlers, which a thread cannot

    def stop(self) -> None:
        """Stop at the top of the work loop: after the job in hand, or within
        ``STOP_LATENCY`` when idle (never between taking a job and starting it)."""
        self._stop_requested = True
        self._shutdown_requested_date = datetime.now(UTC)
        with contextlib.suppress(redis.RedisError):  # only a note in RQ's worker record
            self.set_shutdown_requested_date()

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        if timeout is None:  # burst: one non-blocking look
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        # RQ's own loop waits for a job until one comes; wait in slices so that an idle
        # worker sees a stop request within STOP_LATENCY seconds.
        while not self._stop_requested:
            found = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time=STOP_LATENCY)
            if found is not None:
                return found
        raise StopRequested

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> Any:
        result = super().heartbeat(timeout, pipeline)
        heartbeat(self.connection, "worker", self.name)
        return result

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        # Our own errors (a send that failed, to be retried) were logged by the job as one
        # line with the reason; RQ would log them again at ERROR with a traceback.
        if not isinstance(exc_info[1], NewsAlertError):
            super().handle_exception(job, *exc_info)

    #: Set by ``make_worker``.
    timers = Timers()

    def get_heartbeat_ttl(self, job: Job, working_time: float | None = None) -> int:
        # RQ adds a fixed 60 s; ours keeps a killed worker's job stuck for under a minute.
        return self.timers.heartbeat_ttl

    def execute_job(self, job: Job, queue: Queue) -> Any:
        if self.before_job is not None:
            self.before_job()
        return super().execute_job(job, queue)

    #: Runs with RQ's maintenance (every ``maintenance_interval`` s, idle or not):
    #: the worker's clock for outbox wake-ups too far ahead for an RQ job.
    tick: Callable[[], object] | None = None

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()
        if self.tick is not None:
            try:
                self.tick()
            except Exception:  # a failed tick must not stop the worker; the next one retries
                log.exception("periodic maintenance failed")


def make_worker(
    client: redis.Redis,
    queue_name: str,
    name: str | None = None,
    before_job: Callable[[], object] | None = None,
) -> NewsWorker:
    """Return an in-process RQ worker for one queue (see ``NewsWorker`` for why one).

    SimpleWorker, not the forking Worker: the compiled rule engine is kept in
    memory between jobs (a fork would recompile it per job), and it runs
    about 2× the jobs/s (ARCHITECTURE.md "Dependencies"). Short ``Timers`` let another
    worker notice a killed one's abandoned job within about a minute.
    """
    timers = Timers.from_env()
    worker = NewsWorker(
        [queue(client, queue_name, timers)],
        connection=client,
        name=name,
        serializer=JSONSerializer,
        worker_ttl=30,
        maintenance_interval=timers.maintenance,
        job_monitoring_interval=10,
    )
    worker.before_job = before_job
    worker.timers = timers
    return worker


def make_scheduler(client: redis.Redis, queues: Sequence[str]) -> ThreadScheduler:
    """Return the scheduler for ``queues`` (started by ``keep_running``)."""
    scheduler = ThreadScheduler(
        [queue(client, q) for q in queues],
        connection=client,
        logging_level="WARNING",
        serializer=JSONSerializer,
    )
    scheduler.lock_ttl = Timers.from_env().scheduler_lock
    return scheduler


def depths(client: redis.Redis) -> dict[str, dict[str, int]]:
    """Return, per queue, how many jobs are queued, running, waiting to retry and failed."""
    out = {}
    for name in keys.QUEUES:
        q = queue(client, name)
        out[name] = {
            "queued": q.count,
            "running": q.started_job_registry.count,
            "retrying": q.scheduled_job_registry.count,
            "failed": q.failed_job_registry.count,
        }
    return out


def pending(client: redis.Redis) -> int:
    """Return how many jobs are queued, running or scheduled for retry."""
    return sum(d["queued"] + d["running"] + d["retrying"] for d in depths(client).values())
