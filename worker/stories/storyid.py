"""The one place that says which story an item belongs to.

Alerts are deduplicated per (watchlist, story, destination), the sent log
records the story of each alert, and ``backtest`` compares by story: all of
them ask ``story_id``. Today a story is the item's canonical-link key
(``worker.identity.story_key``, set by the parser); story grouping across
feeds (issue 13) switches this function to the grouping's id.
"""

from __future__ import annotations

from worker.model import Item


def story_id(item: Item) -> str:
    """Return the id of the story ``item`` belongs to (its own id when it has no story key)."""
    return item.story or item.id
