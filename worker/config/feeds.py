"""The ``feeds.yaml`` section of a config: feeds, their defaults and fetch limits."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from worker.config.archive import ARCHIVE_KEYS, archive_settings
from worker.config.schema import (
    Checker,
    boolean,
    choice,
    parse_duration,
    parse_size,
    positive_int,
)
from worker.config.settings import (
    FULLTEXT_MODES,
    ID_PATTERN,
    Feed,
    StorySettings,
)
from worker.config.stories import load_stories
from worker.config.watchlists import load_languages
from worker.config.yamlfile import Map, Seq

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


def _interval(value: Any) -> float | None:
    return None if str(value).strip().lower() == "auto" else parse_duration(value)


_SCHEDULE_KEYS = {
    "interval": _interval,
    "min_interval": parse_duration,
    "max_interval": parse_duration,
}


def _schedule(ld: Checker, path: Path, node: Map, defaults: dict[str, Any]) -> dict[str, Any]:
    """Return a feed's (or the defaults') interval settings: ``auto`` is None."""
    out = {
        key: ld.convert(path, node, key, read, defaults[key])
        for key, read in _SCHEDULE_KEYS.items()
    }
    for key in _SCHEDULE_KEYS:
        if out[key] is not None and out[key] < 1:
            ld.error(path, ld.value_pos(node, key), f"{key} must be at least 1s")
    if out["min_interval"] > out["max_interval"]:
        ld.error(path, ld.value_pos(node, "min_interval"), "min_interval exceeds max_interval")
    return out


def _websub_callback(ld: Checker, path: Path, top: Map) -> str | None:
    node = top.get("websub")
    if node is None or ld.mapping(path, node, "websub", {"callback"}) is None:
        return None
    url = ld.convert(path, node, "callback", str, None)
    if url is not None and not re.match(r"^https?://[^/\s]+", url):
        ld.error(
            path,
            ld.value_pos(node, "callback"),
            f"websub callback must be http(s)://…, not {url!r}",
        )
    return url.rstrip("/") if url else None


_TOP = {"defaults", "allow_private_networks", "fetch", "feeds", "websub", "languages", "stories"}


@dataclass(frozen=True)
class FeedsFile:
    """What ``feeds.yaml`` holds: the feeds and the top-level settings beside them."""

    feeds: tuple[Feed, ...] = ()
    allow_private: bool = False
    fetch: dict[str, float] = field(default_factory=dict)
    websub_callback: str | None = None
    languages: tuple[str, ...] = ()
    archive: tuple[float, int] = (0.0, 0)
    stories: StorySettings = field(default_factory=StorySettings)


def load_feeds(ld: Checker) -> FeedsFile:
    """Read ``feeds.yaml``: every feed with its defaults applied, and the top-level settings."""
    path = ld.root / "feeds.yaml"
    doc = ld.load(path)
    top = (
        None
        if doc is None
        else ld.mapping(path, doc, "feeds.yaml", {*_TOP, *ARCHIVE_KEYS}, {"feeds"})
    )
    archive = archive_settings(ld, path, top)
    if top is None:
        return FeedsFile(archive=archive)
    settings = FeedsFile(
        allow_private=ld.convert(path, top, "allow_private_networks", boolean, False),
        fetch=_fetch_settings(ld, path, top),
        websub_callback=_websub_callback(ld, path, top),
        languages=load_languages(ld, path, top, ()),
        stories=load_stories(ld, path, top, StorySettings()),
        archive=archive,
    )
    entries = top.get("feeds")
    if entries is None:  # "feeds:" with nothing under it yet
        entries = Seq()
    if not isinstance(entries, Seq):
        ld.error(path, ld.value_pos(top, "feeds"), "'feeds' must be a list")
        return settings
    return replace(settings, feeds=_feeds(ld, path, entries, _defaults(ld, path, top)))


def _defaults(ld: Checker, path: Path, top: Map) -> dict[str, Any]:
    """Return the ``defaults:`` every feed starts from."""
    defaults = top.get("defaults") or Map()
    ld.mapping(path, defaults, "defaults", {*_SCHEDULE_KEYS, "backfill", *_FULLTEXT_KEYS})
    return {
        "schedule": _schedule(
            ld, path, defaults, {"interval": None, "min_interval": 60.0, "max_interval": 1800.0}
        ),
        "backfill": ld.convert(path, defaults, "backfill", positive_int, 0),
        "fulltext": ld.convert(path, defaults, "fulltext", choice(FULLTEXT_MODES), "auto"),
        "fulltext_min_words": ld.convert(path, defaults, "fulltext_min_words", positive_int, 120),
        "fulltext_deadline": ld.convert(path, defaults, "fulltext_deadline", _deadline, 10.0),
    }


def _feeds(ld: Checker, path: Path, entries: Seq, d: dict[str, Any]) -> tuple[Feed, ...]:
    """Return the feeds of the ``feeds:`` list, reporting every bad or duplicate entry."""
    feeds: list[Feed] = []
    seen: set[str] = set()
    allowed = {"id", "url", "tags", *_SCHEDULE_KEYS, "backfill", *_FULLTEXT_KEYS}
    for node in entries:
        if ld.mapping(path, node, "feed", allowed, {"id", "url"}) is None:
            continue
        fid, url = str(node.get("id", "")), str(node.get("url", ""))
        if not ID_PATTERN.match(fid):
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
        feeds.append(
            Feed(
                id=fid,
                url=url,
                tags=ld.strings(path, node, "tags"),
                **_schedule(ld, path, node, d["schedule"]),
                backfill=ld.convert(path, node, "backfill", positive_int, d["backfill"]),
                fulltext=ld.convert(path, node, "fulltext", choice(FULLTEXT_MODES), d["fulltext"]),
                fulltext_min_words=ld.convert(
                    path, node, "fulltext_min_words", positive_int, d["fulltext_min_words"]
                ),
                fulltext_deadline=ld.convert(
                    path, node, "fulltext_deadline", _deadline, d["fulltext_deadline"]
                ),
            )
        )
    return tuple(feeds)
