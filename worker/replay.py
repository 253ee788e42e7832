"""Re-send dead letters (``newsalert replay``).

Each dead letter is queued again under its original delivery id, so the
exactly-once ledger still holds: one that was in fact sent before it was
dead-lettered is not sent twice.
"""

from __future__ import annotations

import json
import time

from worker import keys
from worker.app import App
from worker.queue import enqueue_delivery


def replay_dead_letters(app: App, destination: str | None = None, since: float | None = None) -> int:
    """Queue matching dead letters for delivery again and remove them from the list; return how many."""
    client = app.redis
    cutoff = time.time() - since if since else None
    count = 0
    for raw in client.lrange(keys.DEAD_LETTERS, 0, -1):
        letter = json.loads(raw)
        if destination and letter.get("destination") != destination:
            continue
        if cutoff and float(letter.get("failed_at", 0)) < cutoff:
            continue
        payload = {k: letter[k] for k in ("delivery", "destination", "alert")}
        enqueue_delivery(client, payload["delivery"], payload)
        client.lrem(keys.DEAD_LETTERS, 1, raw)
        count += 1
    return count
