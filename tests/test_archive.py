"""The archive of accepted items and sent alerts (real Redis, a real poller on loopback)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

import pytest
from feedgen import rss
from loopfeeds import Answer, FeedServer, local_feed

from worker.config import Config
from worker.core import keys
from worker.core.archive import (
    Archive,
    extent,
    pack,
    record_sent,
    scan,
    sent_since,
    unpack,
)
from worker.model import Item
from worker.poll.poller import Poller
from worker.service.queue import enqueue_match


def item(n: int, words: int = 50) -> Item:
    return Item(
        id=f"{n:016x}",
        feed="wire",
        title=f"Story number {n}",
        link=f"https://news.example.com/{n}",
        summary=" ".join(f"word{(n * 7 + i) % 97}" for i in range(words)),
        content="Café Zelenskýj — “quotes” and ünïcode",
        article="",
        published=1_760_000_000.0 + n,
        story=f"s{n}",
    )


def archived(client) -> list[str]:
    return [i.title for page in scan(client, 0) for i in page]


def write(client, archive: Archive, items: list[Item]) -> None:
    with client.pipeline(transaction=False) as pipe:
        assert archive.write(pipe, items)
        archive.written(pipe.execute()[-1])


def test_record_round_trip_keeps_every_matchable_field():
    original = item(3)
    back = unpack(pack(original), seen_at=12.5)
    assert back == Item.from_dict({**original.to_dict(), "seen_at": 12.5})
    assert len(pack(original)) < len(original.summary)  # compressed


def test_items_come_back_oldest_first_in_pages(redis_client):
    archive = Archive(redis_client, 7 * 86400, 200 * 1024**2)
    for start in range(0, 30, 10):
        write(redis_client, archive, [item(n) for n in range(start, start + 10)])
    pages = list(scan(redis_client, 0, page=7))
    assert [len(p) for p in pages] == [7, 7, 7, 7, 2]
    assert [i.title for p in pages for i in p] == [f"Story number {n}" for n in range(30)]
    ext = extent(redis_client)
    assert ext.items == 30 and ext.bytes > 0 and ext.oldest is not None


def test_cap_drops_the_oldest_first_and_says_so_once(redis_client, caplog):
    one = len(pack(item(0))) + 16
    archive = Archive(redis_client, 7 * 86400, cap=one * 10)  # room for about ten items
    caplog.set_level(logging.WARNING, logger="newsalert.archive")
    for start in range(0, 40, 5):
        write(redis_client, archive, [item(n) for n in range(start, start + 5)])
    titles = archived(redis_client)
    assert 8 <= len(titles) <= 10
    assert titles == [f"Story number {n}" for n in range(40 - len(titles), 40)]
    assert extent(redis_client).bytes <= one * 10
    lines = [r for r in caplog.records if "archive is full" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in caplog.records]


def test_items_older_than_the_period_are_dropped(redis_client):
    archive = Archive(redis_client, keep=3600, cap=200 * 1024**2)
    write(redis_client, archive, [item(1)])
    # A write "two hours later" finds the first item past the one-hour period.
    with redis_client.pipeline(transaction=False) as pipe:
        archive.write(pipe, [item(2)], now=time.time() + 7200)
        aged, capped, _ = pipe.execute()[-1]
    assert (aged, capped) == (1, 0)
    assert archived(redis_client) == ["Story number 2"]


def test_archive_off_writes_nothing(redis_client):
    archive = Archive(redis_client, keep=0, cap=200 * 1024**2)
    with redis_client.pipeline(transaction=False) as pipe:
        assert not archive.write(pipe, [item(1)])
    assert extent(redis_client).items == 0


def test_sent_log_keeps_one_entry_per_destination(redis_client):
    payloads = [
        {
            "delivery": "d1",
            "destination": dest,
            "story": "story-1",
            "alert": {"watchlist": "w", "rule": "r1, r2", "item": item(1).to_dict()},
        }
        for dest in ("hook", "mail")
    ]
    with redis_client.pipeline(transaction=False) as pipe:
        record_sent(pipe, payloads, keep=86400, now=time.time())
        pipe.execute()
    entries = list(sent_since(redis_client, time.time() - 60))
    assert [(e["watchlist"], e["rules"], e["story"], e["destination"]) for e in entries] == [
        ("w", ["r1", "r2"], "story-1", "hook"),
        ("w", ["r1", "r2"], "story-1", "mail"),
    ]
    assert entries[0]["item"]["title"] == "Story number 1"
    assert list(sent_since(redis_client, time.time() + 60)) == []


@pytest.fixture
def server() -> Iterator[FeedServer]:
    srv = FeedServer()
    yield srv
    srv.close()


def test_poller_archives_exactly_the_items_it_accepts(server, redis_client):
    old = [{"title": f"Old {i}", "link": f"https://news.example.com/old/{i}"} for i in range(3)]
    server.answers["/f.xml"] = Answer(rss(old))
    feed = local_feed("f", server.url("/f.xml"))
    config = Config(
        root="", version="t", feeds=(feed,), watchlists=(), destinations={},
        allow_private_networks=True, archive=86400, archive_max=10 * 1024**2,
    )  # fmt: skip
    asyncio.run(Poller(redis_client, config, enqueue=enqueue_match, parse_workers=0).poll_all())
    assert archived(redis_client) == []  # the first poll only marks what is there as seen
    fresh = [{"title": "Fresh story", "link": "https://news.example.com/fresh"}]
    server.answers["/f.xml"] = Answer(rss(fresh + old))
    asyncio.run(Poller(redis_client, config, enqueue=enqueue_match, parse_workers=0).poll_all())
    got = [i for page in scan(redis_client, 0) for i in page]
    assert [(i.title, i.feed, i.link) for i in got] == [
        ("Fresh story", "f", "https://news.example.com/fresh")
    ]
    assert redis_client.exists(keys.item(got[0].id))  # queued as before
