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

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from worker.errors import ConfigError, QueryError
from worker.model import TEXT_FIELDS
from worker.message import check_template
from worker.rules import RuleSpec, validate
from worker.schedule import parse_digest, parse_quiet_hours

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(s|m|h)\s*$")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
FULLTEXT_MODES = ("auto", "always", "never")
MESSAGE_FORMATS = ("markdown", "html", "text")


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


def parse_duration(text: Any) -> float:
    """Return seconds for ``30s``, ``5m``, ``1h``, ``2d`` or a bare number of seconds."""
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"bad duration {text!r}: use e.g. 30s, 5m, 1h")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


def parse_rate(text: Any) -> tuple[int, float]:
    """Return (count, seconds) for ``1/s``, ``20/m``, ``100/h`` or ``5/10s``."""
    m = _RATE.match(str(text))
    if not m or int(m.group(1)) < 1:
        raise ValueError(f"bad rate {text!r}: use e.g. 1/s, 20/m, 100/h")
    per = int(m.group(2) or 1) * {"s": 1, "m": 60, "h": 3600}[m.group(3)]
    return int(m.group(1)), float(per)


class _Loader:
    """Collects problems while walking YAML nodes that remember their lines."""

    def __init__(self, root: Path, env: Mapping[str, str]) -> None:
        self.root = root
        self.env = env
        self.problems: list[tuple[str, int, int, str]] = []
        self.yaml = YAML(typ="rt")
        self.yaml.preserve_quotes = True  # to map a query's columns into the file

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)

    def error(self, path: Path, pos: tuple[int, int], message: str) -> None:
        self.problems.append((self.rel(path), pos[0] + 1, pos[1] + 1, message))

    def load(self, path: Path, *, required: bool = True) -> Any:
        if not path.is_file():
            if required:
                self.error(path, (0, 0), "file not found")
            return None
        try:
            return self.yaml.load(path.read_text(encoding="utf-8"))
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            pos = (mark.line, mark.column) if mark else (0, 0)
            self.error(path, pos, f"YAML syntax error: {exc.problem or exc.context}")
        except (UnicodeDecodeError, OSError) as exc:
            self.error(path, (0, 0), f"cannot read: {exc}")
        return None

    @staticmethod
    def key_pos(node: Any, key: Any) -> tuple[int, int]:
        try:
            line, col = node.lc.key(key)
            return int(line), int(col)
        except (AttributeError, KeyError, TypeError):
            return _Loader.pos(node)

    @staticmethod
    def value_pos(node: Any, key: Any) -> tuple[int, int]:
        try:
            if isinstance(node, CommentedSeq):
                line, col = node.lc.item(key)
            else:
                line, col = node.lc.value(key)
            return int(line), int(col)
        except (AttributeError, KeyError, TypeError, IndexError):
            return _Loader.pos(node)

    @staticmethod
    def pos(node: Any) -> tuple[int, int]:
        lc = getattr(node, "lc", None)
        return (int(lc.line), int(lc.col)) if lc is not None and lc.line is not None else (0, 0)

    def mapping(self, path: Path, node: Any, what: str, allowed: set[str],
                required: set[str] = frozenset()) -> CommentedMap | None:  # type: ignore[assignment]
        """Check that ``node`` is a mapping with only ``allowed`` and all ``required`` keys."""
        if not isinstance(node, CommentedMap):
            self.error(path, self.pos(node), f"{what} must be a mapping")
            return None
        for key in node:
            if str(key) not in allowed:
                hint = ", ".join(sorted(allowed))
                self.error(path, self.key_pos(node, key), f"unknown key {key!r} in {what} (allowed: {hint})")
        for key in sorted(required - {str(k) for k in node}):
            self.error(path, self.pos(node), f"{what}: missing required key {key!r}")
        return node

    def strings(self, path: Path, node: CommentedMap, key: str) -> tuple[str, ...]:
        """Return a list-of-strings value (a lone string counts as a list of one)."""
        value = node.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        if isinstance(value, CommentedSeq) and all(isinstance(v, (str, int, float)) for v in value):
            return tuple(str(v) for v in value)
        self.error(path, self.value_pos(node, key), f"{key!r} must be a list of strings")
        return ()

    def convert(self, path: Path, node: CommentedMap, key: str, fn: Any, default: Any) -> Any:
        if key not in node or node[key] is None:
            return default
        try:
            return fn(node[key])
        except (ValueError, TypeError) as exc:
            self.error(path, self.value_pos(node, key), f"{key}: {exc}")
            return default

    def interpolate(self, path: Path, node: Any, key: Any, text: str) -> tuple[str, list[str]]:
        """Replace ``${VAR}`` / ``${VAR:-default}``; report missing variables by name."""
        secrets: list[str] = []

        def sub(m: re.Match[str]) -> str:
            value = self.env.get(m.group(1))
            if value is None:
                if m.group(2) is not None:
                    return m.group(2)
                self.error(path, self.value_pos(node, key),
                           f"environment variable {m.group(1)} is not set")
                return ""
            secrets.append(value)
            return value

        return _ENV.sub(sub, text), [s for s in secrets if len(s) >= 4]


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"must be a whole number ≥ 0, not {value!r}")
    return value


def _choice(options: tuple[str, ...]) -> Any:
    def check(value: Any) -> str:
        if str(value) not in options:
            raise ValueError(f"must be one of {', '.join(options)}, not {value!r}")
        return str(value)

    return check


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {value!r}")
    return value


_FULLTEXT_KEYS = ("fulltext", "fulltext_min_words", "fulltext_deadline")


def _deadline(value: Any) -> float:
    # A poll holds its feed's lease (LEASE_TTL, 2 min) while its items wait for articles.
    seconds = parse_duration(value)
    if not 0 < seconds <= 60:
        raise ValueError(f"must be more than 0 and at most 1m, not {value!r}")
    return seconds


def _load_feeds(ld: _Loader) -> tuple[tuple[Feed, ...], bool]:
    path = ld.root / "feeds.yaml"
    doc = ld.load(path)
    if doc is None:
        return (), False
    top = ld.mapping(path, doc, "feeds.yaml", {"defaults", "allow_private_networks", "feeds"}, {"feeds"})
    if top is None:
        return (), False
    defaults = top.get("defaults") or CommentedMap()
    ld.mapping(path, defaults, "defaults", {"interval", "backfill", *_FULLTEXT_KEYS})
    d_interval = ld.convert(path, defaults, "interval", parse_duration, 300.0)
    d_backfill = ld.convert(path, defaults, "backfill", _positive_int, 0)
    d_fulltext = ld.convert(path, defaults, "fulltext", _choice(FULLTEXT_MODES), "auto")
    d_min_words = ld.convert(path, defaults, "fulltext_min_words", _positive_int, 120)
    d_deadline = ld.convert(path, defaults, "fulltext_deadline", _deadline, 10.0)
    allow_private = ld.convert(path, top, "allow_private_networks", _bool, False)
    entries = top.get("feeds")
    if not isinstance(entries, CommentedSeq):
        ld.error(path, ld.value_pos(top, "feeds"), "'feeds' must be a list")
        return (), allow_private
    feeds: list[Feed] = []
    seen: set[str] = set()
    allowed = {"id", "url", "tags", "interval", "backfill", *_FULLTEXT_KEYS}
    for node in entries:
        if ld.mapping(path, node, "feed", allowed, {"id", "url"}) is None:
            continue
        fid, url = str(node.get("id", "")), str(node.get("url", ""))
        if not _ID.match(fid):
            ld.error(path, ld.value_pos(node, "id"), f"feed id {fid!r} may hold only letters, digits, '-', '_', '.'")
        elif fid in seen:
            ld.error(path, ld.value_pos(node, "id"), f"duplicate feed id {fid!r}")
        seen.add(fid)
        if not re.match(r"^https?://[^/\s]+", url):
            ld.error(path, ld.value_pos(node, "url"), f"feed url must be http(s)://…, not {url!r}")
        interval = ld.convert(path, node, "interval", parse_duration, d_interval)
        if interval < 1:
            ld.error(path, ld.value_pos(node, "interval"), "interval must be at least 1s")
        feeds.append(Feed(
            id=fid, url=url, tags=ld.strings(path, node, "tags"), interval=interval,
            backfill=ld.convert(path, node, "backfill", _positive_int, d_backfill),
            fulltext=ld.convert(path, node, "fulltext", _choice(FULLTEXT_MODES), d_fulltext),
            fulltext_min_words=ld.convert(path, node, "fulltext_min_words", _positive_int,
                                          d_min_words),
            fulltext_deadline=ld.convert(path, node, "fulltext_deadline", _deadline, d_deadline),
        ))
    return tuple(feeds), allow_private


def _checked(check: Any) -> Any:
    """Return a converter that keeps a string setting after ``check`` accepted it."""
    def convert(value: Any) -> str:
        check(str(value))
        return str(value)

    return convert


def _load_destinations(ld: _Loader) -> dict[str, Destination]:
    path = ld.root / "destinations.yaml"
    doc = ld.load(path)
    if doc is None:
        return {}
    if not isinstance(doc, CommentedMap):
        ld.error(path, ld.pos(doc), "destinations.yaml must map destination names to settings")
        return {}
    allowed = {"url", "rate", "digest_after", "quiet_hours", "digest", "format", "tag",
               "template", "on_failure"}
    out: dict[str, Destination] = {}
    for name, node in doc.items():
        if ld.mapping(path, node, f"destination {name!r}", allowed, {"url"}) is None:
            continue
        url, secrets = ld.interpolate(path, node, "url", str(node.get("url") or ""))
        if "://" not in url and not any(p[3].startswith("environment variable") for p in ld.problems):
            ld.error(path, ld.value_pos(node, "url"), f"destination {name!r}: url must be an apprise URL (scheme://…)")
        out[str(name)] = Destination(
            name=str(name), url=url, secrets=tuple(secrets),
            rate=ld.convert(path, node, "rate", parse_rate, None),
            digest_after=ld.convert(path, node, "digest_after", _positive_int, None),
            quiet_hours=ld.convert(path, node, "quiet_hours", _checked(parse_quiet_hours), None),
            digest=ld.convert(path, node, "digest", _checked(parse_digest), None),
            format=ld.convert(path, node, "format", _choice(MESSAGE_FORMATS), None),
            tag=ld.convert(path, node, "tag", str, None),
            template=ld.convert(path, node, "template", _checked(check_template), None),
            on_failure=ld.convert(path, node, "on_failure", str, None),
        )
    for name, node in doc.items():
        target = out.get(str(name)) and out[str(name)].on_failure
        if target and target not in out:
            ld.error(path, ld.value_pos(node, "on_failure"), f"on_failure: unknown destination {target!r}")
    return out


def _aliases(ld: _Loader, path: Path, node: Any) -> dict[str, tuple[str, ...]]:
    if node is None:
        return {}
    if not isinstance(node, CommentedMap):
        ld.error(path, ld.pos(node), "aliases must map a term to a list of alternatives")
        return {}
    return {str(term): ld.strings(path, node, term) for term in node}


def _load_rule(ld: _Loader, path: Path, wid: str, node: Any, index: int,
               aliases: tuple[tuple[str, tuple[str, ...]], ...]) -> RuleSpec | None:
    allowed = {"id", "all", "any", "none", "query", "in"}
    if ld.mapping(path, node, "rule", allowed) is None:
        return None
    fields = ld.strings(path, node, "in")
    for f in fields:
        if f not in TEXT_FIELDS:
            ld.error(path, ld.value_pos(node, "in"), f"unknown field {f!r} in 'in' (fields: {', '.join(TEXT_FIELDS)})")
    spec = RuleSpec(
        watchlist=wid, id=str(node.get("id") or f"rule-{index + 1}"),
        query=str(node["query"]) if node.get("query") is not None else None,
        all=ld.strings(path, node, "all"), any=ld.strings(path, node, "any"),
        none=ld.strings(path, node, "none"), fields=fields, aliases=aliases,
    )
    if spec.query is not None and (spec.all or spec.any or spec.none):
        ld.error(path, ld.pos(node), f"rule {spec.id!r}: use either 'query' or all/any/none, not both")
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
            quoted = 1 if _is_quoted(node, "query") else 0
            ld.error(path, (line, col + quoted + exc.column - 1), f"rule {spec.id!r}: {exc.message}")
        else:
            ld.error(path, ld.pos(node), f"rule {spec.id!r}: {exc.message}")
        return None
    return spec


def _is_quoted(node: CommentedMap, key: str) -> bool:
    value = node.get(key)
    return type(value).__name__ in ("SingleQuotedScalarString", "DoubleQuotedScalarString")


def _load_watchlist(ld: _Loader, path: Path, shared_aliases: dict[str, tuple[str, ...]],
                    destinations: Mapping[str, Destination], feed_ids: set[str]) -> Watchlist | None:
    doc = ld.load(path)
    if doc is None:
        return None
    allowed = {"name", "notify", "feeds", "aliases", "rules", "examples", "urgent"}
    if ld.mapping(path, doc, "watchlist", allowed, {"notify", "rules"}) is None:
        return None
    wid = path.stem
    notify = ld.strings(path, doc, "notify")
    for dest in notify:
        if dest not in destinations:
            ld.error(path, ld.value_pos(doc, "notify"), f"unknown destination {dest!r} (defined: {', '.join(destinations) or 'none'})")
    scope = doc.get("feeds") or CommentedMap()
    ld.mapping(path, scope, "feeds scope", {"ids", "tags"})
    ids = ld.strings(path, scope, "ids") if isinstance(scope, CommentedMap) else ()
    for fid in ids:
        if fid not in feed_ids:
            ld.error(path, ld.value_pos(scope, "ids"), f"unknown feed id {fid!r}")
    aliases = {**shared_aliases, **_aliases(ld, path, doc.get("aliases"))}
    alias_spec = tuple(sorted(aliases.items()))
    rules_node = doc.get("rules")
    rules: list[RuleSpec] = []
    if not isinstance(rules_node, CommentedSeq) or not rules_node:
        ld.error(path, ld.value_pos(doc, "rules"), "'rules' must be a non-empty list")
    else:
        for i, node in enumerate(rules_node):
            spec = _load_rule(ld, path, wid, node, i, alias_spec)
            if spec and any(r.id == spec.id for r in rules):
                ld.error(path, ld.pos(node), f"duplicate rule id {spec.id!r}")
            elif spec:
                rules.append(spec)
    examples = doc.get("examples") or CommentedMap()
    ld.mapping(path, examples, "examples", {"should_match", "should_not_match"})

    def lined(key: str) -> tuple[tuple[str, int], ...]:
        if not isinstance(examples, CommentedMap):
            return ()
        texts = ld.strings(path, examples, key)
        seq = examples.get(key)
        return tuple((t, ld.value_pos(seq, i)[0] + 1 if isinstance(seq, CommentedSeq) else 0)
                     for i, t in enumerate(texts))

    return Watchlist(
        id=wid, name=str(doc.get("name") or wid), path=ld.rel(path), notify=notify,
        rules=tuple(rules), feed_ids=ids,
        feed_tags=ld.strings(path, scope, "tags") if isinstance(scope, CommentedMap) else (),
        urgent=ld.convert(path, doc, "urgent", _bool, False),
        should_match=lined("should_match"), should_not_match=lined("should_not_match"),
    )


def load_config(root: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Load and validate a config directory; raise ``ConfigError`` listing every problem."""
    root_path = Path(root).resolve()
    ld = _Loader(root_path, os.environ if env is None else env)
    if not root_path.is_dir():
        raise ConfigError([(str(root), 1, 1, "config directory not found")])
    feeds, allow_private = _load_feeds(ld)
    destinations = _load_destinations(ld)
    aliases_path = root_path / "aliases.yaml"
    shared_aliases = _aliases(ld, aliases_path, ld.load(aliases_path, required=False))
    feed_ids = {f.id for f in feeds}
    watchlists = []
    for path in sorted((root_path / "watchlists").glob("*.yaml")):
        if not _ID.match(path.stem):
            ld.error(path, (0, 0), f"watchlist file name {path.name!r}: use letters, digits, '-', '_'")
            continue
        wl = _load_watchlist(ld, path, shared_aliases, destinations, feed_ids)
        if wl is not None:
            watchlists.append(wl)
    if ld.problems:
        raise ConfigError(ld.problems)
    return Config(
        root=str(root_path), version=config_version(root_path), feeds=feeds,
        watchlists=tuple(watchlists), destinations=destinations,
        allow_private_networks=allow_private,
    )
