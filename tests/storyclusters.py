"""Real multi-outlet story clusters from Google News feeds, streamed through the Redis grouping.

A Google News item's ``<description>`` lists several outlets' headlines for one
story (``<li><a>headline</a> <font>outlet</font></li>``): each item is one
labelled cluster, and different items are different stories (several about one
broad topic: hard negatives). The texts stay in ``../shared``; nothing is copied.

``stream`` turns each headline into an ``Item`` (its outlet as feed, a URL of
its own: no two copies share a link, as on real data) and sends them, with the
other corpus feeds' items as background traffic, through
``worker.stories.store.assign``, as the match job does for a watchlist that
matches everything. Used by ``bench/stories_real.py`` and ``tests/test_stories_real.py``.
"""

from __future__ import annotations

import html
import random
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

from worker.core import keys
from worker.errors import FeedError
from worker.model import Item
from worker.poll.parse import parse_feed
from worker.stories.store import assign

#: The corpus files whose items carry clusters (the rest is background).
CLUSTER_FILES = ("googlenews__top-stories-us-2022-07.xml", "googlenews__fr-be-une.xml")
_LI = re.compile(r"<li><a [^>]*>(.*?)</a>.*?<font[^>]*>(.*?)</font>", re.S)


@dataclass(frozen=True)
class Copy:
    """One outlet's headline of a labelled story."""

    story: str
    outlet: str
    title: str
    start: float  # the story's publication time (its Google News item)


def clusters(path: Path) -> list[list[Copy]]:
    """Return the labelled clusters of one Google News feed (items with at least 2 headlines)."""
    out = []
    for n, node in enumerate(ET.parse(path).getroot().iter("item")):
        desc = node.findtext("description") or ""
        start = parsedate_to_datetime(node.findtext("pubDate") or "").timestamp()
        rows = [
            Copy(f"{path.stem}#{n}", html.unescape(o).strip(), html.unescape(t).strip(), start)
            for t, o in _LI.findall(desc)
        ]
        if len(rows) >= 2:
            out.append(rows)
    return out


def background(feeds: Path) -> list[Item]:
    """Return the items of every other corpus feed (real headlines and leads of unrelated news)."""
    items: list[Item] = []
    for p in sorted(feeds.glob("*")):
        if p.suffix not in (".xml", ".json") or p.name in CLUSTER_FILES:
            continue
        try:
            items += parse_feed(p.read_bytes(), feed_id=p.stem).items
        except FeedError:
            continue  # the corpus keeps a few broken feeds on purpose
    return [i for i in items if i.title]


@dataclass
class Outcome:
    """What a watchlist matching everything sends for the labelled stories."""

    stories: int
    copies: int
    messages: Counter[str]  # label → stories its copies opened (messages sent)
    wrong: int  # copies folded into another label's story, or background into a label's
    swallowed_background: int
    merges: list[tuple[str, str]]  # the wrong merges: (item's title, its story's first title)

    def report(self, sizes: dict[str, int]) -> dict[str, float]:
        multi = [s for s, n in sizes.items() if n >= 4]
        never = sum(self.messages[s] == 0 for s in sizes)
        return {
            "messages_per_story": round(sum(self.messages[s] for s in sizes) / len(sizes), 2),
            "messages_per_story_4plus": round(
                sum(self.messages[s] for s in multi) / max(1, len(multi)), 2
            ),
            "max_messages": max(self.messages[s] for s in sizes),
            "never_alerted_pct": round(100 * never / len(sizes), 1),
            "wrong_merges": self.wrong,
        }


def arrivals(groups: list[list[Copy]], extra: list[Item], seed: int) -> list[tuple[float, Item]]:
    """Return every headline as an item with its arrival time, interleaved as outlets publish.

    Each story's copies arrive after its start, spread over hours (exponential
    delays, mean 90 minutes); background items are spread over the same span.
    """
    rng = random.Random(seed)
    out: list[tuple[float, Item]] = []
    for rows in groups:
        for k, c in enumerate(rows):
            at = c.start + (0.0 if k == 0 else rng.expovariate(1 / 5400))
            slug = f"{c.story}-{k}".replace("#", "-")
            it = Item(
                id=slug,
                feed=c.outlet,
                title=c.title,
                link=f"https://{slug}.example.org/",
                story=slug,
            )
            out.append((at, it))
    lo = min(a for a, _ in out)
    hi = max(a for a, _ in out)
    out += [(rng.uniform(lo - 3600, hi), i) for i in extra]
    out.sort(key=lambda p: (p[0], p[1].id))
    return out


def stream(client, groups: list[list[Copy]], extra: list[Item], seed: int = 1) -> Outcome:
    """Assign every headline in arrival order (batches of one 5-minute slot); score the result."""
    client.flushdb()
    label = {f"{c.story}-{k}".replace("#", "-"): c.story for g in groups for k, c in enumerate(g)}
    owner: dict[str, str] = {}  # story id → label of the item that opened it ("" background)
    messages: Counter[str] = Counter()
    wrong = swallowed = 0
    merges: list[tuple[str, str]] = []
    batch: list[Item] = []
    slot = None
    timeline = arrivals(groups, extra, seed)

    def flush(now: float) -> None:
        nonlocal wrong, swallowed
        out = assign(client, batch, keys.STORY_WINDOW, now)
        for it in batch:
            a, mine = out[it.id], label.get(it.id, "")
            if a.opened:
                owner[a.story] = mine
                messages[mine] += 1
            elif owner[a.story] != mine:
                merges.append((it.title, a.earlier))
                wrong += bool(mine)
                swallowed += not mine
        batch.clear()

    for at, it in timeline:
        if slot is not None and (at // 300 != slot or len(batch) >= 100):
            flush(slot * 300 + 299)
        slot = at // 300
        batch.append(it)
    flush((slot or 0) * 300 + 299)
    return Outcome(len(groups), len(label), messages, wrong + swallowed, swallowed, merges)
