"""Import the feeds of an OPML export into ``feeds.yaml``.

Decisions:

- The file is edited in ruamel.yaml's round-trip mode (through
  ``worker.config.yamlfile``), so its comments, key order and indentation stay as
  they were and new feeds are appended at the end of ``feeds:``. The result is validated with ``load_config`` before it replaces the file;
  an invalid result leaves the file untouched.
- A feed whose URL (canonicalised) is already in the file, or earlier in the
  OPML, is skipped. Outlines without an http(s) ``xmlUrl`` are skipped too.
- Ids are the outline's title (``title``, else ``text``, else the URL's
  host) slugified: ASCII, lower case, ``-`` between words, at most 48
  characters, made unique with ``-2``, ``-3``… Enclosing outlines (OPML
  folders) become tags.
- New feeds get no ``interval`` or ``backfill``: the file's ``defaults:``
  apply, and with the default ``backfill: 0`` their first poll alerts
  nobody, so importing 200 feeds floods no one.
- OPML with a DTD internal subset (entity declarations) is refused: no
  export needs one, and it is how entity-expansion attacks arrive.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from worker.config import load_config
from worker.config.yamlfile import is_map, is_seq, new_map, new_seq, roundtrip_load
from worker.core.logs import progress
from worker.errors import ConfigError
from worker.poll.identity import canonical_url

__all__ = ["ImportResult", "OpmlFeed", "import_opml", "read_opml", "slugify"]

MAX_ID = 48


@dataclass(frozen=True)
class OpmlFeed:
    """One feed outline of an OPML file."""

    title: str
    url: str
    tags: tuple[str, ...] = ()


@dataclass
class ImportResult:
    """What an import did."""

    added: list[str] = field(default_factory=list)
    present: int = 0
    invalid: int = 0


def slugify(text: str) -> str:
    """Return ``text`` as a feed id: ASCII letters and digits joined by ``-``."""
    ascii_ = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_.lower()).strip("-")
    return slug[:MAX_ID].rstrip("-")


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


def _unique(base: str, taken: set[str]) -> str:
    fid, n = base, 2
    while fid in taken:
        fid = f"{base[: MAX_ID - len(str(n)) - 1]}-{n}"
        n += 1
    taken.add(fid)
    return fid


def import_opml(opml: str | os.PathLike[str], config_dir: str | os.PathLike[str]) -> ImportResult:
    """Append the OPML's new feeds to ``config_dir/feeds.yaml``; return what was done."""
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
    urls = {canonical_url(str(e.get("url", ""))) for e in entries if is_map(e)}
    ids = {str(e.get("id")) for e in entries if is_map(e)}
    result = ImportResult()
    for feed in progress(read_opml(Path(opml).read_bytes()), "importing"):
        if not re.match(r"^https?://[^/\s]+", feed.url, re.IGNORECASE):
            result.invalid += 1
            continue
        key = canonical_url(feed.url)
        if key in urls:
            result.present += 1
            continue
        urls.add(key)
        fid = _unique(
            slugify(feed.title) or slugify(urlsplit(feed.url).hostname or "") or "feed", ids
        )
        entry = new_map(id=fid, url=feed.url)
        if feed.tags:
            entry["tags"] = new_seq(feed.tags, flow=True)
        entries.append(entry)
        result.added.append(fid)
    if result.added:
        _replace(path, dump, doc, original)
    return result


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
