"""The one lock: redis-py's ``Lock``, taken once without waiting, released only by its holder.

Every "only one process does this" in newsalert (a poller's feed lease, the article
fetch marker, an outbox flush) goes through ``hold``. redis-py's ``Lock`` stores a random
token with ``SET NX PX`` and releases with a compare-and-delete Lua script, so a holder
that overran its time can never delete a lock that another process has taken since.

A holder that dies keeps the lock until ``ttl`` passes and nobody releases it early: that
is what makes a lease safe across a crash (the feed is not fetched twice in one interval)
and what bounds the wait for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis
from redis.exceptions import LockError

__all__ = ["hold"]


@contextlib.contextmanager
def hold(client: redis.Redis, name: str, ttl: float) -> Iterator[bool]:
    """Try once to take lock ``name`` for at most ``ttl`` seconds; yield whether it is ours.

    On leaving, the lock is released if it is still ours; if it expired and another
    process holds it now, it is left alone.
    """
    lock = client.lock(name, timeout=ttl, blocking=False, thread_local=False)
    if not lock.acquire():
        yield False
        return
    try:
        yield True
    finally:
        with contextlib.suppress(LockError):  # expired, perhaps taken by someone else: theirs
            lock.release()
