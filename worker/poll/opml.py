"""Import the feeds of an OPML export into ``feeds.yaml``.

Decisions:

- Feeds are appended by ``worker.poll.feedsfile`` (comments and order kept, the
  result validated, URLs already there skipped, ids from titles), as
  ``add-feed`` appends its one feed.
- Outlines without an http(s) ``xmlUrl`` are skipped. An outline's title is
  ``title``, else ``text``. Enclosing outlines (OPML folders) become tags.
- New feeds get no ``interval`` or ``backfill``: the file's ``defaults:``
  apply, and with the default ``backfill: 0`` their first poll alerts
  nobody, so importing 200 feeds floods no one.
- OPML with a DTD internal subset (entity declarations) is refused: no
  export needs one, and it is how entity-expansion attacks arrive.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from worker.core.logs import progress
from worker.errors import ConfigError
from worker.poll.feedsfile import AppendResult, NewFeed, append_feeds, slugify

__all__ = ["OpmlFeed", "import_opml", "read_opml"]


@dataclass(frozen=True)
class OpmlFeed:
    """One feed outline of an OPML file."""

    title: str
    url: str
    tags: tuple[str, ...] = ()


def read_opml(data: bytes) -> list[OpmlFeed]:
    """Return the feed outlines of an OPML document, in document order."""
    if re.search(rb"<!DOCTYPE[^>]*\[", data[:4096], re.IGNORECASE) or b"<!ENTITY" in data:
        raise ConfigError([("OPML", 1, 1, "OPML with entity declarations is refused")])
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ConfigError([("OPML", *exc.position, f"not valid XML: {exc}")]) from None
    body = root.find("body")
    if root.tag != "opml" or body is None:
        raise ConfigError([("OPML", 1, 1, "not an OPML document (no <opml><body>)")])
    feeds: list[OpmlFeed] = []

    def walk(node: ET.Element, tags: tuple[str, ...]) -> None:
        for outline in node.findall("outline"):
            title = (outline.get("title") or outline.get("text") or "").strip()
            url = (outline.get("xmlUrl") or "").strip()
            if url:
                feeds.append(OpmlFeed(title, url, tags))
            else:  # a folder: its name tags the feeds inside
                tag = slugify(title)
                walk(outline, (*tags, tag) if tag else tags)

    walk(body, ())
    return feeds


def import_opml(opml: str | os.PathLike[str], config_dir: str | os.PathLike[str]) -> AppendResult:
    """Append the OPML's new feeds to ``config_dir/feeds.yaml``; return what was done."""
    outlines = progress(read_opml(Path(opml).read_bytes()), "importing")
    return append_feeds(config_dir, (NewFeed(f.url, f.title, tags=f.tags) for f in outlines))
