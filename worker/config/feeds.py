"""The ``feeds.yaml`` section of a config: feeds, their defaults and fetch limits."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

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


Feeds = tuple[tuple[Feed, ...], bool, dict[str, float], StorySettings]


def load_feeds(ld: Checker) -> Feeds:
    path = ld.root / "feeds.yaml"
    doc = ld.load(path)
    if doc is None:
        return (), False, {}, StorySettings()
    top = ld.mapping(
        path,
        doc,
        "feeds.yaml",
        {"defaults", "allow_private_networks", "fetch", "feeds", "stories"},
        {"feeds"},
    )
    if top is None:
        return (), False, {}, StorySettings()
    fetch = _fetch_settings(ld, path, top)
    stories = load_stories(ld, path, top, StorySettings())
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
