"""Stories within one ``try`` or ``explain`` run: in memory, no Redis.

The run's matching items are grouped as a worker would group them, feed after
feed and, within a feed, oldest first (by publication time), with document
frequencies counted over the stories of the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from worker.config import Config, StorySettings
from worker.model import Item, Match
from worker.stories import grouping_window, story_id
from worker.stories.grouping import THRESHOLD, WORDING, Assignment, MemoryStories


class RunStories:
    """The stories of one dry run; ``story`` answers "the story of this item for a watchlist"."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.memory = MemoryStories(grouping_window(w.stories for w in config.watchlists))
        self.assigned: dict[str, Assignment] = {}
        self.hits: dict[str, list[tuple[Item, Match]]] = {}  # story → hits, for text output

    def add(self, items: Iterable[Item]) -> None:
        """Assign items (those not assigned yet), oldest first."""
        fresh = [i for i in dict.fromkeys(items) if i.id not in self.assigned]
        for item in sorted(fresh, key=lambda i: i.published or 0.0):
            self.assigned[item.id] = self.memory.assign(item, item.published or 0.0)

    def settings(self, watchlist: str) -> StorySettings:
        wl = self.config.watchlist(watchlist)
        return wl.stories if wl else self.config.stories

    def story(self, item: Item, watchlist: str) -> str:
        """Return the story id of an added item for a watchlist."""
        return story_id(self.settings(watchlist), item, self.assigned.get(item.id))

    def teller(self, item: Item) -> Callable[[Match], str]:
        """Return a function from a hit on ``item`` to its story id (for ``try --json``)."""

        def tell(match: Match) -> str:
            return self.story(item, match.watchlist)

        return tell

    def describe(self, item: Item, watchlist: str) -> str:
        """Say which story an item is in for a watchlist, and why (similarity, shared terms)."""
        settings, a = self.settings(watchlist), self.assigned.get(item.id)
        sid = story_id(settings, item, a)
        if settings.group != "similar" or a is None:
            return f"story {sid} (group: {settings.group})"
        sim = a.similarity
        if sim is None:
            if a.opened:
                return f"story {sid}: opens a new story (no open story shares its rare terms)"
            return f"story {sid}: same link as its first item «{a.earlier}»"
        why = (
            f"similarity {sim.score:.2f} ({sim.view}; joins at {THRESHOLD}, or {WORDING} "
            f"worded alike), shared terms: {', '.join(a.shared_terms) or 'none'}"
        )
        if a.opened:
            return f"story {sid}: opens a new story; nearest was «{a.earlier}», {why}"
        return f"story {sid}: folds into the story of «{a.earlier}», {why}"
