"""Decide which open story an item belongs to. No I/O here.

``best_match`` holds the decision every store shares (``MemoryStories`` for
``try``, ``explain`` and the benchmarks; ``worker.stories.store`` in Redis):
an item joins the most similar open story when

- the similarity (``features.similarity``) is at least ``THRESHOLD``, or it
  is at least ``WORDING_FLOOR`` and the two headlines are worded alike
  (``features.wording`` at least ``WORDING``),
- that similarity rests on at least ``features.MIN_SHARED`` shared distinctive
  terms (one rare word, a name or a number, with common words around it, is
  never enough: "GM recalls…" and "GM shares fall…" stay apart);
- it is compared with the story's first item and with the headlines of its
  first ``VARIANTS`` copies, so a story that has been told several ways
  recognises each of them (the best of these decides);
- the story has no item from the item's own feed yet: one outlet's two
  headlines are two stories (Feedly's rule too). This keeps an outlet's
  daily series ("… key events, day 1,455") and its follow-ups apart.

Ties go to the earlier story, then the smaller id, so every worker decides alike.
A story's id is the story key (``Item.story``, the canonical-link hash) of the
item that opened it, so ``group: similar`` and ``group: link`` give the same
id to a story's first item.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from worker.model import Item
from worker.stories.features import (
    Features,
    Similarity,
    features,
    idf_from,
    similarity,
    vocabulary,
    wording,
)

#: Least similarity at which an item joins a story (tuned for precision; README "Stories").
THRESHOLD = 0.5
#: Headlines worded at least this alike (rapidfuzz token-set ratio) join at ``WORDING_FLOOR``.
WORDING = 0.75
WORDING_FLOOR = 0.3
#: Most open stories an item is compared with: those sharing most of its rarest terms.
SHORTLIST = 10
#: Most stories read per probe term (the most recently opened).
PER_TERM = 20
#: Copies whose headline terms a story keeps, besides its first item's terms.
VARIANTS = 3
#: Most headline terms kept per variant.
VARIANT_TERMS = 12


def shortlist(postings: Iterable[Iterable[str]]) -> list[str]:
    """Return the stories found under most of an item's probe terms (at most ``SHORTLIST``)."""
    counts: dict[str, int] = {}
    for ids in postings:
        for s in ids:
            counts[s] = counts.get(s, 0) + 1
    return sorted(counts, key=lambda s: (-counts[s], s))[:SHORTLIST]


def link_key(item: Item) -> str:
    """Return the key an item's syndicated copies share (today's story key)."""
    return item.story or item.id


@dataclass
class OpenStory:
    """A story that still takes new copies: its opening item's terms and its outlets."""

    id: str
    opened: float
    features: Features
    title: str = ""
    feeds: set[str] = field(default_factory=set)
    variants: list[Features] = field(default_factory=list)

    def compare(self, feat: Features, title: str) -> Similarity:
        """Return the similarity of an item to this story: its best against any telling."""
        best = max(
            (similarity(feat, f) for f in (self.features, *self.variants)), key=lambda s: s.score
        )
        if WORDING_FLOOR <= best.score < THRESHOLD:
            alike = wording(title, self.title)
            if alike >= WORDING:
                return Similarity(alike, "wording", best.shared, best.grounded)
        return best

    def add_variant(self, feat: Features) -> Features | None:
        """Keep a copy's headline terms as a variant (while there is room); return them."""
        if len(self.variants) >= VARIANTS or not feat.title:
            return None
        top = sorted(feat.title, key=lambda h: (-feat.title[h], h))[:VARIANT_TERMS]
        variant = Features({h: feat.title[h] for h in top}, {h: feat.title[h] for h in top}, {})
        self.variants.append(variant)
        return variant


@dataclass(frozen=True)
class Assignment:
    """Where an item went: ``story``, whether it opened it, and why (for ``explain``)."""

    story: str
    opened: bool
    earlier: str = ""  # the first title of the story it joined (or, opening, of the nearest)
    similarity: Similarity | None = None
    shared_terms: tuple[str, ...] = ()
    key: str = ""  # the item's link key
    at: float = 0.0  # when the item was assigned
    opened_at: float = 0.0  # when its story opened


def nearest(feat: Features, item: Item, candidates: Iterable[OpenStory]) -> Assignment | None:
    """Return the most similar open story from another feed, joined or not (for ``explain``)."""
    scored = [(s.compare(feat, item.title), s) for s in candidates if item.feed not in s.feeds]
    if not scored:
        return None
    sim, story = max(scored, key=lambda p: (p[0].score, -p[1].opened))
    names = tuple(feat.names[h] for h in sim.shared if h in feat.names)
    return Assignment(story.id, False, story.title, sim, names, opened_at=story.opened)


def joins(sim: Similarity) -> bool:
    """Return whether a similarity (from ``OpenStory.compare``) is enough to join the story."""
    return sim.grounded and (sim.score >= THRESHOLD or sim.view == "wording")


def best_match(
    feat: Features, item: Item, candidates: Iterable[OpenStory]
) -> tuple[OpenStory, Similarity] | None:
    """Return the open story ``item`` (with terms ``feat``) joins, if any."""
    best: tuple[OpenStory, Similarity] | None = None
    for story in candidates:
        if item.feed in story.feeds:
            continue
        sim = story.compare(feat, item.title)
        if not joins(sim):
            continue
        if best is None or (-sim.score, story.opened, story.id) < (
            -best[1].score,
            best[0].opened,
            best[0].id,
        ):
            best = (story, sim)
    return best


class MemoryStories:
    """Stories in memory, for one run of ``try`` or ``explain`` and for benchmarks.

    Document frequencies are counted over the stories opened so far, as the
    Redis store counts them over recent stories.
    """

    def __init__(self, window: float = 48 * 3600) -> None:
        self.window = window
        self.stories: dict[str, OpenStory] = {}
        self.by_key: dict[str, str] = {}  # link key → story id
        self.postings: dict[int, list[str]] = {}
        self.df: dict[str, int] = {}
        self.docs = 0

    def learn(self, item: Item) -> None:
        """Count an item's terms in the document frequencies (once per story, not per copy)."""
        self.docs += 1
        for t in vocabulary(item):
            self.df[t] = self.df.get(t, 0) + 1

    def assign(self, item: Item, now: float) -> Assignment:
        """Put an item in a story (opening one if none fits) and say which."""
        key = link_key(item)
        known = self.by_key.get(key)
        if known is not None and now - self.stories[known].opened <= self.window:
            story = self.stories[known]
            story.feeds.add(item.feed)
            return Assignment(known, False, story.title, key=key, at=now, opened_at=story.opened)
        feat = features(item, idf_from(self.df, self.docs))
        ids = shortlist(
            [
                s
                for s in self.postings.get(h, [])[-PER_TERM:]
                if now - self.stories[s].opened <= self.window
            ]
            for h in feat.probe()
        )
        live = [self.stories[s] for s in ids]
        found = best_match(feat, item, live)
        if found is not None:
            story, sim = found
            story.feeds.add(item.feed)
            story.add_variant(feat)
            self.by_key[key] = story.id
            names = tuple(feat.names[h] for h in sim.shared if h in feat.names)
            return Assignment(
                story.id, False, story.title, sim, names, key=key, at=now, opened_at=story.opened
            )
        near = nearest(feat, item, live)
        self.learn(item)
        story = OpenStory(key, now, feat, item.title, {item.feed})
        self.stories[key] = story
        self.by_key[key] = key
        for h in feat.probe():
            self.postings.setdefault(h, []).append(key)
        if near is None:
            return Assignment(key, True, key=key, at=now, opened_at=now)
        # Opened: ``earlier``/``similarity`` name the nearest story it did not join.
        return replace(near, story=key, opened=True, key=key, at=now, opened_at=now)
