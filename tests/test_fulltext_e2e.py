"""End to end: a teaser-only loopback feed, its article on a loopback site, real Redis, RQ, apprise.

Each test runs the real ``newsalert run --once`` as a subprocess; the alert
arrives at a real ``json://`` receiver, whose message shows each snippet
with the field it came from ("- article: …").
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from configs import NK_WATCHLIST, feeds_yaml, write_config
from conftest import Route
from feedgen import rss
from test_article import HTML, HangingServer, article_page, article_text, hanging_server
from test_pipeline import newsalert

__all__ = ["hanging_server"]  # a fixture, imported for use here

FLANDERS_WATCHLIST = """\
name: Burglaries in Flanders
notify: [hook]
rules:
  - id: burglary-flanders
    all: [Burglary, Flanders]
"""
FEED = {"Content-Type": "application/rss+xml"}


def _config(
    tmp_path: Path, feeds: dict[str, str], receiver, *, fulltext: str = "auto", extra: str = ""
) -> Path:
    # The shared helper turns full text off; these tests set it explicitly.
    settings = f"fulltext: {fulltext}" + (f", {extra}" if extra else "")
    text = feeds_yaml(feeds).replace("fulltext: never}", f"{settings}}}")
    assert settings in text
    return write_config(
        tmp_path / "config",
        feeds=text,
        destinations=f"hook:\n  url: json://127.0.0.1:{receiver.port}/alerts\n",
        watchlists={
            "north-korea-kursk": NK_WATCHLIST.format(notify="[hook]"),
            "flanders": FLANDERS_WATCHLIST,
        },
    )


def _messages(receiver) -> list[str]:
    return [
        f"{r['body'].get('title', '')}\n{r['body'].get('message', '')}" for r in receiver.received
    ]


def _teaser(text: str, link: str) -> dict[str, str]:
    """A feed item carrying only the article's headline."""
    return {"title": text.strip().splitlines()[0].strip(), "link": link}


@pytest.mark.parametrize("name", ["own", "seed"])
def test_teaser_only_feed_alerts_once_from_the_article(
    name, tmp_path, http_server, receiver, redis_client, redis_url
):
    text = article_text(name)
    http_server.routes["/world/2024/12/27/nk-soldier"] = Route(article_page(text), headers=HTML)
    link = f"{http_server.base}/world/2024/12/27/nk-soldier?utm_source=rss"
    http_server.routes["/feed.xml"] = Route(rss([_teaser(text, link)]), headers=FEED)
    config = _config(tmp_path, {"world": f"{http_server.base}/feed.xml"}, receiver)

    first = newsalert(config, redis_url, "run", "--once", "--wait", "30")
    assert first.returncode == 0, first.stderr
    messages = _messages(receiver)
    assert len(messages) == 1, (messages, first.stderr)  # and none for Burglary + Flanders
    assert "[north-korea-kursk]" in messages[0] and "nk-in-kursk" in messages[0]
    article_lines = [ln for ln in messages[0].splitlines() if ln.startswith("- article:")]
    assert article_lines and "Kursk" in article_lines[0] + "".join(article_lines[1:])
    assert "Burglary" not in messages[0] and "Flanders" not in messages[0]
    assert len(messages[0]) < 1500, "alerts carry snippets, never the whole article"
    assert http_server.hits["/world/2024/12/27/nk-soldier"] == 1

    second = newsalert(config, redis_url, "run", "--once", "--wait", "30")
    assert second.returncode == 0, second.stderr
    assert len(receiver.received) == 1
    assert http_server.hits["/world/2024/12/27/nk-soldier"] == 1, "seen items are not fetched"


def test_fulltext_never_matches_on_feed_text_only(
    tmp_path, http_server, receiver, redis_client, redis_url
):
    text = article_text("own")
    http_server.routes["/nk"] = Route(article_page(text), headers=HTML)
    http_server.routes["/feed.xml"] = Route(
        rss([_teaser(text, f"{http_server.base}/nk")]), headers=FEED
    )
    config = _config(
        tmp_path, {"world": f"{http_server.base}/feed.xml"}, receiver, fulltext="never"
    )
    result = newsalert(config, redis_url, "run", "--once", "--wait", "20")
    assert result.returncode == 0, result.stderr
    assert receiver.received == [] and "/nk" not in http_server.hits


def test_robots_disallow_means_no_fetch_and_feed_text_matching(
    tmp_path, http_server, receiver, redis_client, redis_url
):
    http_server.routes["/robots.txt"] = Route(b"User-agent: *\nDisallow: /private/\n")
    http_server.routes["/private/nk"] = Route(article_page(article_text("own")), headers=HTML)
    item = {
        "title": "North Korean soldier captured in Kursk region",
        "link": f"{http_server.base}/private/nk",
    }
    http_server.routes["/feed.xml"] = Route(rss([item]), headers=FEED)
    config = _config(tmp_path, {"world": f"{http_server.base}/feed.xml"}, receiver)
    result = newsalert(config, redis_url, "run", "--once", "--wait", "30")
    assert result.returncode == 0, result.stderr
    assert "/private/nk" not in http_server.hits
    assert http_server.hits["/robots.txt"] == 1
    messages = _messages(receiver)
    assert len(messages) == 1 and "- title:" in messages[0] and "- article:" not in messages[0]


def test_a_hanging_article_server_does_not_hold_the_alert(
    tmp_path, http_server, receiver, hanging_server: HangingServer, redis_client, redis_url
):
    item = {
        "title": "North Korean soldier captured in Kursk region",
        "link": f"{hanging_server.base}/hang/nk-soldier",
    }
    http_server.routes["/feed.xml"] = Route(rss([item]), headers=FEED)
    config = _config(
        tmp_path, {"world": f"{http_server.base}/feed.xml"}, receiver, extra="fulltext_deadline: 1s"
    )
    started = time.monotonic()
    result = newsalert(config, redis_url, "run", "--once", "--wait", "30")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert len(receiver.received) == 1
    assert hanging_server.hits.get("/hang/nk-soldier") == 1
    # The server hangs for 30 s and the fetch timeout is 30 s: only the deadline explains this.
    assert elapsed < 15, result.stderr
    late = [ln for ln in result.stderr.splitlines() if "matching on feed text" in ln]
    assert len(late) == 1 and "feed world:" in late[0], result.stderr


def test_two_feeds_with_the_same_story_fetch_it_once(
    tmp_path, http_server, receiver, redis_client, redis_url
):
    text = article_text("own")
    http_server.routes["/world/nk"] = Route(article_page(text), headers=HTML)
    a = _teaser(text, f"{http_server.base}/world/nk?utm_source=a#top")
    b = dict(_teaser(text, f"{http_server.base}/world/nk?utm_medium=b"), guid="wire-b-123")
    http_server.routes["/a.xml"] = Route(rss([a]), headers=FEED)
    http_server.routes["/b.xml"] = Route(rss([b]), headers=FEED)
    config = _config(
        tmp_path,
        {"wire-a": f"{http_server.base}/a.xml", "wire-b": f"{http_server.base}/b.xml"},
        receiver,
    )
    result = newsalert(config, redis_url, "run", "--once", "--wait", "30")
    assert result.returncode == 0, result.stderr
    assert http_server.hits["/world/nk"] == 1
    assert len(receiver.received) == 1, _messages(receiver)


def test_a_refusing_host_is_backed_off_and_shown_once_in_stats(
    tmp_path, http_server, receiver, redis_client, redis_url
):
    items = [
        {
            "title": f"North Korean soldier captured in Kursk region, day {n}",
            "link": f"{http_server.base}/paywalled/{n}",
        }
        for n in range(3)
    ]
    for n in range(3):
        http_server.routes[f"/paywalled/{n}"] = Route(b"Forbidden", status=403)
    http_server.routes["/feed.xml"] = Route(rss(items), headers=FEED)
    config = _config(tmp_path, {"world": f"{http_server.base}/feed.xml"}, receiver)
    result = newsalert(config, redis_url, "run", "--once", "--wait", "30")
    assert result.returncode == 0, result.stderr
    assert len(receiver.received) == 3  # matched on their feed text
    assert sum(ln.count("backed off") for ln in result.stderr.splitlines()) == 1, result.stderr
    stats = newsalert(config, redis_url, "stats")
    assert stats.returncode == 0, stats.stderr
    section = stats.stdout.split("article hosts backed off", 1)[1].split("\n\n", 1)[0]
    assert section.count(http_server.base) == 1 and "HTTP 403" in section, stats.stdout
