"""Every real feed in ../shared/corpus/feeds parses, with the item counts SOURCES.md records."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from shared import shared_dir

from worker.errors import FeedError
from worker.poll.parse import parse_feed, prescan_item_ids

CORPUS_FILES = sorted(
    p.name
    for p in (Path(__file__).resolve().parents[2] / "shared" / "corpus" / "feeds").glob("*")
    if p.suffix in (".xml", ".json")
) or ["(corpus missing)"]

#: Where our count differs from feedparser's on purpose: file → (our count, why).
INTENDED: dict[str, tuple[int | None, str]] = {
    "dylanharris__broken-rss-prolog.xml": (
        None,
        "feedparser finds 0 entries and bozo (garbled prolog): parse_feed raises FeedError",
    ),
    "suspilne__ukrnet-2023-12-uk.xml": (
        19,
        "two items (no GUIDs) share one link: duplicates dropped",
    ),
    "scripting-news__rss.xml": (48, "two items repeat the same GUID and link: duplicates dropped"),
    "scripting-news__rss-0.92-grateful-dead.xml": (
        21,
        "two items have no guid/link/title/date and the same text: one identity, kept once",
    ),
}

#: Markup left in text after stripping would break highlight offsets and alert rendering.
MARKUP = re.compile(r"<(?:/?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?|!--)>")


def expected_counts() -> dict[str, int]:
    """Parse the "Items (feedparser)" column (JSON files: "JSON items: N") of SOURCES.md."""
    text = (shared_dir("corpus", "feeds") / "SOURCES.md").read_text(encoding="utf-8")
    header = next(line for line in text.splitlines() if line.startswith("| File |"))
    column = [c.strip() for c in header.split("|")].index("Items (feedparser)")
    counts = {}
    for line in text.splitlines():
        if match := re.match(r"\| `([^`]+)` \|", line):
            cell = [c.strip() for c in line.split("|")][column]
            json_items = re.search(r"JSON items: (\d+)", cell)
            counts[match.group(1)] = int(json_items.group(1) if json_items else cell.split()[0])
    return counts


def test_sources_table_covers_every_file() -> None:
    counts = expected_counts()
    on_disk = {
        p.name for p in shared_dir("corpus", "feeds").iterdir() if p.suffix in (".xml", ".json")
    }
    assert set(counts) == on_disk
    assert len(on_disk) >= 90


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_corpus_feed(name: str) -> None:
    path = shared_dir("corpus", "feeds", name)
    body = path.read_bytes()
    expected = expected_counts()[name]
    intended, _why = INTENDED.get(name, (expected, ""))
    if intended is None:
        with pytest.raises(FeedError) as info:
            parse_feed(body, feed_id="corpus", url="https://corpus.example.com/feed")
        assert info.value.reason == "parse"
        return
    feed = parse_feed(body, feed_id="corpus", url="https://corpus.example.com/feed")
    assert len(feed.items) == intended
    assert feed.format.startswith("json") == name.endswith(".json")
    ids = [item.id for item in feed.items]
    assert len(set(ids)) == len(ids)
    for item in feed.items:
        for field in ("title", "summary", "content"):
            text = getattr(item, field)
            assert not MARKUP.search(text), f"{field} of {item.link or item.id}: {text[:200]!r}"
            assert "\x00" not in text
        assert item.link == "" or item.link.startswith(("http://", "https://"))
        assert item.published is None or 0 < item.published < 2_000_000_000
    prescanned = prescan_item_ids(body, "corpus")
    if prescanned is not None:
        assert prescanned == ids


def test_prescan_covers_most_of_the_corpus() -> None:
    """Guard against a prescan that silently returns None for everything."""
    feeds = shared_dir("corpus", "feeds")
    known = [prescan_item_ids(p.read_bytes(), "c") for p in feeds.glob("*.xml")]
    assert sum(ids is not None for ids in known) >= 0.8 * len(known)


def test_utf8_text_not_garbled() -> None:
    """Spot-check decoding on feeds with accents and non-Latin scripts."""
    feeds = shared_dir("corpus", "feeds")
    checks = {
        "golem__news-iso-8859-1.xml": "ä",
        "ibash-org-ru__quotes-windows-1251.xml": "и",
        "bbc-urdu__pakistan.xml": "پاکستان",
        "le-cercle-psy__no-xml-decl-latin1.xml": "é",
        "journal-3960__jsonfeed-1.1-de.json": "ö",
    }
    for name, needle in checks.items():
        feed = parse_feed((feeds / name).read_bytes(), feed_id="c")
        text = " ".join(f"{i.title} {i.summary} {i.content}" for i in feed.items)
        assert needle in text, name
        assert "Ã" not in text, name
