"""Stories within one ``try`` or ``explain`` run: in memory, no Redis.

The items of the run are grouped as a worker would group them, oldest first
(by publication time), with document frequencies counted over the run.
"""

from __future__ import annotations

from collections.abc import Sequence

from worker.config import Config, StorySettings
from worker.model import Item
from worker.stories import story_id
from worker.stories.grouping import THRESHOLD, WORDING, Assignment, MemoryStories


def group_run(config: Config, items: Sequence[Item]) -> dict[str, Assignment]:
    """Assign the run's items to stories in memory; return each one's assignment by item id."""
    from worker.stories import grouping_window

    stories = MemoryStories(grouping_window(w.stories for w in config.watchlists))
    ordered = sorted(dict.fromkeys(items), key=lambda i: i.published or 0.0)
    return {i.id: stories.assign(i, i.published or 0.0) for i in ordered}


def settings_of(config: Config, watchlist: str) -> StorySettings:
    wl = config.watchlist(watchlist)
    return wl.stories if wl else config.stories


def describe(settings: StorySettings, item: Item, a: Assignment | None) -> str:
    """Say which story an item is in for a watchlist, and why (similarity, shared terms)."""
    sid = story_id(settings, item, a)
    if settings.group != "similar" or a is None:
        return f"story {sid} (group: {settings.group})"
    sim = a.similarity
    why = (
        f"similarity {sim.score:.2f} ({sim.view}; joins at {THRESHOLD}, or {WORDING} worded alike), "
        f"shared terms: {', '.join(a.shared_terms) or 'none'}"
        if sim is not None
        else ""
    )
    if not a.opened and a.similarity is None:
        return f"story {sid}: same link as its first item «{a.earlier}»"
    if not a.opened:
        return f"story {sid}: folds into the story of «{a.earlier}», {why}"
    if sim is None:
        return f"story {sid}: opens a new story (no open story shares its rare terms)"
    return f"story {sid}: opens a new story; nearest was «{a.earlier}», {why}"
