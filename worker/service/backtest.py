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
when there was one, else ``worker.stories.storyid.story_id``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import redis

from worker.config import Config
from worker.core.archive import Extent, extent, scan, sent_since
from worker.errors import NewsAlertError
from worker.model import Highlight, Item
from worker.rules import Engine
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
    highlights: tuple[Highlight, ...] = ()

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
class Selection:
    """The watchlists and rules a backtest looks at (``--watchlist``, ``--rule``)."""

    watchlist: str | None = None
    rule: str | None = None

    def wants(self, watchlist: str, rule: str) -> bool:
        return (self.watchlist in (None, watchlist)) and (self.rule in (None, rule))


@dataclass
class Backtest:
    """One backtest of ``config`` over the archive of ``client``."""

    client: redis.Redis
    config: Config
    pick: Selection = field(default_factory=Selection)
    then: dict[Key, dict[str, Any]] = field(default_factory=dict)
    stories: dict[str, str] = field(default_factory=dict)  # item id → story alerted then

    def engine(self) -> Engine:
        """Return an engine for the selected rules of the config; raise for an unknown pick."""
        specs = [r for r in self.config.rule_specs() if self.pick.wants(r.watchlist, r.id)]
        if self.pick.watchlist and self.config.watchlist(self.pick.watchlist) is None:
            raise NewsAlertError(f"unknown watchlist {self.pick.watchlist!r} in this config")
        if self.pick.rule and not specs:
            raise NewsAlertError(f"no rule {self.pick.rule!r} in the selected watchlists")
        return Engine(specs)

    def load_sent(self, start: float) -> None:
        """Read which (watchlist, rule, story) alerts went out since ``start``."""
        for entry in sent_since(self.client, start):
            for rule in entry["rules"]:
                if self.pick.wants(entry["watchlist"], rule):
                    self.then.setdefault((entry["watchlist"], rule, entry["story"]), entry)
            if entry["item"].get("id"):
                self.stories[entry["item"]["id"]] = entry["story"]

    def current(self, pages: Iterator[list[Item]], engine: Engine) -> Iterator[Line]:
        """Yield a new or same line per (rule, item) the config matches now."""
        scopes: dict[str, list[str]] = {}
        done: set[str] = set()
        for page in pages:
            for item in page:
                if item.id in done:  # archived twice (a feed primed again): count it once
                    continue
                done.add(item.id)
                if item.feed not in scopes:
                    scopes[item.feed] = self.config.watchlists_for(item.feed)
                story = self.stories.get(item.id) or story_id(item)
                for m in engine.match(item.texts(), scopes[item.feed], highlights=False):
                    change = "same" if (m.watchlist, m.rule, story) in self.then else "new"
                    yield Line(m.watchlist, m.rule, change, story, item)

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
    Lines carry no highlights (they cost a quarter of the time): ``highlighted``
    adds them to the few a report shows.
    """
    now = time.time() if now is None else now
    bt = Backtest(client, config, pick or Selection())
    engine = bt.engine()
    start = now - since
    window = Window(since, start, now, extent(client), rules=len(engine))
    bt.load_sent(start)

    def lines() -> Iterator[Line]:
        began = time.perf_counter()
        matched: set[Key] = set()
        for line in bt.current(_counted(scan(client, start), window), engine):
            matched.add((line.watchlist, line.rule, line.story))
            yield line
        window.seconds = time.perf_counter() - began
        yield from bt.gone(matched)

    return window, lines()


def _counted(pages: Iterator[list[Item]], window: Window) -> Iterator[list[Item]]:
    for page in pages:
        window.items += len(page)
        if window.progress is not None:
            window.progress(len(page))
        yield page


def highlighted(config: Config, line: Line) -> Line:
    """Return ``line`` with the highlights of its rule on its item (none for a gone line)."""
    if line.change == "gone":
        return line
    specs = [r for r in config.rule_specs() if (r.watchlist, r.id) == (line.watchlist, line.rule)]
    found = Engine(specs).match(line.item.texts())
    return replace(line, highlights=found[0].highlights) if found else line


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
