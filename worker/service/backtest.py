"""Run the watchlists of a config over the archive and compare with what was alerted.

``backtest`` answers the questions an ops engineer has before merging a rule
edit: what would it have sent last week, how much a day, and which alerts
would it stop sending. It reads the archive and the sent log
(``worker.core.archive``) page by page with ``XRANGE``: no lock, no write,
nothing sent, so it runs beside live pollers and workers and never changes
what they do.

The comparison is per (watchlist, rule, story):

- ``same``: the rule alerted on the story then and would now;
- ``new``: it would alert now and did not then (shadow rules' matches are
  ``new`` too: they never alerted);
- ``gone``: it alerted then and would not now; the line names the rule that
  fired then.

``new`` and ``same`` are reported per archived item (syndicated copies of one
story each get a line, with the same story); ``gone`` once per story, with
the item that was alerted. A story's id is the one recorded with its alert
when there was one, else the story the item was grouped into (recorded in Redis for
the stories window, ``worker.stories.store.recorded``), else
``worker.stories.storyid.story_id`` (its link): so a copy folded into an alerted
story counts as ``same``, not ``new``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from worker.config import Config
from worker.core.archive import Extent, extent, sent_since
from worker.model import Item
from worker.service.backtest_match import Hit, Selection, build_engine, matched
from worker.stories.store import recorded
from worker.stories.storyid import story_id

#: change values, in report order.
CHANGES = ("new", "gone", "same")

Key = tuple[str, str, str]  # watchlist, rule, story


@dataclass(frozen=True)
class Line:
    """One result: an item a rule would alert on now (new, same) or no longer (gone)."""

    watchlist: str
    rule: str
    change: str
    story: str
    item: Item

    def to_json(self) -> dict[str, Any]:
        """Return the stable ``--json`` form of this line."""
        published = self.item.published
        return {
            "watchlist": self.watchlist,
            "rule": self.rule,
            "change": self.change,
            "story": self.story,
            "item": {
                "id": self.item.id,
                "title": self.item.title,
                "link": self.item.link,
                "feed": self.item.feed,
                "published": None
                if published is None
                else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(published)),
            },
        }


@dataclass
class Window:
    """What the backtest covered: the asked period, the archive and the speed."""

    since: float
    start: float
    end: float
    archive: Extent
    items: int = 0
    seconds: float = 0.0
    rules: int = 0
    #: Called with the number of items of each page read (a progress bar).
    progress: Callable[[int], None] | None = None

    @property
    def covered_from(self) -> float | None:
        """Return how far back the archive goes when it does not cover the period, else None."""
        oldest = self.archive.oldest
        return oldest if oldest is not None and oldest > self.start + 60 else None


@dataclass
class Backtest:
    """One backtest of ``config`` over the archive of ``client``."""

    client: redis.Redis
    config: Config
    pick: Selection = field(default_factory=Selection)
    then: dict[Key, dict[str, Any]] = field(default_factory=dict)
    stories: dict[str, str] = field(default_factory=dict)  # item id → story alerted then

    def load_sent(self, start: float) -> None:
        """Read which (watchlist, rule, story) alerts went out since ``start``."""
        for entry in sent_since(self.client, start):
            for rule in entry["rules"]:
                if self.pick.wants(entry["watchlist"], rule):
                    self.then.setdefault((entry["watchlist"], rule, entry["story"]), entry)
            if entry["item"].get("id"):
                self.stories[entry["item"]["id"]] = entry["story"]

    def current(self, batches: Iterator[list[Hit]]) -> Iterator[Line]:
        """Yield a new or same line per (rule, item) the config matches now."""
        done: set[tuple[str, str, str]] = set()
        for hits in batches:
            grouped = recorded(self.client, [h.item for h in hits])
            for hit in hits:
                key = (hit.item.id, hit.watchlist, hit.rule)
                if key in done:  # archived twice (a feed primed again): once is enough
                    continue
                done.add(key)
                story = (
                    self.stories.get(hit.item.id) or grouped.get(hit.item.id) or story_id(hit.item)
                )
                change = "same" if (hit.watchlist, hit.rule, story) in self.then else "new"
                yield Line(hit.watchlist, hit.rule, change, story, hit.item)

    def gone(self, now: set[Key]) -> Iterator[Line]:
        """Yield a gone line per (watchlist, rule, story) alerted then and not matched now."""
        for key, entry in self.then.items():
            if key not in now:
                raw = entry["item"]
                item = Item(
                    id=raw.get("id") or "",
                    feed=raw.get("feed") or "",
                    title=raw.get("title") or "",
                    link=raw.get("link") or "",
                    published=raw.get("published"),
                    seen_at=entry["at"],
                )
                yield Line(key[0], key[1], "gone", key[2], item)


def run_backtest(
    client: redis.Redis,
    config: Config,
    since: float,
    pick: Selection | None = None,
    now: float | None = None,
) -> tuple[Window, Iterator[Line]]:
    """Start a backtest over the last ``since`` seconds; return its window and its lines.

    The lines are produced lazily (new and same in archive order, then gone);
    ``window.items`` and ``window.seconds`` are final once they are consumed.
    """
    now = time.time() if now is None else now
    pick = pick or Selection()
    bt = Backtest(client, config, pick)
    start = now - since
    window = Window(since, start, now, extent(client), rules=len(build_engine(config, pick)))
    bt.load_sent(start)

    def counted(n: int) -> None:
        window.items += n
        if window.progress is not None:
            window.progress(n)

    def lines() -> Iterator[Line]:
        began = time.perf_counter()
        batches = matched(client, config, pick, start, counted)
        found: set[Key] = set()
        for line in bt.current(batches):
            found.add((line.watchlist, line.rule, line.story))
            yield line
        window.seconds = time.perf_counter() - began
        yield from bt.gone(found)

    return window, lines()


def expected_items(window: Window) -> int:
    """Estimate how many archived items fall in the window (for a progress bar's total)."""
    a = window.archive
    if not a.items or a.oldest is None or a.newest is None:
        return 0
    if window.start <= a.oldest or a.newest <= a.oldest:
        return a.items
    return max(1, int(a.items * (a.newest - window.start) / (a.newest - a.oldest)))


def group(lines: Sequence[Line]) -> dict[tuple[str, str], list[Line]]:
    """Return the lines by (watchlist, rule), in watchlist then rule order."""
    out: dict[tuple[str, str], list[Line]] = {}
    for line in sorted(lines, key=lambda ln: (ln.watchlist, ln.rule)):
        out.setdefault((line.watchlist, line.rule), []).append(line)
    return out
