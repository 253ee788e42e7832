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
#: More than a job's time limit (service.timers.Timers.job_timeout, 30 s), so a live sender never loses it.
CLAIM_TTL = 45
#: How long a feed lease lives: a poller that dies frees its feeds after this.
LEASE_TTL = 120
#: How long the set of feeds a story arrived from is kept ("also in").
STORY_FEEDS_TTL = 7 * 86400
#: How many dead letters are kept.
DEAD_LETTERS_MAX = 10_000


def _h(*parts: str) -> str:
    return hashlib.blake2b("\0".join(parts).encode(), digest_size=12).hexdigest()


def seen(feed_id: str) -> str:
    """Legacy seen-set (sorted set of 8-byte ids); read once by ``worker.poll.seen`` and deleted."""
    return f"{PREFIX}seen:{feed_id}"


def seen_packed(feed_id: str) -> str:
    """A feed's seen-set: 12-byte records (8-byte id, 4-byte last-seen second), SEEN_TTL."""
    return f"{PREFIX}seenp:{feed_id}"


def feed_state(feed_id: str) -> str:
    """Hash of a feed's fetch state and health (etag, failures, last error…)."""
    return f"{PREFIX}feed:{feed_id}"


SCHEDULE = f"{PREFIX}schedule"
"""Sorted set of feed ids scored by the time they are next due."""


def lease(feed_id: str) -> str:
    """The poller currently fetching a feed (redis-py Lock, LEASE_TTL)."""
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


def hourly(name: str, hour: int) -> str:
    """Hash of counts of ``name`` within one hour (epoch hours), kept 25 hours."""
    return f"{PREFIX}hourly:{name}:{hour}"


def counter(name: str) -> str:
    """Hash of running counts for ``stats`` (by watchlist, rule, destination…)."""
    return f"{PREFIX}count:{name}"


HEARTBEATS = f"{PREFIX}heartbeats"
"""Hash of ``role:name`` → time of the last heartbeat of each poller and worker."""


# -- delivery: outbox, flush schedule, rate limit, destination health ---------

#: How long a per-destination flush lock lives: a flusher that dies frees it after this.
FLUSH_LOCK_TTL = 60
#: How long an idle rate-limit bucket is kept (it refills completely long before).
BUCKET_TTL = 86400

FLUSH_DUE = f"{PREFIX}flush:due"
"""Sorted set of destination names scored by when their outbox is next due to flush."""


def outbox(destination: str) -> str:
    """Sorted set of delivery ids waiting for a destination, scored by when they arrived."""
    return f"{PREFIX}outbox:{destination}"


def outbox_payloads(destination: str) -> str:
    """Hash of delivery id → JSON delivery payload for a destination's outbox."""
    return f"{PREFIX}outbox:{destination}:payloads"


def outbox_attempts(destination: str) -> str:
    """Hash of delivery id → failed send attempts while in the outbox."""
    return f"{PREFIX}outbox:{destination}:attempts"


def flush_lock(destination: str) -> str:
    """The one process flushing a destination's outbox (redis-py Lock, FLUSH_LOCK_TTL)."""
    return f"{PREFIX}flush:lock:{destination}"


def bucket(destination: str) -> str:
    """Token bucket of a destination's rate limit (hash: tokens, ts)."""
    return f"{PREFIX}bucket:{destination}"


def destination_health(destination: str) -> str:
    """Hash of a destination's health: consecutive failures, last error, retry_at, last_ok."""
    return f"{PREFIX}dest:{destination}"


def notice_id(delivery: str, failed_at: float) -> str:
    """Return the ledger id of the on_failure notice for one dead letter."""
    return _h("notice", delivery, f"{failed_at:.6f}")


# -- full text: article cache, robots.txt cache, host back-off ---------------

#: How long extracted article text is cached by canonical URL; kept ≤ ITEM_TTL.
#: The text also rides in the body of each new item that used it (for its
#: match job, ITEM_TTL), so it is gone from Redis at most ARTICLE_TTL +
#: ITEM_TTL after it was fetched.
ARTICLE_TTL = 86400
#: How long "no usable text" (failed fetch, not HTML, robots said no) is cached.
ARTICLE_MISS_TTL = 15 * 60
#: How long an article fetch marker lives: a poller that dies frees the URL after this.
ARTICLE_LOCK_TTL = 60
#: How long a host's robots.txt is cached (RFC 9309 asks for at most 24 h).
ROBOTS_TTL = 86400
#: How long a robots.txt that could not be read (5xx, timeout) counts as "disallow all".
ROBOTS_ERROR_TTL = 15 * 60
#: How long a host that refused (401/402/403/451, paywall, robots "Disallow: /") is left alone.
HOST_REFUSED_TTL = 6 * 3600
#: How long a host that keeps failing is left alone, and the window failures are counted in.
HOST_FAILING_TTL = 3600
HOST_FAILURES_WINDOW = 3600


def article(canonical: str) -> str:
    """Extracted plain text of the article at a canonical URL ("" = no usable text)."""
    return f"{PREFIX}article:{_h(canonical)}"


def article_lock(canonical: str) -> str:
    """The one process fetching an article (redis-py Lock, ARTICLE_LOCK_TTL)."""
    return f"{PREFIX}article:lock:{_h(canonical)}"


def robots(origin: str) -> str:
    """A host's robots.txt text (``scheme://host:port`` origin; ROBOTS_TTL)."""
    return f"{PREFIX}robots:{origin}"


def host_backoff(origin: str) -> str:
    """Present while article fetches from a host are backed off; the value is the reason."""
    return f"{PREFIX}article:backoff:{origin}"


def host_failures(origin: str) -> str:
    """Count of recent failed article fetches from a host (HOST_FAILURES_WINDOW)."""
    return f"{PREFIX}article:failures:{origin}"


HOSTS_BACKED_OFF = f"{PREFIX}article:backoffs"
"""Sorted set of backed-off origins scored by when their back-off ends (for ``stats``)."""


# -- stories: grouping items across feeds (worker.stories) ------------------

#: Longest a story stays open when no watchlist sets a ``stories: window`` of its own.
STORY_WINDOW = 48 * 3600
#: Most open stories kept; past it the oldest are closed first.
STORIES_MAX = 200_000
#: Most copies of a story recorded on it (outlet, title, link, time).
STORY_MEMBERS_MAX = 20
#: How long a worker may hold the story-assignment lock (it is released sooner).
STORY_LOCK_TTL = 30
#: How long a match job waits for that lock before it fails and is retried (< a job's 30 s).
STORY_LOCK_WAIT = 20
#: Document frequencies are counted in daily buckets; this many hashed term slots a day.
STORY_DF_SLOTS = 1 << 16
#: How long a day's term counts are kept (today's and yesterday's are read).
STORY_DF_TTL = 2 * 86400 + 3600

STORY_LOCK = f"{PREFIX}stories:lock"
"""redis-py Lock held while a batch of items is assigned to stories (one story per event)."""

STORIES_OPEN = f"{PREFIX}stories:open"
"""Sorted set of open story ids scored by when they opened (window and cap)."""

STORIES_OUTLETS = f"{PREFIX}stories:outlets"
"""Sorted set of open story ids scored by how many feeds carried them (``stats``)."""


def story_record(story: str) -> str:
    """An open story, packed: opening time, terms, first feed and title (window TTL)."""
    return f"{PREFIX}stories:rec:{story}"


def story_members(story: str) -> str:
    """List of a story's copies as JSON (feed, title, link, at), at most STORY_MEMBERS_MAX."""
    return f"{PREFIX}stories:members:{story}"


def story_of(link_key: str) -> str:
    """The assignment of an item (by its link key): "story opened at" (window TTL)."""
    return f"{PREFIX}stories:of:{link_key}"


def story_postings(term: int) -> str:
    """Sorted set of open stories indexed under a term hash, scored by opening time."""
    return f"{PREFIX}stories:term:{term:08x}"


def story_df(day: int) -> str:
    """Hash of term slot → items that day that had the term; field "n" counts items (2 days)."""
    return f"{PREFIX}stories:df:{day}"


# -- WebSub push ---------------------------------------------------------------

#: How many pushed bodies may wait for the poller; older ones are dropped (the safety-net
#: poll still finds their items).
WEBSUB_INBOX_MAX = 1000

WEBSUB_FEEDS = f"{PREFIX}websub:feeds"
"""Set of feed ids that have a WebSub subscription record."""

WEBSUB_INBOX = f"{PREFIX}websub:inbox"
"""List of JSON pushed bodies whose signature was good, oldest first, for the poller."""


def websub(feed_id: str) -> str:
    """Hash of a feed's WebSub subscription: hub, topic, secret, state, lease, last push."""
    return f"{PREFIX}websub:{feed_id}"


# -- archive, mutes and the volume guard (backtest, shadow rules) -------------

ARCHIVE = f"{PREFIX}archive"
"""Stream of accepted items, oldest first: one compressed record per item (``worker.core.archive``)."""

ARCHIVE_BYTES = f"{PREFIX}archive:bytes"
"""Compressed bytes held by ``ARCHIVE``, kept by the same Lua step that adds and trims."""

SENT_LOG = f"{PREFIX}archive:sent"
"""Stream of alerts that went out: watchlist, rules, story, destination, item (for backtest)."""

#: How long an archive outlives its last write (the archive itself trims by age on each write).
ARCHIVE_IDLE_TTL = 86400


def mute(target: str) -> str:
    """A mute of ``watchlist`` or ``watchlist/rule``: JSON who/why/until, expiring with it."""
    return f"{PREFIX}mute:{target}"


MUTES = f"{PREFIX}mutes"
"""Sorted set of muted targets scored by when they end (``stats`` lists them)."""

MUTE_LOG = f"{PREFIX}mutes:log"
"""List of JSON mute/unmute records, newest first (who, what, when, why, where)."""

#: How many mute/unmute records are kept.
MUTE_LOG_MAX = 500
#: How long a rule's per-hour match count (volume guard) and its trip marker live.
GUARD_TTL = 2 * 3600


def guard_count(target: str, hour: int) -> str:
    """Matches of ``watchlist/rule`` within one clock hour (epoch hours), for ``max_per_hour``."""
    return f"{PREFIX}guard:{target}:{hour}"


def guard_tripped(target: str, hour: int) -> str:
    """Set once (NX) by the worker that trips the volume guard of a rule for an hour."""
    return f"{PREFIX}guard:tripped:{target}:{hour}"
