"""Append feeds to ``feeds.yaml``, keeping its comments and order (``import-opml``, ``add-feed``).

Decisions:

- The file is edited in ruamel.yaml's round-trip mode (through
  ``worker.yamlfile``), so its comments, key order and indentation stay as
  they were and new feeds are appended at the end of ``feeds:``. The result
  is validated with ``load_config`` before it replaces the file; an invalid
  result leaves the file untouched.
- A feed whose URL (canonicalised) is already in the file, or earlier in the
  same batch, is not added again: the result names the id that has it.
- Ids not given are the feed's title (else the URL's host) slugified: ASCII,
  lower case, ``-`` between words, at most 48 characters, made unique with
  ``-2``, ``-3``… An id given explicitly must be free.
- What a new feed is fetched with (``fetch:`` limits, ``allow_private_networks``)
  comes from ``feeds.yaml`` alone: an unset ``${SECRET}`` in
  ``destinations.yaml`` does not stop anyone adding a feed.
- New feeds get only the keys given: the file's ``defaults:`` apply, and with
  the default ``backfill: 0`` their first poll alerts nobody.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from worker.config import load_config
from worker.config.feeds import load_feeds
from worker.config.schema import Checker
from worker.config.yamlfile import is_map, is_seq, new_map, new_seq, roundtrip_load
from worker.errors import ConfigError
from worker.poll.identity import canonical_url

__all__ = ["AppendResult", "NewFeed", "append_feeds", "fetch_policy", "slugify"]

MAX_ID = 48


@dataclass(frozen=True)
class NewFeed:
    """A feed to append: its URL, and what to call and tag it."""

    url: str
    title: str = ""
    id: str = ""  # empty: derived from the title, else the URL's host
    tags: tuple[str, ...] = ()
    interval: str = ""  # empty: the file's ``defaults:``


@dataclass
class AppendResult:
    """What an append did: ids added, (url, id holding it) already there, non-http(s) URLs."""

    added: list[str] = field(default_factory=list)
    already: list[tuple[str, str]] = field(default_factory=list)
    invalid: int = 0

    @property
    def present(self) -> int:
        return len(self.already)


def slugify(text: str) -> str:
    """Return ``text`` as a feed id: ASCII letters and digits joined by ``-``."""
    ascii_ = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_.lower()).strip("-")
    return slug[:MAX_ID].rstrip("-")


def _unique(base: str, taken: set[str]) -> str:
    fid, n = base, 2
    while fid in taken:
        fid = f"{base[: MAX_ID - len(str(n)) - 1]}-{n}"
        n += 1
    taken.add(fid)
    return fid


def append_feeds(config_dir: str | os.PathLike[str], feeds: Iterable[NewFeed]) -> AppendResult:
    """Append the new ones of ``feeds`` to ``config_dir/feeds.yaml``; return what was done."""
    path = Path(config_dir) / "feeds.yaml"
    original = path.read_text(encoding="utf-8") if path.is_file() else "feeds: []\n"
    doc, dump = roundtrip_load(original)
    if doc is None:
        doc = new_map()
    if not is_map(doc):
        raise ConfigError([(str(path), 1, 1, "feeds.yaml must be a mapping")])
    if not is_seq(doc.get("feeds")):
        doc["feeds"] = new_seq()
    entries = doc["feeds"]
    held = {canonical_url(str(e.get("url", ""))): str(e.get("id")) for e in entries if is_map(e)}
    ids = set(held.values())
    result = AppendResult()
    for feed in feeds:
        if not re.match(r"^https?://[^/\s]+", feed.url, re.IGNORECASE):
            result.invalid += 1
            continue
        key = canonical_url(feed.url)
        if key in held:
            result.already.append((feed.url, held[key]))
            continue
        if feed.id and feed.id in ids:
            raise ConfigError([(str(path), 1, 1, f"feed id {feed.id!r} is already used")])
        derived = slugify(feed.title) or slugify(urlsplit(feed.url).hostname or "") or "feed"
        held[key] = fid = _unique(feed.id or derived, ids)
        entries.append(_entry(fid, feed))
        result.added.append(fid)
    if result.added:
        _replace(path, dump, doc, original)
    return result


def fetch_policy(config_dir: str | os.PathLike[str]) -> tuple[dict[str, float], bool]:
    """Return ``feeds.yaml``'s fetch settings and ``allow_private_networks``.

    Raises ``ConfigError`` for problems in ``feeds.yaml``, and only there.
    """
    checker = Checker(Path(config_dir).resolve(), os.environ)
    loaded = load_feeds(checker)
    allow_private, fetch = loaded.allow_private, loaded.fetch
    if checker.problems:
        raise ConfigError(checker.problems)
    return fetch, allow_private


def _entry(fid: str, feed: NewFeed) -> Any:
    entry = new_map(id=fid, url=feed.url)
    if feed.tags:
        entry["tags"] = new_seq(feed.tags, flow=True)
    if feed.interval:
        entry["interval"] = feed.interval
    return entry


def _replace(path: Path, dump: Callable[[Any, IO[str]], None], doc: Any, original: str) -> None:
    """Write ``doc`` over ``path`` atomically, keeping the old file if the result is invalid."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".feeds.", suffix=".yaml")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        dump(doc, fh)
    os.replace(tmp, path)
    try:
        load_config(path.parent)
    except ConfigError as exc:
        # Problems elsewhere (an unset ${SECRET} in destinations.yaml) are not ours to judge.
        ours = [p for p in exc.problems if Path(p[0]).name == "feeds.yaml"]
        if ours:
            path.write_text(original, encoding="utf-8")
            raise ConfigError(ours) from None
