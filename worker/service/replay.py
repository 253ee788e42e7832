"""Re-send dead letters (``newsalert replay``).

Each dead letter is queued again under its original delivery id, so the
exactly-once ledger still holds: one that was in fact sent before it was
dead-lettered (or is replayed twice) is not sent twice. Replaying also lifts
the destination's failure back-off: whoever replays believes it works again.
"""

from __future__ import annotations

import json
import time

from worker.core import keys
from worker.core.logs import progress
from worker.model import Delivery
from worker.service.app import App
from worker.service.queue import enqueue_delivery


def replay_dead_letters(
    app: App, destination: str | None = None, since: float | None = None
) -> int:
    """Queue matching dead letters for delivery again and remove them from the list; return how many."""
    client = app.redis
    cutoff = time.time() - since if since else None
    count = 0
    for raw in progress(client.lrange(keys.DEAD_LETTERS, 0, -1), "replaying"):
        letter = json.loads(raw)
        if destination and letter.get("destination") != destination:
            continue
        if cutoff and float(letter.get("failed_at", 0)) < cutoff:
            continue
        # LREM first: of two replays racing over one letter, only one queues it.
        if not client.lrem(keys.DEAD_LETTERS, 1, raw):
            continue
        job = Delivery.from_dict(letter)  # without the letter's reason and failed_at
        client.hdel(keys.destination_health(job.destination), "retry_at")
        enqueue_delivery(client, job.id, job.to_dict())
        count += 1
    return count
