"""How long to wait before trying again: the one backoff formula and the one place that reads
retry intervals."""

from __future__ import annotations

import math
import os
import random

#: Delivery retry delays in seconds: about 20 minutes of trying before a dead letter.
#: ``NEWSALERT_RETRY_INTERVALS=0,0,0`` overrides them (tests, or ops who want less patience).
DELIVERY_RETRY_INTERVALS = (5, 15, 60, 180, 600, 600)
MATCH_RETRY_INTERVALS = (5, 30, 120)


def delivery_retry_intervals() -> tuple[int, ...]:
    """Return the delivery retry delays: ``NEWSALERT_RETRY_INTERVALS`` if set, else the default."""
    raw = os.environ.get("NEWSALERT_RETRY_INTERVALS")
    if raw is None:
        return DELIVERY_RETRY_INTERVALS
    return tuple(int(float(x)) for x in raw.split(",") if x.strip())


def backoff(base: float, failures: int, cap: float, jitter: float = 0.0) -> float:
    """Return the wait after ``failures`` failures in a row: ``base`` doubled each time, never over ``cap``.

    The first failure waits ``base``. ``jitter`` spreads the wait by that share either
    way (0.1: ±10%) so clients that failed together do not retry together. The cap
    applies after the jitter: once the doubling is past it, the wait is exactly ``cap``.
    """
    doublings = min(max(failures - 1, 0), 62)  # 2**62 · base is past any cap; no float overflow
    wait = math.ldexp(base, doublings)  # base · 2**doublings
    if jitter:
        wait *= random.uniform(1 - jitter, 1 + jitter)
    return min(wait, cap)
