"""The archive: accepted items and the alerts that went out, kept for ``newsalert backtest``.

Layout (``worker.keys``):

- ``ARCHIVE`` is a Redis stream, so it is ordered by the time the poller
  accepted each item (the entry id is the server's millisecond clock) and the
  oldest entries are always at its head. One entry per item, one field ``d``:
  the item's matchable text (title, summary, content, article text when it was
  fetched, link, feed, published and story) as a JSON array, zlib-compressed.
- ``ARCHIVE_BYTES`` counts the compressed bytes held (plus ``ENTRY_OVERHEAD``
  per entry for the stream's own bookkeeping). One Lua step appends a batch,
  drops entries older than ``archive`` and then, while the total is above
  ``archive_max``, the oldest entries; so the bound holds across any number of
  pollers, and the step rides in the poller's existing pipeline (one command a
  batch, no extra round trip).
- ``SENT_LOG`` is a stream of the alerts that went out (one entry per
  destination), trimmed to the same age on each write.

Readers (``scan``) page through the streams with ``XRANGE``: no lock, no
write, so a backtest runs beside live pollers and workers.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from worker.core import keys
from worker.core.replies import text
from worker.model import Item, alert_rules

log = logging.getLogger("newsalert.archive")

#: Item fields in record order (a JSON array: compact before and after compression).
FIELDS = ("id", "feed", "title", "link", "summary", "content", "article", "published", "story")
#: Bytes counted per entry beyond its record: the stream entry id, flags and lengths.
ENTRY_OVERHEAD = 16
#: zlib level: 1 makes records ~4 % larger than 6 at about half the poller's CPU (bench/backtest.py).
LEVEL = 1
#: Most entries one write may drop (the rest go with the next write), so the step stays short.
DROP_MAX = 1024
#: Entries read per XRANGE page.
PAGE = 500

# KEYS: stream, byte count. ARGV: oldest ms to keep, byte cap, idle TTL, overhead, now ms,
# records… Entry ids are the writer's clock (never behind the newest entry, so ids grow
# across pollers), the clock that also decides what is too old.
# Returns {dropped for age, dropped for the cap, ms of the oldest entry kept (0: none)}.
_ADD = """
local total = tonumber(redis.call('GET', KEYS[2]) or '0')
if redis.call('EXISTS', KEYS[1]) == 0 then total = 0 end
local over, ms, seq = tonumber(ARGV[4]), tonumber(ARGV[5]), 0
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last > 0 then
  local lms, lseq = string.match(last[1][1], '^(%d+)-(%d+)$')
  if tonumber(lms) >= ms then ms, seq = tonumber(lms), tonumber(lseq) + 1 end
end
for i = 6, #ARGV do
  redis.call('XADD', KEYS[1], string.format('%d-%d', ms, seq), 'd', ARGV[i])
  seq = seq + 1
  total = total + #ARGV[i] + over
end
local min_ms, cap = tonumber(ARGV[1]), tonumber(ARGV[2])
local aged, capped, oldest, budget = 0, 0, 0, DROP_MAX
while budget > 0 and oldest == 0 do
  local page = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 16)
  if #page == 0 then break end
  for _, e in ipairs(page) do
    local ms = tonumber(string.match(e[1], '^(%d+)'))
    if ms < min_ms then aged = aged + 1
    elseif total > cap then capped = capped + 1
    else oldest = ms break end
    total = total - #e[2][2] - over
    redis.call('XDEL', KEYS[1], e[1])
    budget = budget - 1
    if budget == 0 then break end
  end
end
if total < 0 then total = 0 end
redis.call('SET', KEYS[2], total, 'EX', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {aged, capped, oldest}
""".replace("DROP_MAX", str(DROP_MAX))


def pack(item: Item) -> bytes:
    """Return the compressed record of an item's matchable text."""
    row = [getattr(item, name) for name in FIELDS]
    encoded = json.dumps(row, ensure_ascii=False, separators=(",", ":"))
    return zlib.compress(encoded.encode("utf-8", "surrogatepass"), LEVEL)


def unpack(blob: bytes, seen_at: float | None = None) -> Item:
    """Return the item a record holds (``seen_at``: when it was archived)."""
    row = json.loads(zlib.decompress(blob))
    return Item.from_dict({**dict(zip(FIELDS, row, strict=False)), "seen_at": seen_at})


def entry_time(entry_id: bytes | str) -> float:
    """Return the time (seconds) a stream entry was added, from its id."""
    return int(text(entry_id).split("-", 1)[0]) / 1000.0


class Archive:
    """Writes accepted items to the archive for one poller (``archive: 0`` turns it off)."""

    def __init__(self, client: redis.Redis, keep: float, cap: int) -> None:
        self.keep, self.cap = keep, cap
        self._add = client.register_script(_ADD)
        self._warned = False

    @property
    def on(self) -> bool:
        return self.keep > 0

    def write(self, pipe: Any, items: Sequence[Item], now: float | None = None) -> bool:
        """Queue the step that archives ``items`` on ``pipe``; return whether one was queued.

        When it returns True, the pipeline's result for that step goes to ``written``.
        """
        if not self.on or not items:
            return False
        now = time.time() if now is None else now
        min_ms = int((now - self.keep) * 1000)
        ttl = int(self.keep) + keys.ARCHIVE_IDLE_TTL
        args = [min_ms, self.cap, ttl, ENTRY_OVERHEAD, int(now * 1000), *(pack(i) for i in items)]
        self._add(keys=[keys.ARCHIVE, keys.ARCHIVE_BYTES], args=args, client=pipe)
        return True

    def written(self, result: Sequence[int]) -> None:
        """Take the result of a ``write`` step: say once when the cap starts dropping items."""
        capped, oldest = int(result[1]), int(result[2])
        if capped and not self._warned:
            self._warned = True
            since = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(oldest / 1000))
            log.warning(
                "archive is full (archive_max %.0f MiB): dropping the oldest items first; "
                "it now goes back to %s, not the configured %s",
                self.cap / 1024**2,
                since if oldest else "now",
                _span(self.keep),
            )


def _span(seconds: float) -> str:
    return f"{seconds / 86400:g}d" if seconds >= 86400 else f"{seconds / 3600:g}h"


@dataclass(frozen=True)
class Extent:
    """How much the archive holds: entries, compressed bytes, oldest and newest time."""

    items: int
    bytes: int
    oldest: float | None
    newest: float | None


def extent(client: redis.Redis) -> Extent:
    """Return what the archive holds now."""
    with client.pipeline(transaction=False) as pipe:
        pipe.xlen(keys.ARCHIVE)
        pipe.get(keys.ARCHIVE_BYTES)
        pipe.xrange(keys.ARCHIVE, count=1)
        pipe.xrevrange(keys.ARCHIVE, count=1)
        n, size, first, last = pipe.execute()
    return Extent(
        items=int(n),
        bytes=int(size or 0),
        oldest=entry_time(first[0][0]) if first else None,
        newest=entry_time(last[0][0]) if last else None,
    )


def scan(
    client: redis.Redis, since: float, until: float | None = None, page: int = PAGE
) -> Iterator[list[Item]]:
    """Yield the items archived from ``since`` to before ``until`` (epoch seconds; None: now),
    oldest first, a page at a time."""
    start = str(int(since * 1000))
    end = "+" if until is None else str(int(until * 1000) - 1)  # an id's ms; every sequence
    while True:
        entries = client.xrange(keys.ARCHIVE, min=start, max=end, count=page)
        if not entries:
            return
        yield [unpack(fields[b"d"], entry_time(eid)) for eid, fields in entries]
        if len(entries) < page:
            return
        start = "(" + entries[-1][0].decode()


# -- alerts that went out ------------------------------------------------------


def record_sent(pipe: Any, payloads: Sequence[dict[str, Any]], keep: float, now: float) -> None:
    """Queue on ``pipe`` one sent-log entry per delivered payload (``keep`` 0: none)."""
    if keep <= 0:
        return
    min_id = str(int((now - keep) * 1000))
    for p in payloads:
        alert = p.get("alert") or {}
        item = alert.get("item") or {}
        entry = {
            "watchlist": alert.get("watchlist", ""),
            "rules": list(alert_rules(alert)),
            "story": p.get("story") or item.get("story") or item.get("id", ""),
            "destination": p.get("destination", ""),
            "item": {k: item.get(k) for k in ("id", "title", "link", "feed", "published")},
        }
        pipe.xadd(keys.SENT_LOG, {"j": json.dumps(entry, ensure_ascii=False)}, minid=min_id)
    pipe.expire(keys.SENT_LOG, int(keep) + keys.ARCHIVE_IDLE_TTL)


def sent_since(client: redis.Redis, since: float, page: int = PAGE) -> Iterator[dict[str, Any]]:
    """Yield the sent-log entries since ``since``, oldest first, each with its ``at`` time."""
    start = str(int(since * 1000))
    while True:
        entries = client.xrange(keys.SENT_LOG, min=start, count=page)
        for eid, fields in entries:
            yield {**json.loads(fields[b"j"]), "at": entry_time(eid)}
        if len(entries) < page:
            return
        start = "(" + entries[-1][0].decode()
