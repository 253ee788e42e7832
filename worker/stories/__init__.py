"""Group every outlet's copy of a story, so a watchlist alerts once per story.

The match job calls ``group`` once per batch with the items that fired for
a watchlist whose ``stories: group`` is ``similar``: each gets an
``Assignment`` (``worker.stories.store``, in Redis, shared by all workers).
``story_id`` then gives the story id of an item *for one watchlist*, which is
what the exactly-once ledger keys on (watchlist, story, destination):

- ``off``: the item's own id (every item alerts);
- ``link``: the canonical-link key (syndicated copies of one URL share it);
- ``similar``: the assigned story; an item that arrives more than the
  watchlist's ``window`` after its story opened starts a new story for that
  watchlist (the story's id with the number of windows passed appended).

``story_id`` is the one function to call for "the story of this item for
this watchlist", e.g. for archived items: keep the item's ``Assignment``
(story, ``opened_at``, ``at``) with it, and pass the watchlist's settings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import redis

from worker.config import Config, StorySettings
from worker.core import keys
from worker.model import Item
from worker.stories.grouping import Assignment, MemoryStories, link_key
from worker.stories.store import assign

__all__ = ["Assignment", "MemoryStories", "group", "grouping_window", "story_id"]


def story_id(settings: StorySettings, item: Item, assignment: Assignment | None) -> str:
    """Return the story id of ``item`` for a watchlist with ``settings`` (the ledger's story key)."""
    if settings.group == "off":
        return item.id
    if settings.group == "link" or assignment is None:
        return link_key(item)
    windows = int((assignment.at - assignment.opened_at) // settings.window)
    return assignment.story if windows <= 0 else f"{assignment.story}-{windows}"


def grouping_window(settings: Iterable[StorySettings]) -> float:
    """Return how long stories stay open: the longest ``similar`` window of any watchlist."""
    windows = [s.window for s in settings if s.group == "similar"]
    return max(windows) if windows else float(keys.STORY_WINDOW)


def group(
    client: redis.Redis, config: Config, items: Sequence[Item], now: float | None = None
) -> dict[str, Assignment]:
    """Assign items to stories in Redis; return each one's assignment by item id."""
    if not items:
        return {}
    window = grouping_window(w.stories for w in config.watchlists)
    return assign(client, items, window, now)
