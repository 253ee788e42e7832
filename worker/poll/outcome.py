"""What one poll of one feed did, and the pure decisions about which of its items are new."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from worker.model import Item

log = logging.getLogger("newsalert.poller")

#: An all-new fetch counts as GUID churn when this share of its links were seen before.
CHURN_SHARE = 0.8


@dataclass
class PollOutcome:
    """What one poll of one feed did."""

    feed: str
    new: int = 0
    queued: int = 0
    marked_seen: int = 0
    first_poll: bool = False
    status: int | None = None
    error: str | None = None
    parsed: bool = False
    overflow: bool = False
    churn: bool = False
    pushed: bool = False  # content a WebSub hub pushed, not a fetch
    times: list[float | None] = field(default_factory=list)  # of the new items (None: unknown)


def summarise_first_polls(outcomes: Sequence[PollOutcome]) -> None:
    """Log the one line that says how many existing items first polls marked seen."""
    first = [o for o in outcomes if o.first_poll]
    if first:
        log.info(
            "%d feeds polled for the first time: %d existing items marked seen, %d backfilled",
            len(first),
            sum(o.marked_seen for o in first),
            sum(o.queued for o in first),
        )


def newest(items: Sequence[Item], n: int) -> list[Item]:
    """Return the newest ``n`` items (feed order breaks ties: feeds list newest first)."""
    if n <= 0:
        return []
    order = sorted(range(len(items)), key=lambda i: (-(items[i].published or 0), i))
    return [items[i] for i in order[:n]]


def relinked(items: Sequence[Item], link_ids: Sequence[bytes | None]) -> list[Item]:
    """Return ``items`` identified by their links (an item without a link keeps its id)."""
    return [replace(i, id=lk.hex()) if lk else i for i, lk in zip(items, link_ids, strict=False)]


def churned(
    items: Sequence[Item], link_ids: Sequence[bytes | None], known: dict[bytes, int]
) -> bool:
    """Return whether an all-new fetch is mostly links seen before (the feed re-mints GUIDs)."""
    return sum(lk in known for lk in link_ids if lk) >= CHURN_SHARE * len(items)
