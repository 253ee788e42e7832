"""Which hosts' articles are not fetched now (``stats``), without loading the fetcher."""

from __future__ import annotations

import time
from typing import Any

import redis

from worker.core import keys


def backed_off_hosts(client: redis.Redis) -> list[dict[str, Any]]:
    """Return the hosts whose articles are not fetched now, with why and until when."""
    now = time.time()
    client.zremrangebyscore(keys.HOSTS_BACKED_OFF, "-inf", now)
    rows = []
    entries: list[tuple[bytes, float]] = client.zrange(
        keys.HOSTS_BACKED_OFF, 0, -1, withscores=True
    )
    for raw, until in entries:
        origin = raw.decode()
        reason = client.get(keys.host_backoff(origin))
        if reason is not None:
            rows.append(
                {"host": origin, "reason": reason.decode(errors="replace"), "until": float(until)}
            )
    return rows
