"""How long to wait before trying a delivery again: the one place that reads retry intervals."""

from __future__ import annotations

import os

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
