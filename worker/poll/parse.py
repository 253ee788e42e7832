"""Parse feed bytes (RSS 0.9x/1.0/2.0, Atom, JSON Feed 1.0/1.1) into ``Item``s.

The only module that imports feedparser. It never lets feedparser fetch or open anything:
bytes go in through ``io.BytesIO`` (feedparser treats a plain ``bytes``/``str`` argument as a
possible file name or URL).

Decisions and limits:

- **Encoding.** A UTF-8 BOM is dropped; UTF-16/32 documents are transcoded to
  UTF-8 here. When the declared encoding is UTF-8 (or nothing is declared)
  and the body is *mostly* valid UTF-8 (more valid multi-byte sequences than
  invalid bytes), it is decoded with ``errors="replace"`` so one bad byte
  costs one U+FFFD instead of the whole feed being read as windows-1252.
  Anything else is left to feedparser's own detection.
- **Leading whitespace** before ``<?xml`` is removed (a common server bug
  that otherwise makes the feed bozo).
- **DTD internal subsets are removed** before parsing, whatever they hold.
  No feed needs its own entities, and this defuses billion-laughs and XXE
  without relying on expat's amplification limit: references to the removed
  entities become "undefined entity" errors, feedparser falls back to its
  loose parser, and the reference stays as literal text (``&lol9;``).
- **Bounded cost.** Bodies over ``MAX_PARSE_BYTES`` raise ``FeedError``
  (reason ``too_large``). A feed with more than ``MAX_ITEMS`` entries is cut
  before parsing to its first ``MAX_ITEMS`` (feeds list newest first) and the
  result carries a warning. Deep nesting is not bounded beyond the byte cap.
- **Broken feeds** keep their entries with ``warning`` set (feedparser's bozo
  reason); only "no entries and bozo/not a feed" raises ``FeedError``
  (reason ``parse``). A well-formed feed with no entries is not an error.
- **Text** fields are plain text through ``worker.rules.html_to_text``; text
  that still looks like markup after a pass (HTML escaped twice) gets
  another pass, at most three. Links are kept only when http(s), resolved against
  xml:base, else the feed URL if it is http(s), else the channel's own ``<link>`` (a
  saved file); relative links that none of these can resolve are counted in the
  warning. Items with the same id within one feed are dropped after the first.
- **Ids** come from ``worker.poll.identity``. If one GUID is shared by items with
  different links, the feed's GUIDs are not identities and links are used for
  the whole feed. ``prescan_item_ids`` gives the same ids as ``parse_feed``
  from a cheap ``xml.etree`` pass, or ``None`` when it cannot be sure.
"""

from __future__ import annotations

import calendar
import codecs
import io
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import feedparser

from worker.errors import FailureReason, FeedError
from worker.model import Item
from worker.poll import dates, identity

__all__ = ["ParsedFeed", "parse_feed", "prescan_ids", "prescan_item_ids"]

MAX_ITEMS = 5000
MAX_PARSE_BYTES = 16 * 1024 * 1024

_UTF8 = {"utf-8", "utf8", "utf_8"}
_XML_DECL = re.compile(rb"^<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']")
_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
_SUBSET_END = re.compile(rb"\[(?:[^\]\"']|\"[^\"]*\"|'[^']*')*\]\s*>")
_FIRST_ELEMENT = re.compile(rb"<[A-Za-z_]")
_ITEM_START = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:item|entry)[\s/>]")
_MARKUP = re.compile(r"<(?:/?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?|!--)>?")
_FP_OPTIONS = {"sanitize_html": False, "resolve_relative_uris": False}  # we strip HTML ourselves
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)
_HTML_TYPES = {"text/html", "application/xhtml+xml", "html", "xhtml"}


@dataclass(frozen=True)
class ParsedFeed:
    """A parsed feed: its title, its items and how it parsed."""

    title: str
    items: list[Item]
    warning: str | None = None
    ttl: int | None = None
    format: str = ""


def _html_to_text(html: str) -> str:
    # Lazily: the rule engine owns HTML stripping; the fetch/parse path must not load it.
    from worker.rules import html_to_text

    return html_to_text(html)


def _plain(value: str | None, html: bool) -> str:
    """Return ``value`` as plain text, stripping HTML (again while it still looks like markup)."""
    text = (value or "").strip()
    # Feeds escape HTML once per layer of CMS/aggregator; three layers seen in the wild.
    passes = 0
    while ((html and passes == 0) or _MARKUP.search(text)) and passes < 3:
        text = _html_to_text(text)
        passes += 1
    return text.strip()


def _charset(headers: Mapping[str, str]) -> str | None:
    match = _CHARSET.search(headers.get("content-type", ""))
    return match.group(1).lower() if match else None


def _prepare_xml(body: bytes, headers: Mapping[str, str]) -> tuple[bytes, list[str], bool]:
    """Return ``body`` repaired for parsing, notes on what changed, and whether it is now UTF-8."""
    notes: list[str] = []
    utf8 = False
    wide = _utf16_or_32(body)
    if wide is not None:
        # Re-label the declaration too, or feedparser would trust it over the bytes.
        wide = re.sub(r"^(\s*<\?xml[^>]*?encoding\s*=\s*[\"'])[^\"']*", r"\1utf-8", wide, count=1)
        body, utf8 = wide.encode("utf-8"), True
    if body.startswith(codecs.BOM_UTF8):
        body, utf8 = body[3:], True
    stripped = body.lstrip(b" \t\r\n")
    if stripped[:1] == b"<" and len(stripped) != len(body):
        body = stripped
    declared = _XML_DECL.match(body)
    charset = _charset(headers)
    if utf8 or (
        (charset or "utf-8") in _UTF8
        and (declared is None or declared.group(1).decode().lower() in _UTF8)
    ):
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            text = body.decode("utf-8", "replace")
            bad = text.count("\ufffd")
            good = sum(1 for ch in text if ch > "\x7f") - bad
            if utf8 or good > bad:
                body, utf8 = text.encode("utf-8"), True
                notes.append(f"{bad} invalid UTF-8 byte sequence(s) replaced")
    body = _strip_internal_subset(body, notes)
    starts = [m.start() for m in _ITEM_START.finditer(body)]
    if len(starts) > MAX_ITEMS:
        body = body[: starts[MAX_ITEMS]]
        notes.append(f"truncated to the first {MAX_ITEMS} of {len(starts)} entries")
    return body, notes, utf8


def _utf16_or_32(body: bytes) -> str | None:
    """Return ``body`` decoded when it is UTF-16/32 (by BOM or a NUL-padded ``<``), else None."""
    for bom, codec in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if body.startswith(bom):
            return body.decode(codec, "replace")
    if body[:2] in (b"<\x00", b"\x00<"):
        return body.decode("utf-16-le" if body[:1] == b"<" else "utf-16-be", "replace")
    return None


def _strip_internal_subset(body: bytes, notes: list[str]) -> bytes:
    """Return ``body`` without a DOCTYPE that has an internal subset (entity declarations)."""
    doctype = _DOCTYPE.search(body)
    first = _FIRST_ELEMENT.search(body)
    if doctype is None or (first is not None and first.start() < doctype.start()):
        return body
    bracket = body.find(b"[", doctype.end())
    close = body.find(b">", doctype.end())
    if bracket == -1 or (close != -1 and close < bracket):
        return body  # external DTD reference only: harmless, nothing is fetched
    # Quote-aware first; a stray apostrophe in a DTD comment falls back to the first "]>".
    end = _SUBSET_END.match(body, bracket) or re.compile(rb"\]\s*>").search(body, bracket)
    if end is None:
        raise FeedError("unterminated DOCTYPE internal subset", reason=FailureReason.PARSE)
    notes.append("DTD internal subset removed")
    return body[: doctype.start()] + body[end.end() :]


def _choose_ids(feed_id: str, records: Sequence[tuple[str, str, str, str]]) -> list[str]:
    """Return one id per (guid, link, title, published) record, distrusting shared GUIDs."""
    links_by_guid: dict[str, set[str]] = {}
    for guid, link, _, _ in records:
        if guid:
            links_by_guid.setdefault(guid, set()).add(link)
    # A GUID repeated with different links is a template bug, not an identity.
    trust = all(len(links) == 1 for links in links_by_guid.values())
    return [
        identity.item_id(feed_id, guid if trust or not link else None, link, title, published)
        for guid, link, title, published in records
    ]


def parse_feed(
    body: bytes, *, feed_id: str, url: str = "", headers: Mapping[str, str] | None = None
) -> ParsedFeed:
    """Parse a fetched feed into items; raise ``FeedError`` when nothing is parseable."""
    if len(body) > MAX_PARSE_BYTES:
        over = f"feed of {len(body)} bytes, over {MAX_PARSE_BYTES}"
        raise FeedError(over, reason=FailureReason.TOO_LARGE)
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    head = body.lstrip(codecs.BOM_UTF8).lstrip()[:1]
    if head in (b"{", b"[") or ("json" in hdrs.get("content-type", "").lower() and head != b"<"):
        return _parse_json_feed(body, feed_id, url)
    data, notes, utf8 = _prepare_xml(body, hdrs)
    # text/* without a charset means us-ascii to feedparser (RFC 3023): never say text/*.
    charset = "utf-8" if utf8 else _charset(hdrs)
    # No content-location: feedparser would resolve opaque GUIDs against it,
    # making ids depend on the feed URL. Links are resolved against ``url`` below.
    fp_headers = {"content-type": "application/xml" + (f"; charset={charset}" if charset else "")}
    parsed = feedparser.parse(io.BytesIO(data), response_headers=fp_headers, **_FP_OPTIONS)
    entries = parsed.entries
    if parsed.get("bozo"):
        notes.insert(0, f"{type(parsed.bozo_exception).__name__}: {parsed.bozo_exception}")
    version = parsed.get("version") or ""
    if not entries and (parsed.get("bozo") or not version):
        why = "; ".join(notes) or "no feed elements"
        raise FeedError(f"not a parseable feed ({why})", reason=FailureReason.PARSE)
    records, resolve = [], identity.LinkResolver(url, parsed.feed.get("link"))
    for entry in entries:
        raw_link = entry.get("link") or ""
        if entry.get("guidislink") and not raw_link.lower().startswith(("http://", "https://")):
            raw_link = ""  # feedparser copied an opaque GUID ("bom-1") into the link
        link = resolve(raw_link)
        # dict.get: FeedParserDict's own get() maps updated→published with a DeprecationWarning.
        published = dict.get(entry, "published") or dict.get(entry, "updated") or ""
        records.append((entry.get("id") or "", link, entry, published))
    items, feed = _build_items(feed_id, records), parsed.feed
    notes += resolve.note()
    ttl = str(feed.get("ttl", "")).strip()  # RSS <ttl> is in minutes
    title = _plain(feed.get("title"), _is_html(feed.get("title_detail")))
    seconds = int(ttl) * 60 if ttl.isdigit() else None
    return ParsedFeed(title, items, "; ".join(notes) or None, seconds, version or "unknown")


def _build_items(feed_id: str, records: list[tuple[str, str, Any, str]]) -> list[Item]:
    """Return ``Item``s for (guid, link, feedparser entry, raw date) records, first id wins."""
    texts = []
    for _, _, entry, _ in records:
        title = _plain(entry.get("title"), _is_html(entry.get("title_detail")))
        summary = _plain(entry.get("summary"), _is_html(entry.get("summary_detail"), True))
        parts = (_plain(c.get("value"), _is_html(c, True)) for c in entry.get("content", []))
        texts.append((title, summary, "\n\n".join(filter(None, parts))))
    # Untitled, undated items without GUID or link are told apart by their text.
    keys = [
        (g, lk, t[0] or ("" if p else t[1] or t[2]), p)
        for (g, lk, _, p), t in zip(records, texts, strict=False)
    ]
    items: list[Item] = []
    seen: set[str] = set()
    for id_, (_, link, entry, _), (title, summary, content) in zip(
        _choose_ids(feed_id, keys), records, texts, strict=False
    ):
        if id_ not in seen:
            seen.add(id_)
            story = identity.story_key(link, id_)
            items.append(
                Item(
                    id=id_,
                    feed=feed_id,
                    title=title,
                    link=link,
                    summary=summary,
                    content=content,
                    published=_epoch(entry),
                    story=story,
                )
            )
    return items


def _is_html(detail: Mapping[str, Any] | None, default: bool = False) -> bool:
    kind = str((detail or {}).get("type") or "").lower()
    return kind in _HTML_TYPES if kind else default


def _epoch(entry: dict[str, Any]) -> float | None:
    if "epoch" in entry:  # a JSON Feed entry, dated by worker.poll.dates
        return float(entry["epoch"]) if entry["epoch"] is not None else None
    for key in ("published_parsed", "updated_parsed"):
        try:  # a missing or unparseable date is None: TypeError
            return float(calendar.timegm(dict.get(entry, key)))  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            continue
    return None


def _parse_json_feed(body: bytes, feed_id: str, url: str) -> ParsedFeed:
    """Parse JSON Feed 1.0/1.1 (https://jsonfeed.org/version/1.1)."""
    try:
        doc = json.loads(body.decode("utf-8-sig", "replace"))
    except (ValueError, RecursionError) as exc:
        raise FeedError(f"invalid JSON: {exc}", reason=FailureReason.PARSE) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
        raise FeedError(
            "JSON document is not a JSON Feed (no items list)", reason=FailureReason.PARSE
        )
    version = str(doc.get("version", ""))
    fmt = "json11" if version.rstrip("/").endswith("1.1") else "json10"
    warning = None if "jsonfeed.org" in version else f"unknown JSON Feed version {version!r}"
    raw = [it for it in doc["items"] if isinstance(it, dict)]
    if len(raw) > MAX_ITEMS:
        warning = f"truncated to the first {MAX_ITEMS} of {len(raw)} entries"
        raw = raw[:MAX_ITEMS]
    home = _str(doc.get("home_page_url")) or _str(doc.get("feed_url"))
    records, resolve = [], identity.LinkResolver(url, home)
    for it in raw:
        guid = "" if it.get("id") is None else str(it["id"])
        link = resolve(_str(it.get("url")) or _str(it.get("external_url")))
        date = _str(it.get("date_published")) or _str(it.get("date_modified"))
        html, plain = _str(it.get("content_html")), {"type": "text/plain"}
        entry = {
            "title": _str(it.get("title")),
            "title_detail": plain,
            "summary": _str(it.get("summary")),
            "summary_detail": plain,
            "content": [
                {"value": html, "type": "text/html"}
                if html
                else {"value": _str(it.get("content_text")), **plain}
            ],
            "epoch": dates.epoch(date),
        }
        records.append((guid, link, entry, date))
    title, items = _plain(_str(doc.get("title")), False), _build_items(feed_id, records)
    warning = "; ".join(([warning] if warning else []) + resolve.note()) or None
    return ParsedFeed(title, items, warning, None, fmt)


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


_RSS_NS = ("{http://purl.org/rss/1.0/}", "{http://my.netscape.com/rdf/simple/0.9/}")
_ATOM_NS = ("{http://www.w3.org/2005/Atom}", "{http://purl.org/atom/ns#}")
_ATOM_ENTRY, _ATOM_ID = {ns + "entry" for ns in _ATOM_NS}, {ns + "id" for ns in _ATOM_NS}
_RDF_ABOUT = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}about"
_ABSOLUTE = re.compile(r"^(?:https?|tag|urn):", re.IGNORECASE)


def prescan_ids(body: bytes) -> list[str] | None:
    """Return the raw GUIDs (else links) of the items cheaply, or None when unsure."""
    records = _prescan(body)
    return None if records is None else [guid or link for guid, link in records]


def prescan_item_ids(body: bytes, feed_id: str) -> list[str] | None:
    """Return the ids ``parse_feed`` would give the items, deduplicated in order, or None."""
    records = _prescan(body)
    if records is None:
        return None
    ids = _choose_ids(feed_id, [(guid, link, "", "") for guid, link in records])
    return list(dict.fromkeys(ids))


def _prescan(body: bytes) -> list[tuple[str, str]] | None:
    """Return (guid, absolute link) per item via ``xml.etree``, or None when unsure."""
    if body.lstrip(codecs.BOM_UTF8).lstrip()[:1] != b"<" or len(body) > MAX_PARSE_BYTES:
        return None
    try:
        data, notes, _ = _prepare_xml(body, {})
        if notes:
            return None  # repaired or truncated input: only the full parser can be trusted
        root = ET.fromstring(data)
    except (ET.ParseError, FeedError, ValueError):
        return None
    # feedparser resolves GUIDs against xml:base: only absolute ones are safe then.
    has_base = b"xml:base" in data
    rss_ns = root.tag[: root.tag.find("}") + 1] if root.tag.startswith("{") else ""
    records: list[tuple[str, str]] = []
    for elem in root.iter():
        tag = elem.tag if isinstance(elem.tag, str) else ""
        if tag == rss_ns + "item":
            ns = rss_ns
            guid = next((c.text or "" for c in elem if c.tag == ns + "guid"), "").strip()
            guid = guid or (elem.get(_RDF_ABOUT) or "").strip()
            link = next((c.text or "" for c in elem if c.tag == ns + "link"), "")
        elif tag.endswith("}item") and tag[: tag.find("}") + 1] in _RSS_NS:  # RSS 1.0 / 0.90
            ns = tag[: tag.find("}") + 1]
            guid = (elem.get(_RDF_ABOUT) or "").strip()
            link = next((c.text or "" for c in elem if c.tag == ns + "link"), "")
        elif tag in _ATOM_ENTRY:
            guid = next((c.text or "" for c in elem if c.tag in _ATOM_ID), "").strip()
            link = ""
        else:
            continue
        link = link.strip()
        if guid and has_base and not _ABSOLUTE.match(guid):
            return None
        if not guid and not link.lower().startswith(("http://", "https://")):
            return None  # id would depend on title/date or relative-link resolution
        records.append((guid, link))
    guids = [guid for guid, _ in records if guid]
    # Whether repeated GUIDs are trusted depends on links we do not resolve: unsure.
    return None if len(set(guids)) != len(guids) else records
