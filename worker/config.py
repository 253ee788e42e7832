"""Load and validate ``config/`` into one immutable, versioned ``Config``.

Layout (DESIGN.md): ``feeds.yaml``, ``destinations.yaml``, optional
``aliases.yaml`` and ``watchlists/*.yaml`` (a watchlist's id is its file
name). Every problem found is reported at once as ``path:line:col: message``
through one ``ConfigError``; nothing is read from the environment except the
``${VAR}`` references in ``destinations.yaml``, and a missing variable is
named, never its value.

The version is a hash of the files' bytes, so every process that reads the
same files agrees on it; environment values do not change it.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.errors import ConfigError, QueryError
from worker.message import check_template
from worker.model import TEXT_FIELDS
from worker.rules import RuleSpec, validate
from worker.schedule import parse_digest, parse_quiet_hours
from worker.yamlcheck import (
    Checker,
    boolean,
    choice,
    parse_duration,
    parse_rate,
    parse_size,
    positive_int,
)
from worker.yamlfile import Map, Seq

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
FULLTEXT_MODES = ("auto", "always", "never")
MESSAGE_FORMATS = ("markdown", "html", "text")
STORY_GROUPS = ("similar", "link", "off")


@dataclass(frozen=True)
class StorySettings:
    """How a watchlist groups items into stories (README "Stories")."""

    group: str = "similar"  # similar | link (same canonical link only) | off (every item alerts)
    window: float = 48 * 3600.0  # seconds a story stays open to new copies


@dataclass(frozen=True)
class Feed:
    """One feed to poll."""

    id: str
    url: str
    tags: tuple[str, ...] = ()
    interval: float = 300.0
    backfill: int = 0
    fulltext: str = "auto"
    fulltext_min_words: int = 120  # ``auto`` fetches the article below this many words
    fulltext_deadline: float = 10.0  # seconds an item may wait for its article


@dataclass(frozen=True)
class Destination:
    """Where alerts go; ``url`` holds secrets, print ``worker.message.redact_url(url)``."""

    name: str
    url: str = field(repr=False)
    rate: tuple[int, float] | None = None  # (count, per seconds)
    digest_after: int | None = None
    quiet_hours: str | None = None
    digest: str | None = None
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
    stories: StorySettings = StorySettings()
    should_match: tuple[tuple[str, int], ...] = ()  # (text, line)
    should_not_match: tuple[tuple[str, int], ...] = ()

    def covers(self, feed: Feed) -> bool:
        """Return whether this watchlist's ``feeds:`` scope includes ``feed``."""
        if not self.feed_ids and not self.feed_tags:
            return True
        return feed.id in self.feed_ids or bool(set(self.feed_tags) & set(feed.tags))


@dataclass(frozen=True)
class Config:
    """The whole validated configuration, identified by ``version``."""

    root: str
    version: str
    feeds: tuple[Feed, ...]
    watchlists: tuple[Watchlist, ...]
    destinations: Mapping[str, Destination]
    allow_private_networks: bool = False
    #: feeds.yaml ``fetch:`` overrides of ``worker.fetch.FetchLimits`` fields.
    fetch: Mapping[str, float] = field(default_factory=dict)
    #: feeds.yaml ``stories:``, the default of every watchlist.
    stories: StorySettings = StorySettings()

    def feed(self, feed_id: str) -> Feed | None:
        return next((f for f in self.feeds if f.id == feed_id), None)

    def watchlist(self, watchlist_id: str) -> Watchlist | None:
        return next((w for w in self.watchlists if w.id == watchlist_id), None)

    def watchlists_for(self, feed_id: str) -> list[str]:
        """Return the ids of the watchlists whose scope includes the feed."""
        feed = self.feed(feed_id) or Feed(id=feed_id, url="")
        return [w.id for w in self.watchlists if w.covers(feed)]

    def rule_specs(self) -> list[RuleSpec]:
        return [rule for w in self.watchlists for rule in w.rules]

    def secrets(self) -> list[str]:
        """Return every value interpolated from the environment, for redaction."""
        return [s for d in self.destinations.values() for s in d.secrets]


def config_files(root: Path) -> list[Path]:
    """Return the files that make up a config directory, in a stable order."""
    files = [root / name for name in ("feeds.yaml", "destinations.yaml", "aliases.yaml")]
    files += sorted((root / "watchlists").glob("*.yaml"))
    return [f for f in files if f.is_file()]


def config_version(root: Path) -> str:
    """Return the content hash of a config directory (12 hex digits)."""
    digest = hashlib.sha256()
    for path in config_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


_FULLTEXT_KEYS = ("fulltext", "fulltext_min_words", "fulltext_deadline")


def _deadline(value: Any) -> float:
    # A poll holds its feed's lease (LEASE_TTL, 2 min) while its items wait for articles.
    seconds = parse_duration(value)
    if not 0 < seconds <= 60:
        raise ValueError(f"must be more than 0 and at most 1m, not {value!r}")
    return seconds


#: feeds.yaml ``fetch:`` settings and how to read each (the defaults live in FetchLimits).
_FETCH_SETTINGS = {
    "connect_timeout": parse_duration,
    "read_timeout": parse_duration,
    "total_timeout": parse_duration,
    "max_bytes": parse_size,
    "max_redirects": positive_int,
    "concurrency": positive_int,
    "per_host": positive_int,
}


def _fetch_settings(ld: Checker, path: Path, top: Map) -> dict[str, float]:
    node = top.get("fetch")
    if node is None or ld.mapping(path, node, "fetch", set(_FETCH_SETTINGS)) is None:
        return {}
    out = {}
    for key, read in _FETCH_SETTINGS.items():
        value = ld.convert(path, node, key, read, None)
        if value is not None and value <= 0:
            ld.error(path, ld.value_pos(node, key), f"{key} must be more than 0")
        elif value is not None:
            out[key] = value
    return out


def _stories(ld: Checker, path: Path, top: Map, default: StorySettings) -> StorySettings:
    """Read a ``stories: {group, window}`` mapping over ``default``."""
    node = top.get("stories")
    if node is None or ld.mapping(path, node, "stories", {"group", "window"}) is None:
        return default
    window = ld.convert(path, node, "window", parse_duration, default.window)
    if window < 60:
        ld.error(path, ld.value_pos(node, "window"), "window must be at least 1m")
    group = ld.convert(path, node, "group", choice(STORY_GROUPS), default.group)
    return StorySettings(group=group, window=window)


_Feeds = tuple[tuple[Feed, ...], bool, dict[str, float], StorySettings]


def _load_feeds(ld: Checker) -> _Feeds:
    path = ld.root / "feeds.yaml"
    doc = ld.load(path)
    if doc is None:
        return (), False, {}, StorySettings()
    allowed_top = {"defaults", "allow_private_networks", "fetch", "feeds", "stories"}
    top = ld.mapping(path, doc, "feeds.yaml", allowed_top, {"feeds"})
    if top is None:
        return (), False, {}, StorySettings()
    stories = _stories(ld, path, top, StorySettings())
    fetch = _fetch_settings(ld, path, top)
    defaults = top.get("defaults") or Map()
    ld.mapping(path, defaults, "defaults", {"interval", "backfill", *_FULLTEXT_KEYS})
    d_interval = ld.convert(path, defaults, "interval", parse_duration, 300.0)
    d_backfill = ld.convert(path, defaults, "backfill", positive_int, 0)
    d_fulltext = ld.convert(path, defaults, "fulltext", choice(FULLTEXT_MODES), "auto")
    d_min_words = ld.convert(path, defaults, "fulltext_min_words", positive_int, 120)
    d_deadline = ld.convert(path, defaults, "fulltext_deadline", _deadline, 10.0)
    allow_private = ld.convert(path, top, "allow_private_networks", boolean, False)
    entries = top.get("feeds")
    if entries is None:  # "feeds:" with nothing under it yet
        entries = Seq()
    if not isinstance(entries, Seq):
        ld.error(path, ld.value_pos(top, "feeds"), "'feeds' must be a list")
        return (), allow_private, fetch, stories
    feeds: list[Feed] = []
    seen: set[str] = set()
    allowed = {"id", "url", "tags", "interval", "backfill", *_FULLTEXT_KEYS}
    for node in entries:
        if ld.mapping(path, node, "feed", allowed, {"id", "url"}) is None:
            continue
        fid, url = str(node.get("id", "")), str(node.get("url", ""))
        if not _ID.match(fid):
            ld.error(
                path,
                ld.value_pos(node, "id"),
                f"feed id {fid!r} may hold only letters, digits, '-', '_', '.'",
            )
        elif fid in seen:
            ld.error(path, ld.value_pos(node, "id"), f"duplicate feed id {fid!r}")
        seen.add(fid)
        if not re.match(r"^https?://[^/\s]+", url):
            ld.error(path, ld.value_pos(node, "url"), f"feed url must be http(s)://…, not {url!r}")
        interval = ld.convert(path, node, "interval", parse_duration, d_interval)
        if interval < 1:
            ld.error(path, ld.value_pos(node, "interval"), "interval must be at least 1s")
        feeds.append(
            Feed(
                id=fid,
                url=url,
                tags=ld.strings(path, node, "tags"),
                interval=interval,
                backfill=ld.convert(path, node, "backfill", positive_int, d_backfill),
                fulltext=ld.convert(path, node, "fulltext", choice(FULLTEXT_MODES), d_fulltext),
                fulltext_min_words=ld.convert(
                    path, node, "fulltext_min_words", positive_int, d_min_words
                ),
                fulltext_deadline=ld.convert(
                    path, node, "fulltext_deadline", _deadline, d_deadline
                ),
            )
        )
    return tuple(feeds), allow_private, fetch, stories


def _checked(check: Any) -> Any:
    """Return a converter that keeps a string setting after ``check`` accepted it."""

    def convert(value: Any) -> str:
        check(str(value))
        return str(value)

    return convert


def _load_destinations(ld: Checker) -> dict[str, Destination]:
    path = ld.root / "destinations.yaml"
    doc = ld.load(path)
    if doc is None:
        return {}
    if not isinstance(doc, Map):
        ld.error(path, ld.pos(doc), "destinations.yaml must map destination names to settings")
        return {}
    allowed = {
        "url",
        "rate",
        "digest_after",
        "quiet_hours",
        "digest",
        "format",
        "tag",
        "template",
        "on_failure",
    }
    out: dict[str, Destination] = {}
    for name, node in doc.items():
        if ld.mapping(path, node, f"destination {name!r}", allowed, {"url"}) is None:
            continue
        url, secrets = ld.interpolate(path, node, "url", str(node.get("url") or ""))
        if "://" not in url and not any(
            p[3].startswith("environment variable") for p in ld.problems
        ):
            ld.error(
                path,
                ld.value_pos(node, "url"),
                f"destination {name!r}: url must be an apprise URL (scheme://…)",
            )
        out[str(name)] = Destination(
            name=str(name),
            url=url,
            secrets=tuple(secrets),
            rate=ld.convert(path, node, "rate", parse_rate, None),
            digest_after=ld.convert(path, node, "digest_after", positive_int, None),
            quiet_hours=ld.convert(path, node, "quiet_hours", _checked(parse_quiet_hours), None),
            digest=ld.convert(path, node, "digest", _checked(parse_digest), None),
            format=ld.convert(path, node, "format", choice(MESSAGE_FORMATS), None),
            tag=ld.convert(path, node, "tag", str, None),
            template=ld.convert(path, node, "template", _checked(check_template), None),
            on_failure=ld.convert(path, node, "on_failure", str, None),
        )
    for name, node in doc.items():
        target = out.get(str(name)) and out[str(name)].on_failure
        if target and target not in out:
            ld.error(
                path,
                ld.value_pos(node, "on_failure"),
                f"on_failure: unknown destination {target!r}",
            )
    return out


def _aliases(ld: Checker, path: Path, node: Any) -> dict[str, tuple[str, ...]]:
    if node is None:
        return {}
    if not isinstance(node, Map):
        ld.error(path, ld.pos(node), "aliases must map a term to a list of alternatives")
        return {}
    return {str(term): ld.strings(path, node, term) for term in node}


def _load_rule(
    ld: Checker,
    path: Path,
    wid: str,
    node: Any,
    index: int,
    aliases: tuple[tuple[str, tuple[str, ...]], ...],
) -> RuleSpec | None:
    allowed = {"id", "all", "any", "none", "query", "in"}
    if ld.mapping(path, node, "rule", allowed) is None:
        return None
    fields = ld.strings(path, node, "in")
    for f in fields:
        if f not in TEXT_FIELDS:
            ld.error(
                path,
                ld.value_pos(node, "in"),
                f"unknown field {f!r} in 'in' (fields: {', '.join(TEXT_FIELDS)})",
            )
    spec = RuleSpec(
        watchlist=wid,
        id=str(node.get("id") or f"rule-{index + 1}"),
        query=str(node["query"]) if node.get("query") is not None else None,
        all=ld.strings(path, node, "all"),
        any=ld.strings(path, node, "any"),
        none=ld.strings(path, node, "none"),
        fields=fields,
        aliases=aliases,
    )
    if spec.query is not None and (spec.all or spec.any or spec.none):
        ld.error(
            path, ld.pos(node), f"rule {spec.id!r}: use either 'query' or all/any/none, not both"
        )
        return None
    if spec.query is None and not (spec.all or spec.any):
        ld.error(path, ld.pos(node), f"rule {spec.id!r}: needs 'query', 'all' or 'any'")
        return None
    try:
        validate(spec)
    except QueryError as exc:
        if spec.query is not None:
            line, col = ld.value_pos(node, "query")
            # Offsets inside a plain or quoted scalar on one line map to columns.
            quoted = 1 if node.lc.style("query") in ("'", '"') else 0
            ld.error(
                path, (line, col + quoted + exc.column - 1), f"rule {spec.id!r}: {exc.message}"
            )
        else:
            ld.error(path, ld.pos(node), f"rule {spec.id!r}: {exc.message}")
        return None
    return spec


def _load_watchlist(
    ld: Checker,
    path: Path,
    shared_aliases: dict[str, tuple[str, ...]],
    destinations: Mapping[str, Destination],
    feed_ids: set[str],
    stories: StorySettings = StorySettings(),
) -> Watchlist | None:
    doc = ld.load(path)
    if doc is None:
        return None
    allowed = {"name", "notify", "feeds", "aliases", "rules", "examples", "urgent", "stories"}
    if ld.mapping(path, doc, "watchlist", allowed, {"notify", "rules"}) is None:
        return None
    wid = path.stem
    notify = ld.strings(path, doc, "notify")
    for dest in notify:
        if dest not in destinations:
            ld.error(
                path,
                ld.value_pos(doc, "notify"),
                f"unknown destination {dest!r} (defined: {', '.join(destinations) or 'none'})",
            )
    scope = doc.get("feeds") or Map()
    ld.mapping(path, scope, "feeds scope", {"ids", "tags"})
    ids = ld.strings(path, scope, "ids") if isinstance(scope, Map) else ()
    for fid in ids:
        if fid not in feed_ids:
            ld.error(path, ld.value_pos(scope, "ids"), f"unknown feed id {fid!r}")
    aliases = {**shared_aliases, **_aliases(ld, path, doc.get("aliases"))}
    alias_spec = tuple(sorted(aliases.items()))
    rules_node = doc.get("rules")
    rules: list[RuleSpec] = []
    if not isinstance(rules_node, Seq) or not rules_node:
        ld.error(path, ld.value_pos(doc, "rules"), "'rules' must be a non-empty list")
    else:
        for i, node in enumerate(rules_node):
            spec = _load_rule(ld, path, wid, node, i, alias_spec)
            if spec and any(r.id == spec.id for r in rules):
                ld.error(path, ld.pos(node), f"duplicate rule id {spec.id!r}")
            elif spec:
                rules.append(spec)
    examples = doc.get("examples") or Map()
    ld.mapping(path, examples, "examples", {"should_match", "should_not_match"})

    def lined(key: str) -> tuple[tuple[str, int], ...]:
        if not isinstance(examples, Map):
            return ()
        texts = ld.strings(path, examples, key)
        seq = examples.get(key)
        return tuple(
            (t, ld.value_pos(seq, i)[0] + 1 if isinstance(seq, Seq) else 0)
            for i, t in enumerate(texts)
        )

    return Watchlist(
        id=wid,
        name=str(doc.get("name") or wid),
        path=ld.rel(path),
        notify=notify,
        rules=tuple(rules),
        feed_ids=ids,
        feed_tags=ld.strings(path, scope, "tags") if isinstance(scope, Map) else (),
        urgent=ld.convert(path, doc, "urgent", boolean, False),
        stories=_stories(ld, path, doc, stories),
        should_match=lined("should_match"),
        should_not_match=lined("should_not_match"),
    )


def load_config(root: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Load and validate a config directory; raise ``ConfigError`` listing every problem."""
    root_path = Path(root).resolve()
    ld = Checker(root_path, os.environ if env is None else env)
    if not root_path.is_dir():
        raise ConfigError([(str(root), 1, 1, "config directory not found")])
    feeds, allow_private, fetch, stories = _load_feeds(ld)
    destinations = _load_destinations(ld)
    aliases_path = root_path / "aliases.yaml"
    shared_aliases = _aliases(ld, aliases_path, ld.load(aliases_path, required=False))
    feed_ids = {f.id for f in feeds}
    watchlists = []
    for path in sorted((root_path / "watchlists").glob("*.yaml")):
        if not _ID.match(path.stem):
            ld.error(
                path, (0, 0), f"watchlist file name {path.name!r}: use letters, digits, '-', '_'"
            )
            continue
        wl = _load_watchlist(ld, path, shared_aliases, destinations, feed_ids, stories)
        if wl is not None:
            watchlists.append(wl)
    if ld.problems:
        raise ConfigError(ld.problems)
    return Config(
        root=str(root_path),
        version=config_version(root_path),
        feeds=feeds,
        watchlists=tuple(watchlists),
        destinations=destinations,
        allow_private_networks=allow_private,
        fetch=fetch,
        stories=stories,
    )
