"""The poller against real Redis and loopback feed servers."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import pytest
from configs import write_config
from feedgen import rss
from loopfeeds import Answer, FeedServer, local_feed

from worker.config import Config, Feed, load_config
from worker.core import keys
from worker.poll import pacing
from worker.poll.pacing import MIN_INTERVAL
from worker.poll.poller import Poller
from worker.service.queue import enqueue_match


@pytest.fixture
def server() -> Iterator[FeedServer]:
    srv = FeedServer()
    yield srv
    srv.close()


def config(*feeds: Feed) -> Config:
    return Config(
        root="",
        version="test",
        feeds=feeds,
        watchlists=(),
        destinations={},
        allow_private_networks=True,
    )


def items(prefix: str, n: int, *, guid: str | None = None) -> list[dict[str, str]]:
    """Return n items with links .../prefix/i and GUIDs ``guid-i`` (default: the link)."""
    out = []
    for i in range(n):
        it = {"title": f"{prefix} story {i}", "link": f"https://news.example.com/{prefix}/{i}"}
        if guid is not None:
            it["guid"] = f"{guid}-{i}"
        out.append(it)
    return out


def with_build_date(body: bytes, when: int) -> bytes:
    stamp = formatdate(when, usegmt=True).encode()
    return body.replace(
        b"<description>test</description>",
        b"<description>test</description><lastBuildDate>" + stamp + b"</lastBuildDate>",
        1,
    )


def poll(redis_client, *feeds: Feed, workers: int = 0):
    """Poll the feeds once with a fresh poller; return (outcomes by feed id, poller)."""
    poller = Poller(redis_client, config(*feeds), enqueue=enqueue_match, parse_workers=workers)
    outs = asyncio.run(poller.poll_all())
    return {o.feed: o for o in outs}, poller


def state(redis_client, feed_id: str) -> dict[str, str]:
    return {
        k.decode(): v.decode() for k, v in redis_client.hgetall(keys.feed_state(feed_id)).items()
    }


def queued(redis_client) -> list[str]:
    """Return the ids of every item queued for matching so far."""
    return sorted(k.decode().rsplit(":", 1)[1] for k in redis_client.keys(keys.item("*")))


def test_304_costs_no_parse(server, redis_client):
    server.answers["/f.xml"] = Answer(rss(items("a", 5)), etag=True)
    feed = local_feed("f", server.url("/f.xml"), backfill=1)
    first, p1 = poll(redis_client, feed, workers=2)  # the real process pool
    assert first["f"].parsed and p1.parses == 1 and first["f"].queued == 1
    second, p2 = poll(redis_client, feed, workers=2)
    assert second["f"].status == 304 and not second["f"].parsed and p2.parses == 0
    assert state(redis_client, "f")["status"] == "304"


def test_unchanged_items_skip_the_full_parse(server, redis_client):
    body = rss(items("a", 8))
    server.answers["/f.xml"] = Answer(with_build_date(body, 1_760_000_000))
    feed = local_feed("f", server.url("/f.xml"))
    first, p = poll(redis_client, feed)
    assert first["f"].first_poll and first["f"].marked_seen == 8 and p.parses == 0
    server.answers["/f.xml"] = Answer(with_build_date(body, 1_760_000_900))  # lastBuildDate only
    second, p = poll(redis_client, feed)
    assert second["f"].status == 200 and not second["f"].parsed and second["f"].new == 0
    assert p.parses == 0 and queued(redis_client) == []


def test_title_edit_is_an_update_not_a_new_item(server, redis_client):
    base = items("a", 6)
    server.answers["/f.xml"] = Answer(rss(base))
    feed = local_feed("f", server.url("/f.xml"))
    poll(redis_client, feed)
    edited = [dict(base[0], title="Corrected: a story 0"), *base[1:]]
    server.answers["/f.xml"] = Answer(rss(edited))
    out, p = poll(redis_client, feed)
    assert out["f"].new == 0 and p.parses == 0  # the pre-scan already knows every id
    # Through the full parse too: one new item alongside another edit.
    later = [
        {"title": "Fresh", "link": "https://news.example.com/a/fresh"},
        dict(base[1], title="Updated: a story 1"),
        *base[2:],
    ]
    server.answers["/f.xml"] = Answer(rss(later))
    out, p = poll(redis_client, feed)
    assert out["f"].parsed and out["f"].new == 1 and len(queued(redis_client)) == 1


def test_feed_whose_guids_change_every_fetch_does_not_flood(server, redis_client, caplog):
    fetches = {"n": 0}

    def churn() -> Answer:
        fetches["n"] += 1
        return Answer(rss(items("a", 10, guid=f"run{fetches['n']}")))

    server.answers["/f.xml"] = churn
    feed = local_feed("f", server.url("/f.xml"))
    poll(redis_client, feed)
    with caplog.at_level(logging.WARNING, logger="newsalert.poller"):
        second, _ = poll(redis_client, feed)
        third, _ = poll(redis_client, feed)
    assert second["f"].churn and second["f"].new == 0 and not second["f"].overflow
    assert third["f"].new == 0 and queued(redis_client) == []
    assert state(redis_client, "f")["identity"] == "link"
    assert sum("GUIDs change" in r.getMessage() for r in caplog.records) == 1
    # A story with a link never seen before is still new.
    server.answers["/f.xml"] = Answer(
        rss(
            [
                {"title": "Real news", "guid": "x", "link": "https://news.example.com/real"},
                *items("a", 10, guid="run99"),
            ]
        )
    )
    fourth, _ = poll(redis_client, feed)
    assert fourth["f"].new == 1 and len(queued(redis_client)) == 1


def test_overflow_warns_once_and_polls_faster(server, redis_client, caplog):
    server.answers["/f.xml"] = Answer(rss(items("a", 10)))
    feed = local_feed("f", server.url("/f.xml"), interval=200.0)
    poll(redis_client, feed)
    with caplog.at_level(logging.WARNING, logger="newsalert.poller"):
        for round_ in ("b", "c", "d", "e"):
            server.answers["/f.xml"] = Answer(rss(items(round_, 10)))
            out, _ = poll(redis_client, feed)
            assert out["f"].overflow and out["f"].new == 10
    warnings = [r for r in caplog.records if "every item was new" in r.getMessage()]
    assert len(warnings) == 1
    st = state(redis_client, "f")
    assert float(st["interval"]) == MIN_INTERVAL  # 200 → 100 → 50 → 30 (floor) → 30
    assert float(st["poll_interval"]) == MIN_INTERVAL
    # A normal poll afterwards keeps the faster interval and warns no more.
    server.answers["/f.xml"] = Answer(rss(items("e", 10)[:9] + items("f", 1)))
    out, _ = poll(redis_client, feed)
    assert out["f"].new == 1 and not out["f"].overflow


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_respected_in_the_schedule(server, redis_client, status):
    server.answers["/f.xml"] = Answer(status=status, headers={"Retry-After": "900"})
    feed = local_feed("f", server.url("/f.xml"), interval=60.0)
    before = time.time()
    out, _ = poll(redis_client, feed)
    assert out["f"].error and out["f"].status == status
    due = redis_client.zscore(keys.SCHEDULE, "f")
    assert due >= before + 900
    st = state(redis_client, "f")
    assert st["failures"] == "1" and st["last_reason"] == "http" and st["status"] == str(status)


@pytest.mark.parametrize(
    ("header", "ttl", "expected"),
    [
        ("max-age=600", None, 600.0),
        ("public, max-age=100000", None, 3600.0),
        ("", 30, 1800.0),
        ("no-cache", None, 60.0),
    ],
)
def test_cache_hints_are_a_capped_lower_bound(server, redis_client, header, ttl, expected):
    body = rss(items("a", 3))
    if ttl:
        body = body.replace(
            b"<description>test</description>",
            f"<description>test</description><ttl>{ttl}</ttl>".encode(),
            1,
        )
    server.answers["/f.xml"] = Answer(body, headers={"Cache-Control": header} if header else {})
    feed = local_feed("f", server.url("/f.xml"), interval=60.0)
    before = time.time()
    poll(redis_client, feed)
    assert float(state(redis_client, "f")["poll_interval"]) == expected
    due = redis_client.zscore(keys.SCHEDULE, "f")
    assert before + expected <= due <= time.time() + expected * 1.5  # first poll: 1-1.5×


def test_redirects_and_410_through_the_poller(server, redis_client):
    server.answers["/old.xml"] = Answer(status=301, headers={"Location": "/mid.xml"})
    server.answers["/mid.xml"] = Answer(status=302, headers={"Location": "/new.xml"})
    server.answers["/new.xml"] = Answer(rss(items("a", 3)))
    server.answers["/loop1"] = Answer(status=302, headers={"Location": "/loop2"})
    server.answers["/loop2"] = Answer(status=302, headers={"Location": "/loop1"})
    server.answers["/gone.xml"] = Answer(status=410)
    moved = local_feed("moved", server.url("/old.xml"))
    loop = local_feed("loop", server.url("/loop1"))
    gone = local_feed("gone", server.url("/gone.xml"))
    out, _ = poll(redis_client, moved, loop, gone)
    assert out["moved"].error is None and out["moved"].marked_seen == 3
    assert state(redis_client, "moved")["url"] == server.url("/mid.xml")  # the permanent hop
    assert "redirect loop" in out["loop"].error
    assert state(redis_client, "loop")["last_reason"] == "redirects"
    assert state(redis_client, "gone")["disabled"] == "410 Gone"
    out, _ = poll(redis_client, moved, loop, gone)
    assert server.count("/old.xml") == 1 and server.count("/mid.xml") == 2  # stored URL used
    assert out["gone"].error.startswith("disabled") and server.count("/gone.xml") == 1


def _run_pollers(redis_url: str, conf: Config, n: int, seconds: float) -> None:
    """Run ``n`` pollers, each in its own thread, event loop and Redis connection."""
    from worker.core.store import connect

    def one() -> None:
        async def main() -> None:
            stop = asyncio.Event()
            asyncio.get_running_loop().call_later(seconds, stop.set)
            await Poller(connect(redis_url), conf, enqueue=enqueue_match, parse_workers=0).run(stop)

        asyncio.run(main())

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)
        assert not t.is_alive()


def test_two_pollers_never_fetch_a_feed_twice_in_an_interval(server, redis_client, redis_url):
    feeds = []
    for i in range(12):
        server.answers[f"/f{i}.xml"] = Answer(rss(items(f"f{i}", 3)), etag=True)
        feeds.append(local_feed(f"f{i}", server.url(f"/f{i}.xml"), interval=2.0))
    _run_pollers(redis_url, config(*feeds), n=2, seconds=7.0)
    for i in range(12):
        times = server.hits[f"/f{i}.xml"]
        assert 2 <= len(times) <= 4, times
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= 2.0 - 0.05, (i, gaps)  # jitter only lengthens an interval


CRASHING_POLLER = textwrap.dedent("""
    import asyncio, json, sys
    from worker.config import Config, Feed, load_config
    from worker.poll.poller import Poller
    from worker.core.store import connect
    from worker.service.queue import enqueue_match
    url, feed_url = sys.argv[1], sys.argv[2]
    conf = Config(root="", version="t", feeds=(Feed("slow", feed_url, fulltext="never"),), watchlists=(),
                  destinations={}, allow_private_networks=True)
    asyncio.run(Poller(connect(url), conf, enqueue=enqueue_match, lease_ttl=2, parse_workers=0).poll_all())
""")


def test_crashed_pollers_lease_expires_and_another_takes_the_feed(server, redis_client, redis_url):
    server.answers["/slow.xml"] = Answer(rss(items("a", 3)), delay=20.0, delay_once=True)
    feed = local_feed("slow", server.url("/slow.xml"), interval=1.0)
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHING_POLLER, redis_url, feed.url],
        cwd=Path(__file__).parent.parent,
    )
    try:
        deadline = time.monotonic() + 20
        while server.count("/slow.xml") == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.count("/slow.xml") == 1 and redis_client.get(keys.lease("slow"))
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # mid-fetch, holding the lease
        proc.wait(10)
    killed_at = time.monotonic()
    assert redis_client.get(keys.lease("slow"))  # the dead poller still holds it
    _run_pollers(redis_url, config(feed), n=1, seconds=5.0)
    hits = server.hits["/slow.xml"]
    assert len(hits) >= 2
    assert hits[1] - killed_at >= 0.5  # waited for the lease to run out, then took it
    assert state(redis_client, "slow")["status"] == "200"


def test_health_is_recorded(server, redis_client):
    server.answers["/ok.xml"] = Answer(rss(items("a", 4)))
    server.answers["/bad.xml"] = Answer(b"<html><body>not a feed</body>")
    ok, bad = local_feed("ok", server.url("/ok.xml")), local_feed("bad", server.url("/bad.xml"))
    poll(redis_client, ok, bad)
    poll(redis_client, ok, bad)
    assert state(redis_client, "bad")["failures"] == "2"
    assert state(redis_client, "bad")["last_reason"] == "parse"
    from worker.service.stats import feed_health, render_feeds

    rows = feed_health(redis_client, [ok, bad])
    assert [r["id"] for r in rows] == ["bad", "ok"]  # trouble first
    assert rows[1]["items_per_day"] == 0 and rows[1]["seen"] == 8  # item id + link id each
    text = "\n".join(render_feeds(rows, time.time()))
    assert "failing" in text and "parse: not a parseable feed" in text
    json.dumps(rows)


def test_error_backoff_doubles_up_to_six_hours_and_stops_there(server, redis_client):
    """A feed that keeps failing waits 1, 2, 4… intervals (±10%), never more than 6 h."""
    server.answers["/down.xml"] = Answer(b"oops", status=500)
    feed = local_feed("down", server.url("/down.xml"), interval=600.0)
    waits = []
    for _ in range(12):  # 600 s · 2**6 passes 6 h at the 7th failure
        poll(redis_client, feed)
        waits.append(float(state(redis_client, "down")["poll_interval"]))
    assert 540 <= waits[0] <= 660 and 1080 <= waits[1] <= 1320
    assert all(w <= 6 * 3600 for w in waits), waits
    assert waits[6:] == [6 * 3600.0] * 6, waits


def test_a_poll_keeps_feed_state_fields_it_does_not_know(server, redis_client):
    """Another version's fields (adaptive intervals, WebSub…) survive this version's polls."""
    server.answers["/f.xml"] = Answer(rss(items("a", 2)))
    redis_client.hset(keys.feed_state("f"), "websub_hub", "https://hub.example.com/")
    poll(redis_client, local_feed("f", server.url("/f.xml")))
    server.answers["/f.xml"] = Answer(b"oops", status=500)
    poll(redis_client, local_feed("f", server.url("/f.xml")))
    st = state(redis_client, "f")
    assert st["websub_hub"] == "https://hub.example.com/"
    assert st["primed"] == "1" and st["last_reason"] == "http" and st["failures"] == "1"


def test_private_addresses_are_refused_by_default(server, redis_client, tmp_path):
    """feeds.yaml without ``allow_private_networks``: the refusal reaches the poller's fetcher."""
    server.answers["/f.xml"] = Answer(rss(items("a", 3)))
    root = write_config(
        tmp_path / "config",
        feeds=f"feeds:\n  - id: f\n    url: {server.url('/f.xml')}\n",
        destinations="{}\n",
    )
    loaded = load_config(root)
    assert loaded.allow_private_networks is False
    poller = Poller(redis_client, loaded, enqueue=enqueue_match)
    out = {o.feed: o for o in asyncio.run(poller.poll_all())}
    assert out["f"].error and "127.0.0.1" in out["f"].error, out["f"].error
    assert server.count("/f.xml") == 0, "no request may leave for a private address"
    st = state(redis_client, "f")
    assert st["last_reason"] == "private_address" and st["failures"] == "1"
    assert queued(redis_client) == []


@pytest.mark.parametrize("jitter", [0.9, 1.1], ids=["least-jitter", "most-jitter"])
def test_failures_back_off_exponentially_up_to_6_hours(server, redis_client, monkeypatch, jitter):
    monkeypatch.setattr(pacing.random, "uniform", lambda low, high: jitter)  # ±10%
    server.answers["/f.xml"] = Answer(status=500)
    feed = local_feed("f", server.url("/f.xml"), interval=60.0)
    for failures in range(1, 13):
        before = time.time()
        out, _ = poll(redis_client, feed)
        after = time.time()
        assert out["f"].status == 500
        due = redis_client.zscore(keys.SCHEDULE, "f")
        # 60 s, 2 min, 4 min … doubling, never past 6 h (jitter included)
        expected = min(60.0 * 2 ** (failures - 1) * jitter, 6 * 3600)
        assert due - after <= expected <= due - before, (failures, due - before)
    assert state(redis_client, "f")["failures"] == "12"
