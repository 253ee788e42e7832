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
import time
from collections.abc import Iterable, Sequence
from typing import Any

import redis

from worker import keys
from worker.model import Item
from worker.stories.features import (
    LEAD_WORDS,
    Features,
    features,
    idf_from,
    lead_of,
    term_hash,
    terms_of,
)
from worker.stories.grouping import Assignment, OpenStory, best_match, link_key

#: Most candidate stories read per probe term (the most recently opened).
CANDIDATES_PER_TERM = 20


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _slot(term: str) -> int:
    return term_hash(term) % keys.STORY_DF_SLOTS


class _Batch:
    """One batch's assignment, inside the lock."""

    def __init__(self, client: redis.Redis, window: float, now: float) -> None:
        self.client, self.window, self.now = client, window, now
        self.local: dict[str, OpenStory] = {}  # stories read or opened by this batch

    def idf_for(self, items: Sequence[Item]) -> Any:
        day = int(self.now // 86400)
        vocab = sorted(
            {t for i in items for t in (*terms_of(i.title), *terms_of(lead_of(i), LEAD_WORDS))}
        )
        slots = ["n", *(str(_slot(t)) for t in vocab)]
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.story_df(day), slots)
            pipe.hmget(keys.story_df(day - 1), slots)
            today, yesterday = pipe.execute()
        counts = [int(a or 0) + int(b or 0) for a, b in zip(today, yesterday, strict=True)]
        df = dict(zip(vocab, counts[1:], strict=True))
        return idf_from(df, counts[0])

    def candidates(self, probes: list[list[int]]) -> list[list[OpenStory]]:
        with self.client.pipeline(transaction=False) as pipe:
            for terms in probes:
                for h in terms:
                    pipe.zrevrangebyscore(
                        keys.story_postings(h),
                        "+inf",
                        self.now - self.window,
                        start=0,
                        num=CANDIDATES_PER_TERM,
                    )
            found = iter(pipe.execute())
        ids_per_item = [sorted({_text(s) for _ in terms for s in next(found)}) for terms in probes]
        self.load({s for ids in ids_per_item for s in ids} - set(self.local))
        return [[self.local[s] for s in ids if s in self.local] for ids in ids_per_item]

    def load(self, ids: Iterable[str]) -> None:
        ids = sorted(ids)
        if not ids:
            return
        with self.client.pipeline(transaction=False) as pipe:
            for s in ids:
                pipe.hmget(keys.story_record(s), ["f", "o", "t"])
                pipe.smembers(keys.story_feeds(s))
            raw = pipe.execute()
        for i, s in enumerate(ids):
            (packed, opened, title), feeds = raw[2 * i], raw[2 * i + 1]
            if packed is None or self.now - float(opened) > self.window:
                continue  # closed
            self.local[s] = OpenStory(
                s,
                float(opened),
                Features.unpack(packed),
                _text(title or b""),
                {_text(f) for f in feeds},
            )

    def write(self, pipe: Any, item: Item, a: Assignment, feat: Features | None) -> None:
        """Queue the writes that record an assignment (run in the caller's MULTI)."""
        ttl = int(self.window) + 60
        key = link_key(item)
        story = self.local[a.story]
        pipe.set(keys.story_of(key), f"{a.story} {story.opened!r} {self.now!r}", ex=ttl)
        if a.opened and feat is not None:
            pipe.hset(
                keys.story_record(a.story),
                mapping={"f": feat.pack(), "o": repr(story.opened), "t": item.title[:120]},
            )
            pipe.expire(keys.story_record(a.story), ttl)
            for h in feat.probe():
                pipe.zadd(keys.story_postings(h), {a.story: story.opened})
                pipe.zremrangebyscore(keys.story_postings(h), "-inf", self.now - self.window)
                pipe.expire(keys.story_postings(h), ttl)
            pipe.zadd(keys.STORIES_OPEN, {a.story: story.opened})
        member = {"feed": item.feed, "title": item.title[:120], "link": item.link, "at": self.now}
        pipe.rpush(keys.story_members(a.story), json.dumps(member))
        pipe.ltrim(keys.story_members(a.story), 0, keys.STORY_MEMBERS_MAX - 1)
        pipe.expire(keys.story_members(a.story), ttl)
        pipe.sadd(keys.story_feeds(a.story), item.feed)
        pipe.expire(keys.story_feeds(a.story), max(ttl, keys.STORY_FEEDS_TTL))
        pipe.zadd(keys.STORIES_OUTLETS, {a.story: len(story.feeds)})


def _count_terms(pipe: Any, items: Sequence[Item], now: float) -> None:
    key = keys.story_df(int(now // 86400))
    for item in items:
        for t in set(terms_of(item.title)) | set(terms_of(lead_of(item), LEAD_WORDS)):
            pipe.hincrby(key, str(_slot(t)), 1)
        pipe.hincrby(key, "n", 1)
    pipe.expire(key, 2 * 86400 + 3600)


def _close_oldest(pipe: Any, client: redis.Redis, window: float, now: float, adding: int) -> None:
    """Forget stories past the window, and the oldest past the cap (``adding`` are opening now)."""
    closed = client.zrangebyscore(keys.STORIES_OPEN, "-inf", now - window)
    if closed:
        pipe.zrem(keys.STORIES_OPEN, *closed)
        pipe.zrem(keys.STORIES_OUTLETS, *closed)
    over = client.zcard(keys.STORIES_OPEN) - len(closed) + adding - keys.STORIES_MAX
    if over > 0:
        for s in client.zrange(keys.STORIES_OPEN, 0, over - 1):
            pipe.delete(keys.story_record(_text(s)))
            pipe.zrem(keys.STORIES_OPEN, s)
            pipe.zrem(keys.STORIES_OUTLETS, s)


def _known(
    client: redis.Redis, items: Sequence[Item], window: float, now: float
) -> dict[str, Assignment]:
    raw = client.mget([keys.story_of(link_key(i)) for i in items])
    out: dict[str, Assignment] = {}
    for item, value in zip(items, raw, strict=True):
        if value is None:
            continue
        story, opened, at = _text(value).split(" ")
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
    lock = client.lock(keys.STORY_LOCK, timeout=keys.STORY_LOCK_TTL, blocking_timeout=60)
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
                a = _decide(batch, item, feat, found, out)
                out[item.id] = a
                batch.write(pipe, item, a, feat if a.opened else None)
            # A burst of copies must not make the story's own words look common.
            _count_terms(pipe, [i for i in fresh if out[i.id].opened], now)
            _close_oldest(pipe, client, window, now, sum(out[i.id].opened for i in fresh))
            pipe.execute()
    return out


def _decide(
    batch: _Batch, item: Item, feat: Features, found: list[OpenStory], done: dict[str, Assignment]
) -> Assignment:
    key = link_key(item)
    same_link = next((a for a in done.values() if a.key == key), None)
    if same_link is not None:  # a copy under the same link earlier in this batch
        batch.local[same_link.story].feeds.add(item.feed)
        return Assignment(
            same_link.story, False, key=key, at=batch.now, opened_at=same_link.opened_at
        )
    opened_here = [s for s in batch.local.values() if s.opened == batch.now and s not in found]
    match = best_match(feat, item.feed, [*found, *opened_here])
    if match is not None:
        story, sim = match
        story.feeds.add(item.feed)
        names = tuple(feat.names[h] for h in sim.shared if h in feat.names)
        return Assignment(
            story.id, False, story.title, sim, names, key=key, at=batch.now, opened_at=story.opened
        )
    batch.local[key] = OpenStory(key, batch.now, feat, item.title, {item.feed})
    return Assignment(key, True, key=key, at=batch.now, opened_at=batch.now)


def top_stories(client: redis.Redis, since: float, limit: int = 10) -> list[dict[str, Any]]:
    """Return the open stories opened since ``since`` carried by the most feeds, most first."""
    ranked = client.zrevrange(keys.STORIES_OUTLETS, 0, 4 * limit - 1)
    if not ranked:
        return []
    with client.pipeline(transaction=False) as pipe:
        for s in ranked:
            pipe.hmget(keys.story_record(_text(s)), ["o", "t"])
            pipe.smembers(keys.story_feeds(_text(s)))
        raw = pipe.execute()
    rows: list[tuple[float, str, str, list[str]]] = []
    for i, s in enumerate(ranked):
        (opened, title), feeds = raw[2 * i], raw[2 * i + 1]
        if opened is not None and float(opened) >= since:
            rows.append((float(opened), _text(s), _text(title or b""), sorted(map(_text, feeds))))
    rows.sort(key=lambda r: (-len(r[3]), -r[0]))
    return [
        {"story": story, "title": title, "opened": opened, "outlets": outlets}
        for opened, story, title, outlets in rows[:limit]
    ]
