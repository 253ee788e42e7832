"""Canonical URLs, item ids and story keys."""

from __future__ import annotations

import re

import pytest

from worker.poll.identity import canonical_url, item_id, story_key


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://Example.COM/a/b?x=1#frag", "https://example.com/a/b?x=1"),
        ("HTTP://example.com:80/path", "http://example.com/path"),
        ("https://example.com:443/", "https://example.com/"),
        ("https://example.com:8443/p", "https://example.com:8443/p"),
        ("http://example.com", "http://example.com/"),
        ("https://ex.com/p?utm_source=rss&utm_medium=feed&id=7", "https://ex.com/p?id=7"),
        ("https://ex.com/p?b=2&fbclid=XYZ&a=1", "https://ex.com/p?b=2&a=1"),
        (
            "https://ex.com/p?gclid=1&mc_cid=2&mc_eid=3&ref_src=twsrc&igshid=4&yclid=5&_ga=6",
            "https://ex.com/p",
        ),
        ("https://ex.com/p?UTM_Campaign=x&q=a%20b", "https://ex.com/p?q=a%20b"),
        ("https://ex.com/p?q=a+b&q=c", "https://ex.com/p?q=a+b&q=c"),  # order and encoding kept
        ("https://ex.com/p?", "https://ex.com/p"),
        ("https://user:pw@Ex.com/p", "https://ex.com/p"),
        ("https://[2001:DB8::1]:443/x", "https://[2001:db8::1]/x"),
        ("  https://ex.com/p  ", "https://ex.com/p"),
        ("https://ex.com/Case/Path", "https://ex.com/Case/Path"),  # paths are case-sensitive
        ("mailto:someone@example.com", "mailto:someone@example.com"),
        ("/relative/path", "/relative/path"),
        ("https://ex.com:notaport/", "https://ex.com:notaport/"),
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


def test_item_id_is_short_hex_and_stable() -> None:
    a = item_id("bbc", "guid-1", "https://ex.com/1", "Title", "Tue, 17 Feb 2026 18:55:33 GMT")
    assert re.fullmatch(r"[0-9a-f]{16}", a)
    assert a == item_id("bbc", "guid-1", "https://ex.com/other", "Other title", None)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        # guid wins; the same guid in another feed is another item
        (("a", "g1", None, "", None), ("b", "g1", None, "", None)),
        (("a", "g1", None, "", None), ("a", "g2", None, "", None)),
        # permalink GUIDs are opaque: fragments distinguish posts
        (
            ("a", "http://s.com/d.html#a1", None, "", None),
            ("a", "http://s.com/d.html#a2", None, "", None),
        ),
        # a guid equal to a link is not confused with a link-derived id
        (("a", "https://ex.com/1", None, "", None), ("a", None, "https://ex.com/1", "", None)),
        (("a", None, None, "T", "2026-01-01"), ("a", None, None, "T", "2026-01-02")),
    ],
)
def test_item_id_distinguishes(left: tuple, right: tuple) -> None:
    assert item_id(*left) != item_id(*right)


def test_item_id_from_link_ignores_tracking_and_fragment() -> None:
    one = item_id("f", None, "https://Ex.com/story?utm_source=x#comments", "A", None)
    assert one == item_id("f", "  ", "https://ex.com/story", "B", "other date")


def test_item_id_falls_back_to_title_and_date() -> None:
    assert item_id("f", None, None, "T", "d") == item_id("f", "", "", " T ", " d ")


def test_story_key_shared_across_feeds_by_canonical_link() -> None:
    a = story_key("https://ex.com/s?utm_medium=rss", item_id("a", "x", None, "", None))
    b = story_key("https://EX.com/s#top", item_id("b", "y", None, "", None))
    assert a == b and re.fullmatch(r"[0-9a-f]{16}", a)


@pytest.mark.parametrize("link", [None, "", "javascript:alert(1)", "/relative", "mailto:x@y.z"])
def test_story_key_without_http_link_is_the_id(link: str | None) -> None:
    assert story_key(link, "0123456789abcdef") == "0123456789abcdef"
