"""Read a destination's health for ``stats`` without loading apprise (``send`` writes it)."""

from __future__ import annotations

from typing import Any

import redis

from worker.core import keys
from worker.core.replies import text

#: Consecutive failures after which a destination is reported as failing.
FAILING_AFTER = 3


def health(client: redis.Redis, name: str) -> dict[str, Any]:
    """Return a destination's health figures for ``stats``."""
    raw = {text(k): text(v) for k, v in client.hgetall(keys.destination_health(name)).items()}
    failures = int(raw.get("failures", 0))
    return {
        "consecutive_failures": failures,
        "failing": failures >= FAILING_AFTER,
        "last_error": raw.get("last_error"),
        "last_ok": float(raw["last_ok"]) if "last_ok" in raw else None,
        "waiting": client.zcard(keys.outbox(name)),
    }
