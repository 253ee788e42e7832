"""Open stories in Redis, shared by every worker: assign items to them exactly once.

``assign`` puts a batch of items in stories under one redis-py ``Lock``
(``keys.STORY_LOCK``), so two workers that see copies of one event at the
same moment cannot open two stories for it: the second one finds the first
one's story. Reading candidates, deciding (``grouping.best_match``) and
writing happen inside the lock; the lock is held for one batch, a few Redis
round trips.

Every assignment is recorded under the item's link key (``keys.story_of``)
for the window, so a re-run of a match job (a crash between grouping and
delivery) gets the same story, and a story id never changes: stories are
never merged or renamed, only closed when their window ends.

Memory is bounded: each story's keys expire with its window, at most
``keys.STORIES_MAX`` stories are open (the oldest close first), and document
frequencies (how many stories opened that day had a term) live in two daily
hashes of at most ``keys.STORY_DF_SLOTS`` slots.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import redis

from worker.core import keys
from worker.core.replies import text
from worker.model import Item
from worker.stories.features import (
    MAX_TERMS,
    Features,
    Idf,
    features,
    idf_from,
    term_hash,
    vocabulary,
)
from worker.stories.grouping import (
    PER_TERM,
    SHORTLIST,
    VARIANT_TERMS,
    VARIANTS,
    Assignment,
    OpenStory,
    best_match,
    link_key,
)

_HEAD = struct.Struct(">dHB")  # opened, length of "feed\0title", number of terms
#: Longest record: head, text, first item's terms and VARIANTS variants of VARIANT_TERMS.
_RECORD_MAX = _HEAD.size + 400 + 6 * MAX_TERMS + VARIANTS * (1 + 6 * VARIANT_TERMS)

# Lua keeps each step one command (redis-py spends ~25 µs a command packing and parsing).
# KEYS: story_of, record, STORIES_OPEN, postings…; ARGV: assignment, record, story,
# opened, cutoff (older postings are dropped), ttl.
_OPEN = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[6])
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[6])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3])
for i = 4, #KEYS do
  redis.call('ZADD', KEYS[i], ARGV[4], ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', ARGV[5])
  redis.call('EXPIRE', KEYS[i], ARGV[6])
end
"""
# KEYS: story_of, members, feeds, STORIES_OUTLETS, record; ARGV: assignment, member, feed,
# story, outlets, ttl, members max, feeds ttl, variant (may be empty), record max.
_JOIN = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[6])
if ARGV[9] ~= '' and redis.call('STRLEN', KEYS[5]) + #ARGV[9] <= tonumber(ARGV[10]) then
  redis.call('APPEND', KEYS[5], ARGV[9])
end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[7]) - 1)
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[8])
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[4])
"""
# KEYS: the postings of every probe term of a batch, item after item; ARGV: oldest
# opening time, most read per term, shortlist size, then each item's number of terms.
# Returns each item's shortlist, ordered as ``grouping.shortlist`` orders it.
_SHORTLIST = """
local out, k = {}, 1
for i = 4, #ARGV do
  local counts, ids = {}, {}
  for _ = 1, tonumber(ARGV[i]) do
    local found = redis.call('ZREVRANGEBYSCORE', KEYS[k], '+inf', ARGV[1],
                             'LIMIT', 0, tonumber(ARGV[2]))
    for _, s in ipairs(found) do
      if not counts[s] then counts[s] = 0; ids[#ids + 1] = s end
      counts[s] = counts[s] + 1
    end
    k = k + 1
  end
  table.sort(ids, function(a, b)
    if counts[a] ~= counts[b] then return counts[a] > counts[b] end
    return a < b
  end)
  local top = {}
  for j = 1, math.min(#ids, tonumber(ARGV[3])) do top[j] = ids[j] end
  out[#out + 1] = top
end
return out
"""
# KEYS: records…, then the feeds sets in the same order: each record and its feeds.
_LOAD = """
local n = #KEYS / 2
local out = {}
for i = 1, n do
  out[i] = {redis.call('GET', KEYS[i]) or false, redis.call('SMEMBERS', KEYS[n + i])}
end
return out
"""
# KEYS[1]: the day's term counts; ARGV: stories, ttl, then a term slot per story that had it.
_COUNT = """
for i = 3, #ARGV do redis.call('HINCRBY', KEYS[1], ARGV[i], 1) end
redis.call('HINCRBY', KEYS[1], 'n', tonumber(ARGV[1]))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
"""


def _slot(term: str) -> int:
    return term_hash(term) % keys.STORY_DF_SLOTS


class _Batch:
    """One batch's assignment, inside the lock."""

    def __init__(self, client: redis.Redis, window: float, now: float) -> None:
        self.client, self.window, self.now = client, window, now
        self.local: dict[str, OpenStory] = {}  # stories read or opened by this batch
        self.opened: dict[int, list[str]] = {}  # term → stories opened by this batch
        self.by_key: dict[str, Assignment] = {}  # link key → assignment in this batch

    def idf_for(self, items: Sequence[Item]) -> Idf:
        day = int(self.now // 86400)
        vocab = sorted(set().union(*(vocabulary(i) for i in items)))
        slots = ["n", *(str(_slot(t)) for t in vocab)]
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.story_df(day), slots)
            pipe.hmget(keys.story_df(day - 1), slots)
            today, yesterday = pipe.execute()
        counts = [int(a or 0) + int(b or 0) for a, b in zip(today, yesterday, strict=True)]
        df = dict(zip(vocab, counts[1:], strict=True))
        return idf_from(df, counts[0])

    def candidates(self, probes: list[list[int]]) -> list[list[OpenStory]]:
        terms = [keys.story_postings(h) for hs in probes for h in hs]
        args = [self.now - self.window, PER_TERM, SHORTLIST, *(len(hs) for hs in probes)]
        found = self.client.eval(_SHORTLIST, len(terms), *terms, *args)
        ids_per_item = [[text(s) for s in ids] for ids in found]
        self.load({s for ids in ids_per_item for s in ids} - set(self.local))
        return [[self.local[s] for s in ids if s in self.local] for ids in ids_per_item]

    def load(self, ids: Iterable[str]) -> None:
        ids = sorted(ids)
        if not ids:
            return
        args = [keys.story_record(s) for s in ids] + [keys.story_feeds(s) for s in ids]
        for s, (record, feeds) in zip(ids, self.client.eval(_LOAD, len(args), *args), strict=True):
            if not record:
                continue  # closed
            story = unpack_record(s, record)
            if self.now - story.opened <= self.window:
                story.feeds |= {text(f) for f in feeds}
                self.local[s] = story

    def write(self, pipe: Any, item: Item, a: Assignment, variant_terms: Features | None) -> None:
        """Queue the writes that record an assignment (run in the caller's MULTI)."""
        ttl = int(self.window) + 60
        story = self.local[a.story]
        of = (keys.story_of(link_key(item)), f"{a.story} {story.opened!r} {self.now!r}")
        if a.opened:
            postings = [keys.story_postings(h) for h in story.features.probe()]
            pipe.eval(
                _OPEN, 3 + len(postings), of[0], keys.story_record(a.story), keys.STORIES_OPEN,
                *postings, of[1], pack_record(story, item.feed), a.story, repr(story.opened),
                repr(self.now - self.window), ttl,
            )  # fmt: skip
            return
        # A copy: recorded on the story (the opener is in the story's record).
        member = {"feed": item.feed, "title": item.title[:80], "link": item.link, "at": self.now}
        variant = b""
        if variant_terms is not None:
            variant = bytes([len(variant_terms.full)]) + variant_terms.pack()
        pipe.eval(
            _JOIN, 5, of[0], keys.story_members(a.story), keys.story_feeds(a.story),
            keys.STORIES_OUTLETS, keys.story_record(a.story), of[1], json.dumps(member), item.feed,
            a.story, len(story.feeds), ttl, keys.STORY_MEMBERS_MAX,
            max(ttl, keys.STORY_FEEDS_TTL), variant, _RECORD_MAX,
        )  # fmt: skip


def pack_record(story: OpenStory, feed: str) -> bytes:
    """Return a story's record: opening time, first feed and title (≤ 80 chars), terms.

    Variants (a count byte and terms each) are appended as copies join.
    """
    head = f"{feed}\0{story.title[:80]}".encode()
    return (
        _HEAD.pack(story.opened, len(head), len(story.features.full)) + head + story.features.pack()
    )


def unpack_record(story: str, record: bytes) -> OpenStory:
    """Return the open story a record describes (its feeds: the first one only)."""
    opened, length, n = _HEAD.unpack_from(record)
    at = _HEAD.size + length
    feed, _, title = record[_HEAD.size : at].decode(errors="replace").partition("\0")
    out = OpenStory(story, opened, Features.unpack(record[at : at + 6 * n]), title, {feed})
    at += 6 * n
    while at < len(record):
        m = record[at]
        out.variants.append(Features.unpack(record[at + 1 : at + 1 + 6 * m]))
        at += 1 + 6 * m
    return out


def _count_terms(pipe: Any, items: Sequence[Item], now: float) -> None:
    slots: list[int] = []
    for item in items:
        terms = vocabulary(item)
        slots += sorted({_slot(t) for t in terms})
    if items:
        day = keys.story_df(int(now // 86400))
        pipe.eval(_COUNT, 1, day, len(items), keys.STORY_DF_TTL, *slots)


def _close_oldest(pipe: Any, client: redis.Redis, window: float, now: float, adding: int) -> None:
    """Forget stories past the window, and the oldest past the cap (``adding`` are opening now)."""
    closed = client.zrangebyscore(keys.STORIES_OPEN, "-inf", now - window)
    if closed:
        pipe.zrem(keys.STORIES_OPEN, *closed)
        pipe.zrem(keys.STORIES_OUTLETS, *closed)
    over = client.zcard(keys.STORIES_OPEN) - len(closed) + adding - keys.STORIES_MAX
    if over > 0:
        for s in client.zrange(keys.STORIES_OPEN, 0, over - 1):
            pipe.delete(keys.story_record(text(s)))
            pipe.zrem(keys.STORIES_OPEN, s)
            pipe.zrem(keys.STORIES_OUTLETS, s)


def recorded(client: redis.Redis, items: Sequence[Item]) -> dict[str, str]:
    """Return the story each item was grouped into while its record lasts, by item id (read-only)."""
    raw = client.mget([keys.story_of(link_key(i)) for i in items]) if items else []
    return {i.id: text(v).split(" ")[0] for i, v in zip(items, raw, strict=True) if v is not None}


def _known(
    client: redis.Redis, items: Sequence[Item], window: float, now: float
) -> dict[str, Assignment]:
    raw = client.mget([keys.story_of(link_key(i)) for i in items])
    out: dict[str, Assignment] = {}
    for item, value in zip(items, raw, strict=True):
        if value is None:
            continue
        story, opened, at = text(value).split(" ")
        if now - float(opened) <= window:
            out[item.id] = Assignment(story, False, at=float(at), opened_at=float(opened))
    return out


def assign(
    client: redis.Redis, items: Sequence[Item], window: float, now: float | None = None
) -> dict[str, Assignment]:
    """Put each item in an open story (opening one when none fits); return each one's, by item id.

    Safe to call again for the same items: they get the assignments they got before.
    """
    now = time.time() if now is None else now
    lock = client.lock(
        keys.STORY_LOCK, timeout=keys.STORY_LOCK_TTL, blocking_timeout=keys.STORY_LOCK_WAIT
    )
    with lock:
        out = _known(client, items, window, now)
        fresh = [i for i in items if i.id not in out]
        if not fresh:
            return out
        batch = _Batch(client, window, now)
        idf = batch.idf_for(fresh)
        feats = [features(i, idf) for i in fresh]
        cands = batch.candidates([f.probe() for f in feats])
        with client.pipeline() as pipe:
            for item, feat, found in zip(fresh, feats, cands, strict=True):
                a, variant = _decide(batch, item, feat, found)
                out[item.id] = a
                batch.write(pipe, item, a, variant)
            # A burst of copies must not make the story's own words look common.
            _count_terms(pipe, [i for i in fresh if out[i.id].opened], now)
            _close_oldest(pipe, client, window, now, sum(out[i.id].opened for i in fresh))
            pipe.execute()
    return out


def _decide(
    batch: _Batch, item: Item, feat: Features, found: list[OpenStory]
) -> tuple[Assignment, Features | None]:
    """Return where an item goes, and the variant of its story it adds (if any)."""
    key = link_key(item)
    same_link = batch.by_key.get(key)
    if same_link is not None:  # a copy under the same link earlier in this batch
        batch.local[same_link.story].feeds.add(item.feed)
        return replace(same_link, opened=False, similarity=None, shared_terms=()), None
    variant = None
    fresh = {s for h in feat.probe() for s in batch.opened.get(h, ())}
    match = best_match(feat, item, [*found, *(batch.local[s] for s in sorted(fresh))])
    if match is not None:
        story, sim = match
        story.feeds.add(item.feed)
        variant = story.add_variant(feat)
        names = tuple(feat.names[h] for h in sim.shared if h in feat.names)
        a = Assignment(
            story.id, False, story.title, sim, names, key=key, at=batch.now, opened_at=story.opened
        )
    else:
        batch.local[key] = OpenStory(key, batch.now, feat, item.title, {item.feed})
        for h in feat.probe():
            batch.opened.setdefault(h, []).append(key)
        a = Assignment(key, True, key=key, at=batch.now, opened_at=batch.now)
    batch.by_key[key] = a
    return a, variant


def top_stories(client: redis.Redis, since: float, limit: int = 10) -> list[dict[str, Any]]:
    """Return the open stories opened since ``since`` carried by the most feeds, most first."""
    ranked = [text(s) for s in client.zrevrange(keys.STORIES_OUTLETS, 0, 4 * limit - 1)]
    if not ranked:
        return []
    with client.pipeline(transaction=False) as pipe:
        for s in ranked:
            pipe.get(keys.story_record(s))
            pipe.smembers(keys.story_feeds(s))
        raw = pipe.execute()
    rows = []
    for i, s in enumerate(ranked):
        record, feeds = raw[2 * i], raw[2 * i + 1]
        if record is not None:
            story = unpack_record(s, record)
            story.feeds |= {text(f) for f in feeds}
            rows.append(story)
    rows = sorted((r for r in rows if r.opened >= since), key=lambda r: (-len(r.feeds), -r.opened))
    return [
        {"story": r.id, "title": r.title, "opened": r.opened, "outlets": sorted(r.feeds)}
        for r in rows[:limit]
    ]
