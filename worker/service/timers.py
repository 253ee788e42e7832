"""RQ's clocks: how soon a killed worker's job, or a job stuck half-taken, runs again.

Production's values are the defaults. ``NEWSALERT_RQ_TIMERS`` overrides any of
them, e.g. ``job_timeout=5,maintenance=1,stuck_after=3,scheduler_lock=3``: the
short fault tests do, so that they need not wait real minutes, while their
``slow`` versions keep production's. ``worker.service.queue`` applies them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from worker.errors import NewsAlertError

__all__ = ["Timers"]


@dataclass(frozen=True)
class Timers:
    """RQ's clocks, in whole seconds (see the module docstring)."""

    #: Every job's time limit. SimpleWorker sends no heartbeat while a job runs, so a
    #: job counts as abandoned (its worker killed) ``heartbeat_ttl`` after it started.
    job_timeout: int = 30
    #: Seconds between RQ's maintenance passes, which re-run abandoned and stuck jobs.
    maintenance: int = 15
    #: Seconds a job may sit in a queue's intermediate list (taken, never started)
    #: before a maintenance pass re-queues it (RQ's own: one minute).
    stuck_after: int = 60
    #: Seconds a killed process's scheduler lock keeps every other scheduler (so every
    #: retry and delayed flush) waiting (RQ's own: its 1 s interval + 60).
    scheduler_lock: int = 61

    @property
    def heartbeat_ttl(self) -> int:
        """Seconds after its start that a running job counts as abandoned."""
        return self.job_timeout + 10

    @classmethod
    def from_env(cls) -> Timers:
        """Return the defaults with ``NEWSALERT_RQ_TIMERS`` applied."""
        return cls.parse(os.environ.get("NEWSALERT_RQ_TIMERS", ""))

    @classmethod
    def parse(cls, raw: str) -> Timers:
        """Return the defaults with ``name=seconds,…`` from ``raw`` applied."""
        known = {f.name for f in fields(cls)}
        values: dict[str, int] = {}
        for part in filter(None, (p.strip() for p in raw.split(","))):
            name, _, value = part.partition("=")
            if name.strip() not in known or not value.strip().isdigit() or int(value) < 1:
                raise NewsAlertError(
                    f"NEWSALERT_RQ_TIMERS: bad {part!r}; use e.g. job_timeout=5,maintenance=1"
                    f" (known: {', '.join(sorted(known))}; whole seconds, at least 1)"
                )
            values[name.strip()] = int(value)
        return cls(**values)
