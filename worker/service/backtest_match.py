"""The matching pass of a backtest: archived items in, hits out.

One process: a pool of processes (time slices of the archive, each process
with its own copy of the rules) measured slower on a busy two-core machine
(1,326 against 1,986 items/s, ``bench/backtest.py``), because the hits must
travel back to be compared and printed.

Hits carry no highlights (a quarter of the matching time), and the item
without its long text (summary, content, article) unless it is one of the
first ``EXAMPLES_PER_RULE`` hits of its rule: a report shows a
few examples per rule, highlighted then (``highlighted``), and a rule that
matches everything must not hold the archive in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

import redis

from worker.config import Config
from worker.core.archive import scan
from worker.errors import NewsAlertError
from worker.model import Highlight, Item
from worker.rules import Engine

#: Hits per rule that keep their item's full text, for examples.
EXAMPLES_PER_RULE = 6


@dataclass(frozen=True)
class Selection:
    """The watchlists and rules a backtest looks at (``--watchlist``, ``--rule``)."""

    watchlist: str | None = None
    rule: str | None = None

    def wants(self, watchlist: str, rule: str) -> bool:
        return (self.watchlist in (None, watchlist)) and (self.rule in (None, rule))


def build_engine(config: Config, pick: Selection) -> Engine:
    """Return an engine for the selected rules of ``config``; raise for an unknown pick."""
    specs = [r for r in config.rule_specs() if pick.wants(r.watchlist, r.id)]
    if pick.watchlist and config.watchlist(pick.watchlist) is None:
        raise NewsAlertError(f"unknown watchlist {pick.watchlist!r} in this config")
    if pick.rule and not specs:
        raise NewsAlertError(f"no rule {pick.rule!r} in the selected watchlists")
    return Engine(specs)


@dataclass(frozen=True)
class Hit:
    """A rule of a watchlist that matches an archived item now."""

    watchlist: str
    rule: str
    item: Item


def highlighted(config: Config, watchlist: str, rule: str, item: Item) -> tuple[Highlight, ...]:
    """Return the highlights of one rule on one item (none when its text was not kept)."""
    specs = [r for r in config.rule_specs() if (r.watchlist, r.id) == (watchlist, rule)]
    found = Engine(specs).match(item.texts()) if specs else []
    return found[0].highlights if found else ()


class Matcher:
    """Matches pages of archived items against one config's selected rules."""

    def __init__(self, config: Config, engine: Engine) -> None:
        self.config, self.engine = config, engine
        self.everything = frozenset(w.id for w in config.watchlists)
        self.scopes: dict[str, frozenset[str] | None] = {}
        self.examples: dict[tuple[str, str], int] = {}

    def scope(self, feed: str) -> frozenset[str] | None:
        """Return the watchlists covering ``feed`` (None: all of them, nothing to filter)."""
        if feed not in self.scopes:
            scope = frozenset(self.config.watchlists_for(feed))
            self.scopes[feed] = None if scope == self.everything else scope
        return self.scopes[feed]

    def page(self, items: Iterable[Item]) -> list[Hit]:
        """Return the hits of a page of items."""
        hits: list[Hit] = []
        for item in items:
            scope = self.scope(item.feed)
            found = self.engine.match(item.texts(), scope, highlights=False)
            if not found:
                continue
            rules = [(m.watchlist, m.rule) for m in found]
            if any(self.examples.get(k, 0) < EXAMPLES_PER_RULE for k in rules):
                for k in rules:
                    self.examples[k] = self.examples.get(k, 0) + 1
            else:
                item = replace(item, summary="", content="", article="")
            hits += [Hit(m.watchlist, m.rule, item) for m in found]
        return hits


def matched(
    client: redis.Redis,
    config: Config,
    pick: Selection,
    since: float,
    counted: Callable[[int], None],
) -> Iterator[list[Hit]]:
    """Yield the hits of the archive since ``since``, in archive order, a page at a time.

    ``counted`` is told how many items each page held.
    """
    matcher = Matcher(config, build_engine(config, pick))
    for page in scan(client, since):
        counted(len(page))
        yield matcher.page(page)
