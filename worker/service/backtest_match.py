"""The matching pass of a backtest: archived items in, hits out, in one process or several.

An archive of ``PARALLEL_MIN`` items or more is cut into time slices that a
pool of spawned processes (``worker.core.pools``, one per core) matches, each
with its own Redis connection and its own copy of the config's rules (loaded
from the same directory, and checked to be the same version); the slices come
back in order. Smaller archives are matched in this process, where starting
the pool would cost more than it saves.

Hits carry no highlights (a quarter of the matching time), and the item
without its long text (summary, content, article) unless it is one of the
first ``EXAMPLES_PER_RULE`` hits of its rule in its slice: a report shows a
few examples per rule, highlighted then (``highlighted``), and a rule that
matches everything must not hold the archive in memory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

import redis

from worker.config import Config, load_config
from worker.core import keys
from worker.core.archive import entry_time, scan
from worker.core.pools import IdlePool
from worker.core.store import connect
from worker.errors import NewsAlertError
from worker.model import Highlight, Item
from worker.rules import Engine

#: Archives this big (in items) are matched by a pool of processes.
PARALLEL_MIN = 20_000
#: Slices per worker process: enough for an even share and a moving progress bar.
SLICES_PER_WORKER = 8
#: Hits per rule (per slice) that keep their full text, for examples.
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


@dataclass(frozen=True)
class Slice:
    """One process's share of a parallel backtest (everything it needs pickles)."""

    url: str
    root: str
    version: str
    pick: Selection
    since: float
    until: float | None


#: In a pool process: the connection and matcher of the backtest it works for.
_WORKER: dict[tuple[str, str, Selection], tuple[redis.Redis, Matcher]] = {}


def match_slice(task: Slice) -> tuple[int, list[Hit]]:
    """Match one time slice of the archive (in a pool process); return (items read, hits)."""
    key = (task.url, task.version, task.pick)
    if key not in _WORKER:
        config = load_config(task.root)
        if config.version != task.version:
            raise NewsAlertError(f"{task.root} changed during the backtest; run it again")
        _WORKER.clear()
        _WORKER[key] = (connect(task.url), Matcher(config, build_engine(config, task.pick)))
    client, matcher = _WORKER[key]
    count, hits = 0, []
    for page in scan(client, task.since, task.until):
        count += len(page)
        hits += matcher.page(page)
    return count, hits


def slices(task: Slice, oldest: float, newest: float, n: int) -> list[Slice]:
    """Cut ``task``'s period (``since`` to now) into ``n`` slices of equal time."""
    start = max(task.since, oldest)
    step = max((newest - start) / n, 0.001)
    starts = [task.since, *(start + i * step for i in range(1, n))]
    ends: list[float | None] = [*starts[1:], None]
    return [replace(task, since=a, until=b) for a, b in zip(starts, ends, strict=True)]


def matched(
    client: redis.Redis,
    config: Config,
    pick: Selection,
    period: tuple[float, float],
    expected: int,
    url: str | None,
    counted: Callable[[int], None],
) -> Iterator[list[Hit]]:
    """Yield the hits of the archive in ``period`` (since, now), in archive order, in batches.

    ``counted`` is told how many items each batch read. ``url`` (the Redis URL)
    allows a pool of processes when the archive holds ``expected`` ≥ ``PARALLEL_MIN``
    items and this machine has more than one core.
    """
    since, now = period
    workers = os.cpu_count() or 1
    if url and expected >= PARALLEL_MIN and workers > 1 and config.root:
        task = Slice(url, config.root, config.version, pick, since, None)
        first = client.xrange(keys.ARCHIVE, min=str(int(since * 1000)), count=1)
        oldest = entry_time(first[0][0]) if first else since
        with IdlePool(workers) as pool:
            parts = slices(task, oldest, now, workers * SLICES_PER_WORKER)
            for count, hits in pool.imap(match_slice, parts):
                counted(count)
                yield hits
        return
    matcher = Matcher(config, build_engine(config, pick))
    for page in scan(client, since):
        counted(len(page))
        yield matcher.page(page)
