"""The frozen settings a loaded config holds: ``Feed``, ``Destination``, ``Watchlist``, ``Config``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

from worker.config.schedule import DigestSchedule, QuietHours
from worker.rules import RuleSpec

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: A rule id: alerts, logs and ``try --json`` name rules by it, so no separators or spaces.
RULE_ID = re.compile(r"[A-Za-z0-9_.-]+")
FULLTEXT_MODES = ("auto", "always", "never")
MESSAGE_FORMATS = ("markdown", "html", "text")
STORY_GROUPS = ("similar", "link", "off")


@dataclass(frozen=True)
class StorySettings:
    """How a watchlist groups items into stories (README "Stories")."""

    group: str = "similar"  # similar | link (same canonical link only) | off (every item alerts)
    window: float = 48 * 3600.0  # seconds a story stays open to new copies


class SendRate(NamedTuple):
    """A destination's ``rate``: at most ``messages`` per ``per`` seconds (both > 0)."""

    messages: int
    per: float


@dataclass(frozen=True)
class Feed:
    """One feed to poll."""

    id: str
    url: str
    tags: tuple[str, ...] = ()
    interval: float | None = None  # None: ``auto``, follow the feed's rate (worker.poll.cadence)
    min_interval: float = 60.0  # bounds of an ``auto`` interval
    max_interval: float = 1800.0
    backfill: int = 0
    fulltext: str = "auto"
    fulltext_min_words: int = 120  # ``auto`` fetches the article below this many words
    fulltext_deadline: float = 10.0  # seconds an item may wait for its article


@dataclass(frozen=True)
class Destination:
    """Where alerts go; ``url`` holds secrets, print ``worker.deliver.render.redact_url(url)``."""

    name: str
    url: str = field(repr=False)
    rate: SendRate | None = None
    digest_after: int | None = None
    quiet_hours: QuietHours | None = None
    digest: DigestSchedule | None = None
    format: str | None = None
    tag: str | None = None
    template: str | None = None
    on_failure: str | None = None
    secrets: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class Watchlist:
    """A named set of rules and who to notify when one fires."""

    id: str
    name: str
    path: str
    notify: tuple[str, ...]
    rules: tuple[RuleSpec, ...]
    feed_ids: tuple[str, ...] = ()
    feed_tags: tuple[str, ...] = ()
    urgent: bool = False
    #: Matched and counted, never delivered: the whole watchlist, or these rules of it.
    shadow: bool = False
    shadow_rules: frozenset[str] = frozenset()
    #: Volume guard: a rule that matches more items than this within a clock hour is
    #: muted until the hour ends (``worker.service.gate``); None = no guard.
    max_per_hour: int | None = None
    stories: StorySettings = StorySettings()
    should_match: tuple[tuple[str, int], ...] = ()  # (text, line)
    should_not_match: tuple[tuple[str, int], ...] = ()

    def covers(self, feed: Feed) -> bool:
        """Return whether this watchlist's ``feeds:`` scope includes ``feed``."""
        if not self.feed_ids and not self.feed_tags:
            return True
        return feed.id in self.feed_ids or bool(set(self.feed_tags) & set(feed.tags))

    def is_shadow(self, rule: str) -> bool:
        """Return whether matches of ``rule`` are counted but never delivered."""
        return self.shadow or rule in self.shadow_rules


@dataclass(frozen=True)
class Config:
    """The whole validated configuration, identified by ``version``."""

    root: str
    version: str
    feeds: tuple[Feed, ...]
    watchlists: tuple[Watchlist, ...]
    destinations: Mapping[str, Destination]
    allow_private_networks: bool = False
    #: feeds.yaml ``fetch:`` overrides of ``worker.poll.fetch.FetchLimits`` fields.
    fetch: Mapping[str, float] = field(default_factory=dict)
    #: feeds.yaml ``websub: {callback: …}``: public base URL; WebSub push is off when None.
    websub_callback: str | None = None
    #: feeds.yaml ``archive``: seconds accepted items are kept for ``backtest`` (0 = off).
    archive: float = 7 * 86400.0
    #: feeds.yaml ``archive_max``: the archive's bound in compressed bytes.
    archive_max: int = 200 * 1024**2
    #: feeds.yaml ``stories:``, the default of every watchlist.
    stories: StorySettings = StorySettings()

    @cached_property
    def _feeds_by_id(self) -> dict[str, Feed]:
        return {f.id: f for f in reversed(self.feeds)}  # the first of a (rejected) duplicate

    def feed(self, feed_id: str) -> Feed | None:
        return self._feeds_by_id.get(feed_id)

    def watchlist(self, watchlist_id: str) -> Watchlist | None:
        return next((w for w in self.watchlists if w.id == watchlist_id), None)

    def watchlists_for(self, feed_id: str) -> list[str]:
        """Return the ids of the watchlists whose scope includes the feed."""
        feed = self.feed(feed_id) or Feed(id=feed_id, url="")
        return [w.id for w in self.watchlists if w.covers(feed)]

    def rule_specs(self) -> list[RuleSpec]:
        return [rule for w in self.watchlists for rule in w.rules]

    def secrets(self) -> list[str]:
        """Return every secret of every destination (``${ENV}`` values, URL credentials)."""
        return [s for d in self.destinations.values() for s in d.secrets]
