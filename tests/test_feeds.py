"""parse_feed and the prescan on small fixture feeds (no ../shared needed)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from worker.errors import FeedError
from worker.poll import parse as feeds
from worker.poll.identity import item_id, story_key
from worker.poll.parse import ParsedFeed, parse_feed, prescan_ids, prescan_item_ids

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
URL = "https://fixtures.example.com/feed.xml"


def parse(name: str, **kw: object) -> ParsedFeed:
    return parse_feed((FIXTURES / name).read_bytes(), feed_id="fx", url=URL, **kw)  # type: ignore[arg-type]


def test_rss20_fields() -> None:
    feed = parse("rss20.xml")
    assert (feed.title, feed.format, feed.ttl, feed.warning) == (
        "Example World News",
        "rss20",
        900,
        None,
    )
    first, second, third = feed.items
    assert first.title == "North Korean soldiers captured in Kursk"
    assert first.summary == "Two North Korean soldiers were captured & questioned."
    assert first.content == "Full text: troops in the Kursk region."
    assert first.published == 1771354533.0  # Tue, 17 Feb 2026 18:55:33 GMT
    assert first.id == item_id("fx", "nk-kursk-0001", None, "", None)
    assert first.story == story_key("https://news.example.com/world/nk-kursk?id=7", "")
    assert first.feed == "fx"
    # double-escaped HTML in a title is stripped, entities decoded
    assert second.title == "Café talks resume"
    assert second.link == "https://fixtures.example.com/world/cafe-talks"  # relative → feed URL
    assert second.published == 1771326000.0  # +0100 honoured
    assert second.id == item_id("fx", None, second.link, "", None)
    # javascript: links are dropped; the id falls back to the title
    assert third.link == "" and third.story == third.id
    assert third.id == item_id("fx", None, None, "Script link item", "")


def test_atom_xml_base_and_text_types() -> None:
    feed = parse("atom10.xml")
    assert feed.format == "atom10"
    one, two = feed.items
    assert one.link == "https://blog.example.org/posts/1"  # resolved against xml:base
    assert one.title == "Ukraine & Russia talks"
    assert (one.summary, one.content) == ("Summary one", "Content one")
    assert one.published == 1771350847.0  # published wins over updated
    assert two.title == "Plain text title"
    assert two.published == 1771228800.0  # from <updated>, +02:00


def test_json_feed_11() -> None:
    feed = parse("jsonfeed11.json")
    assert (feed.title, feed.format, feed.warning) == ("Example JSON Feed", "json11", None)
    one, two = feed.items  # the non-object entry is skipped
    assert one.title == "Pyongyang's troops near Kursk"
    assert one.content == "Reports of North Korean units."
    assert one.summary == "Short summary"
    assert one.published == 1771322400.0
    assert one.id == item_id("fx", "2", None, "", None)
    assert one.story == story_key("https://json.example.net/2", "")  # fbclid ignored
    assert two.id == item_id("fx", "1", None, "", None)  # numeric id → "1"
    assert two.link == "https://fixtures.example.com/1"
    assert two.content == "A post without a title" and two.title == ""


JSON_DATES = [
    ("2024-05-01T12:00:00+02:00", 1714557600.0),
    ("2024-05-01T12:00:00.5Z", 1714564800.5),  # the fraction is kept
    ("2024-05-01t12:00:00z", 1714564800.0),  # RFC 3339 allows lower case
    ("2024-05-01T12:00:00", 1714564800.0),  # no offset: UTC, not local time
    ("2024-05-01T23:59:60Z", 1714608000.0),  # a leap second
    ("Wed, 01 May 2024 12:00:00 GMT", 1714564800.0),  # RFC 822, sent by mistake
    ("2024-13-01T00:00:00Z", None),
    ("yesterday", None),
]


@pytest.mark.parametrize(("date", "expected"), JSON_DATES, ids=[d for d, _ in JSON_DATES])
def test_json_feed_dates(date: str, expected: float | None) -> None:
    body = (
        '{"version": "https://jsonfeed.org/version/1.1", "items": '
        f'[{{"id": "a", "content_text": "x", "date_published": "{date}"}}]}}'
    ).encode()
    (item,) = parse_feed(body, feed_id="j").items
    assert item.published == expected


def test_json_feed_10_detected_by_version() -> None:
    body = b'{"version": "https://jsonfeed.org/version/1", "title": "t", "items": [{"id": "a", "content_text": "x"}]}'
    feed = parse_feed(body, feed_id="j", headers={"Content-Type": "application/feed+json"})
    assert feed.format == "json10" and len(feed.items) == 1


def test_bozo_feed_keeps_entries_with_warning() -> None:
    feed = parse("bozo.xml")
    assert [i.link for i in feed.items] == [
        "https://broken.example.com/1",
        "https://broken.example.com/2",
    ]
    assert feed.warning and "undefined entity" in feed.warning


def test_windows_1252_declared() -> None:
    feed = parse("windows-1252.xml")
    assert feed.title == "Café news"
    assert feed.items[0].title == "\u201cQuoted\u201d café \u2013 naïve"


def test_one_invalid_byte_does_not_garble_utf8() -> None:
    feed = parse("utf8-invalid-byte.xml")
    assert feed.title == "Café Zelenskyy"
    item = feed.items[0]
    assert item.title == "Café in Kyiv – naïve"
    assert item.summary == "Bad byte here: \ufffd then more: Zelenskýj «ok»"
    assert feed.warning and "invalid UTF-8" in feed.warning


def test_http_charset_utf8_with_invalid_byte() -> None:
    body = (FIXTURES / "utf8-invalid-byte.xml").read_bytes()
    feed = parse_feed(body, feed_id="fx", headers={"Content-Type": "text/xml; charset=UTF-8"})
    assert feed.items[0].title == "Café in Kyiv – naïve"


def test_latin1_without_declaration_is_not_forced_to_utf8() -> None:
    body = (
        b'<rss version="2.0"><channel><title>x</title><item><title>Caf\xe9 cr\xe8me</title>'
        b"<guid>1</guid></item></channel></rss>"
    )
    assert parse_feed(body, feed_id="l").items[0].title == "Café crème"


def test_bom_and_leading_whitespace() -> None:
    feed = parse("bom-leading-space.xml")
    assert feed.warning is None  # repaired, not bozo
    assert feed.items[0].title == "Ünïcödé"
    assert feed.items[0].link == ""  # an opaque GUID is not a link


def test_utf16_document() -> None:
    text = (
        '<?xml version="1.0" encoding="utf-16"?><rss version="2.0"><channel><title>Київ</title>'
        "<item><title>Зеленський</title><guid>u16</guid></item></channel></rss>"
    )
    feed = parse_feed(text.encode("utf-16"), feed_id="u")
    assert (feed.title, feed.items[0].title) == ("Київ", "Зеленський")


@pytest.mark.parametrize("name", ["xxe.xml", "billion-laughs.xml"])
def test_entities_are_never_expanded(name: str) -> None:
    started = time.perf_counter()
    feed = parse(name)
    assert time.perf_counter() - started < 1.0
    texts = [feed.title] + [t for i in feed.items for t in (i.title, i.summary, i.content)]
    assert all("root:" not in t and "lollol" not in t for t in texts)
    assert sum(len(t) for t in texts) < 1000
    assert feed.warning and "DTD internal subset removed" in feed.warning
    assert prescan_item_ids((FIXTURES / name).read_bytes(), "fx") is None


def test_billion_laughs_multiline_doctype() -> None:
    body = (FIXTURES / "billion-laughs.xml").read_bytes().replace(b"><!ENTITY", b">\n  <!ENTITY")
    feed = parse_feed(body, feed_id="b")
    assert feed.items[0].title == "Boom &lol9;"


def test_external_dtd_reference_is_kept_and_not_fetched() -> None:
    body = (
        b'<?xml version="1.0"?><!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
        b'"http://127.0.0.1:9/rss-0.91.dtd"><rss version="0.91"><channel><title>n</title>'
        b"<item><title>a</title><link>https://n.example.com/a</link></item></channel></rss>"
    )
    assert [i.title for i in parse_feed(body, feed_id="n").items] == ["a"]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"/etc/passwd",
        b"<html><body><p>Not a feed</p></body></html>",
        b"{not json",
        b'{"version": "x", "title": "no items"}',
        b"[1, 2]",
        b"\x00\x01\x02garbage",
    ],
)
def test_nothing_parseable_raises(body: bytes) -> None:
    with pytest.raises(FeedError) as info:
        parse_feed(body, feed_id="x")
    assert info.value.reason == "parse"


def test_well_formed_empty_feed_is_not_an_error() -> None:
    feed = parse_feed(
        b'<rss version="2.0"><channel><title>Quiet</title></channel></rss>', feed_id="q"
    )
    assert (feed.title, feed.items) == ("Quiet", [])


def test_too_many_entries_truncated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feeds, "MAX_ITEMS", 10)
    items = "".join(f"<item><title>t{i}</title><guid>g{i}</guid></item>" for i in range(25))
    feed = parse_feed(f'<rss version="2.0"><channel>{items}</channel></rss>'.encode(), feed_id="m")
    assert [i.title for i in feed.items] == [f"t{i}" for i in range(10)]
    assert feed.warning and "first 10 of 25" in feed.warning


def test_oversized_body_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feeds, "MAX_PARSE_BYTES", 100)
    with pytest.raises(FeedError) as info:
        parse_feed(b"<rss>" + b" " * 200 + b"</rss>", feed_id="o")
    assert info.value.reason == "too_large"


def _rss(*items: tuple[str, str]) -> bytes:
    body = "".join(
        f"<item><title>x</title><guid>{g}</guid><link>{lk}</link></item>" for g, lk in items
    )
    return f'<rss version="2.0"><channel><title>c</title>{body}</channel></rss>'.encode()


def test_changing_guids_parse_fine() -> None:
    one = parse_feed(_rss(("run-1-a", "https://c.example.com/a")), feed_id="c")
    two = parse_feed(_rss(("run-2-a", "https://c.example.com/a")), feed_id="c")
    assert one.items[0].id != two.items[0].id  # per-feed identity follows the GUID…
    assert one.items[0].story == two.items[0].story  # …the story key follows the link


def test_shared_guid_with_different_links_falls_back_to_links() -> None:
    body = _rss(("same", "https://d.example.com/1"), ("same", "https://d.example.com/2"))
    feed = parse_feed(body, feed_id="d")
    assert [i.id for i in feed.items] == [
        item_id("d", None, f"https://d.example.com/{n}", "", None) for n in (1, 2)
    ]
    assert prescan_item_ids(body, "d") is None


def test_duplicate_items_are_dropped() -> None:
    body = _rss(("g", "https://e.example.com/1"), ("g", "https://e.example.com/1"))
    assert len(parse_feed(body, feed_id="e").items) == 1


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.iterdir()))
def test_prescan_matches_parse(name: str) -> None:
    body = (FIXTURES / name).read_bytes()
    ids = prescan_item_ids(body, "fx")
    if ids is not None:
        assert ids == [i.id for i in parse_feed(body, feed_id="fx", url=URL).items]


def test_prescan_ids_raw_values() -> None:
    assert prescan_ids((FIXTURES / "atom10.xml").read_bytes()) == [
        "tag:blog.example.org,2026:post-1",
        "tag:blog.example.org,2026:post-2",
    ]
    assert prescan_ids(_rss(("", "https://f.example.com/1"))) == ["https://f.example.com/1"]
    assert prescan_ids((FIXTURES / "jsonfeed11.json").read_bytes()) is None
    assert prescan_ids(b"<rss><channel><item>") is None


def test_prescan_ignores_last_build_date_changes() -> None:
    a = _rss(("g1", "https://g.example.com/1")).replace(
        b"<title>c</title>", b"<lastBuildDate>1</lastBuildDate>"
    )
    b = a.replace(b"<lastBuildDate>1", b"<lastBuildDate>2")
    assert (
        prescan_item_ids(a, "g") == prescan_item_ids(b, "g") == [item_id("g", "g1", None, "", None)]
    )
