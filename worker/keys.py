"""Every Redis key newsalert uses, and every TTL, in one place.

All keys start with ``newsalert:`` so one Redis can be shared with other
applications (and so ``stats`` can find ours). RQ's own keys keep RQ's
``rq:`` prefix; our queue names start with ``newsalert-``.
"""

from __future__ import annotations

import hashlib

PREFIX = "newsalert:"

MATCH_QUEUE = "newsalert-match"
DELIVER_QUEUE = "newsalert-deliver"
QUEUES = (MATCH_QUEUE, DELIVER_QUEUE)

#: How long a story is remembered as seen after it was last in its feed.
SEEN_TTL = 30 * 86400
#: How long an item's body waits in Redis for its match job.
ITEM_TTL = 2 * 86400
#: How long a delivery is remembered as sent (the exactly-once window).
SENT_TTL = 30 * 86400
#: How long a delivery claim lives: a worker that dies mid-send frees it after this.
CLAIM_TTL = 120
#: How long a feed lease lives: a poller that dies frees its feeds after this.
LEASE_TTL = 120
#: How long the set of feeds a story arrived from is kept ("also in").
STORY_FEEDS_TTL = 7 * 86400
#: How many dead letters are kept.
DEAD_LETTERS_MAX = 10_000


def _h(*parts: str) -> str:
    return hashlib.blake2b("\0".join(parts).encode(), digest_size=12).hexdigest()


def seen(feed_id: str) -> str:
    """Sorted set of 8-byte item ids, scored by when the item was last in the feed."""
    return f"{PREFIX}seen:{feed_id}"


def feed_state(feed_id: str) -> str:
    """Hash of a feed's fetch state and health (etag, failures, last error…)."""
    return f"{PREFIX}feed:{feed_id}"


SCHEDULE = f"{PREFIX}schedule"
"""Sorted set of feed ids scored by the time they are next due."""


def lease(feed_id: str) -> str:
    """The poller currently fetching a feed (SET NX with LEASE_TTL)."""
    return f"{PREFIX}lease:{feed_id}"


def item(item_id: str) -> str:
    """An item's JSON body, kept out of job arguments (ITEM_TTL)."""
    return f"{PREFIX}item:{item_id}"


def story_feeds(story: str) -> str:
    """Set of feed ids a story arrived from."""
    return f"{PREFIX}story:{story}"


def delivery_id(watchlist: str, story: str, destination: str) -> str:
    """Return the deterministic id of one (watchlist, story, destination) delivery."""
    return _h(watchlist, story, destination)


def ledger(delivery: str) -> str:
    """Exactly-once ledger entry of a delivery: a claim token, then 'sent'."""
    return f"{PREFIX}sent:{delivery}"


DEAD_LETTERS = f"{PREFIX}dead"
"""List of JSON dead letters (newest first)."""

CONFIG_VERSION = f"{PREFIX}config:version"


def counter(name: str) -> str:
    """Hash of running counts for ``stats`` (by watchlist, rule, destination…)."""
    return f"{PREFIX}count:{name}"
