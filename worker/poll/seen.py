"""Per-feed seen-sets: which item ids a feed has shown, packed 12 bytes an entry.

Decision: one Redis *string* per feed holding fixed-size records (8-byte id,
4-byte big-endian last-seen time in whole seconds), not a sorted set. A
sorted set costs ~20 bytes an entry while Redis keeps it as a listpack, but
past ``zset-max-listpack-entries`` (128 by default, 512 in our embedded
Redis) it becomes a skiplist at ~100+ bytes an entry, and a busy feed keeps
hundreds of ids for ``SEEN_TTL``. A packed string costs 12 bytes an entry
plus one key whatever the server's settings (``bench/poll.py`` measures it).

The string is only read and written by the poller that holds the feed's
lease, so a read-modify-write is safe; ``WATCH`` still guards it, so a
poller whose lease ran out cannot undo another's write (it retries on the
fresh value instead). Entries expire ``SEEN_TTL`` after they were last in
the feed; the key itself expires too and is refreshed on every poll,
including 304s, so a feed that is quiet for weeks keeps its memory. At most
``MAX_ENTRIES`` entries are kept (the oldest go first).

Besides item ids, a feed's seen-set holds each item's *link id* (the id
the item would have without a GUID), so the poller can tell a feed whose
GUIDs churn from one that overflowed. ``prescanned`` derives both from the
cheap pre-scan: the same ids ``worker.poll.parse.prescan_item_ids`` returns.

A seen-set written by an older version as a sorted set under ``keys.seen``
is imported once and deleted.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

from worker.core import keys
from worker.poll.identity import item_id
from worker.poll.parse import _prescan  # the records behind prescan_item_ids: ids *and* links

__all__ = [
    "MAX_ENTRIES",
    "REFRESH_AFTER",
    "decode",
    "encode",
    "expire",
    "link_id",
    "load",
    "prescanned",
    "store",
]

RECORD = 12
MAX_ENTRIES = 50_000
#: An entry is rewritten only when its last-seen time is older than this, so a
#: poll that finds nothing new usually writes nothing.
REFRESH_AFTER = 86400


def link_id(feed_id: str, link: str) -> bytes | None:
    """Return the id an item would have if its feed had no GUIDs (None without a link)."""
    if not link.lower().startswith(("http://", "https://")):
        return None
    return bytes.fromhex(item_id(feed_id, None, link, "", ""))


def prescanned(feed_id: str, body: bytes) -> tuple[list[bytes], list[bytes | None]] | None:
    """Return the item ids ``parse_feed`` would give (deduplicated) and their link ids, or None."""
    records = _prescan(body)
    if not records:
        return None  # unsure, or no items: only the full parser may call that a feed
    pairs: dict[bytes, bytes | None] = {}
    for guid, link in records:
        pairs.setdefault(
            bytes.fromhex(item_id(feed_id, guid or None, link, "", "")), link_id(feed_id, link)
        )
    return list(pairs), list(pairs.values())


def decode(blob: bytes | None) -> dict[bytes, int]:
    """Return {8-byte id: last-seen second} from a packed seen-set."""
    if not blob:
        return {}
    view = memoryview(blob)
    return {
        bytes(view[i : i + 8]): int.from_bytes(view[i + 8 : i + RECORD], "big")
        for i in range(0, len(blob) - RECORD + 1, RECORD)
    }


def encode(entries: dict[bytes, int]) -> bytes:
    """Pack {8-byte id: last-seen second}; keep the newest ``MAX_ENTRIES``."""
    items = list(entries.items())
    if len(items) > MAX_ENTRIES:
        items = sorted(items, key=lambda kv: kv[1])[-MAX_ENTRIES:]
    return b"".join(k + v.to_bytes(4, "big") for k, v in items)


def _legacy(client: redis.Redis, feed_id: str) -> dict[bytes, int] | None:
    """Import a sorted-set seen-set written by an older version, if there is one."""
    old = keys.seen(feed_id)
    if client.type(old) != b"zset":
        return None
    entries = {
        bytes(m): int(s) for m, s in client.zrange(old, 0, -1, withscores=True) if len(m) == 8
    }
    client.set(keys.seen_packed(feed_id), encode(entries), ex=keys.SEEN_TTL)
    client.delete(old)
    return entries


def load(client: redis.Redis, feed_id: str) -> dict[bytes, int] | None:
    """Return a feed's seen entries, or None when it has no seen-set at all."""
    blob = client.get(keys.seen_packed(feed_id))
    if blob is None:
        return _legacy(client, feed_id)
    return decode(blob)


def needs_write(known: dict[bytes, int], ids: Iterable[bytes], now: float) -> bool:
    """Return whether storing ``ids`` would change more than their freshness by a little."""
    stale = int(now) - REFRESH_AFTER
    return any(known.get(i, -1) < stale for i in ids)


def store(client: redis.Redis, feed_id: str, ids: Iterable[bytes], now: float) -> int:
    """Mark ``ids`` seen at ``now``, drop expired entries; return the entries kept."""
    key = keys.seen_packed(feed_id)
    stamp, cutoff = int(now), int(now) - keys.SEEN_TTL
    ids = list(ids)
    for _ in range(5):
        with client.pipeline() as pipe:
            try:
                pipe.watch(key)
                entries = {k: v for k, v in decode(pipe.get(key)).items() if v >= cutoff}
                entries.update(dict.fromkeys(ids, stamp))
                pipe.multi()
                pipe.set(key, encode(entries), ex=keys.SEEN_TTL)
                pipe.execute()
                return min(len(entries), MAX_ENTRIES)
            except redis.WatchError:
                continue  # another poller wrote meanwhile: merge into its value
    raise redis.WatchError(f"seen-set of {feed_id} kept changing under us")


def expire(client: redis.Redis | redis.client.Pipeline, feed_id: str) -> None:
    """Keep a feed's seen-set alive although nothing was written (304, nothing new)."""
    client.expire(keys.seen_packed(feed_id), keys.SEEN_TTL)
