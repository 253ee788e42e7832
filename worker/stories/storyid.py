"""The one place that says which story an item belongs to.

Alerts are deduplicated per (watchlist, story, destination), the sent log
records the story of each alert, and ``backtest`` compares by story: all of
them ask ``story_id``. The match job sets the ``story`` of an alert's item to
the story it was grouped into for its watchlist (``worker.stories.story_id``),
so for an alert this is the grouped story. An item that was never grouped (an
archived item) carries its canonical-link key; to group it as a watchlist would,
call ``worker.stories.story_id(settings, item, assignment)`` with its
``Assignment`` (``worker.stories.group``).
"""

from __future__ import annotations

from worker.model import Item


def story_id(item: Item) -> str:
    """Return the id of the story ``item`` belongs to (its own id when it has no story key)."""
    return item.story or item.id
