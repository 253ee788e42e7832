"""Full text: extraction, robots.txt, the per-URL cache, deadlines and host back-off.

Real Redis and real loopback HTTP servers throughout; ``Articles.add`` runs in
its own event loop with a real ``Fetcher``. Also home to the page builder and
the hanging server that ``test_fulltext_e2e`` reuses.
"""

from __future__ import annotations

import asyncio
import html
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import serving
from conftest import Route
from shared import shared_dir

from worker.config import Config, Feed, load_config
from worker.core import keys
from worker.deliver.render import excerpt_article
from worker.errors import ConfigError
from worker.model import Item
from worker.poll.fetch import Fetcher, FetchLimits
from worker.poll.fulltext import (
    Articles,
    extract_text,
    wants_article,
)
from worker.poll.hosts import backed_off_hosts

ARTICLES = Path(__file__).parent / "fixtures" / "articles"
OWN = "pyongyang-soldier-full.txt"
HTML = {"Content-Type": "text/html; charset=utf-8"}


def article_page(text: str, *, plain_trailer: bool = False) -> bytes:
    """Return a realistic article page for a seed-format text (title, body, PREV/NEXT lines)."""
    lines = [ln.strip() for ln in text.strip().splitlines()]
    title = lines[0]
    trailer = {
        ln.split(" ", 1)[0]: ln.split(" ", 1)[1]
        for ln in lines
        if ln.startswith(("PREV ", "NEXT "))
    }
    body = [
        ln
        for ln in lines[1:]
        if ln and ln != "-" and ln != title and not ln.startswith(("PREV ", "NEXT "))
    ]
    esc = html.escape
    paras = "\n".join(f"<p>{esc(p)}</p>" for p in body)
    prev, nxt = esc(trailer.get("PREV", "Earlier story")), esc(trailer.get("NEXT", "Later story"))
    if plain_trailer:  # as in the seed file: plain paragraphs inside the article body
        paras += f"\n<p>-</p><p>-</p><p>PREV {prev}</p><p>NEXT {nxt}</p>"
        pager = ""
    else:
        pager = (
            f'<nav class="post-navigation"><div class="nav-previous"><a href="/prev">PREV '
            f'{prev}</a></div><div class="nav-next"><a href="/next">NEXT {nxt}</a></div></nav>'
        )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)} | World News Daily</title>
<meta property="og:title" content="{esc(title)}"><link rel="stylesheet" href="/site.css"></head>
<body>
<div id="cookie-banner" class="cookie-consent"><p>We use cookies to improve your experience.
By continuing to browse you accept our cookie policy.</p><button>Accept all cookies</button>
<button>Manage preferences</button></div>
<header class="site-header"><a class="logo" href="/">World News Daily</a>
<nav class="main-nav"><ul><li><a href="/">Home</a></li><li><a href="/world">World</a></li>
<li><a href="/politics">Politics</a></li><li><a href="/sport">Sport</a></li>
<li><a href="/flanders">Flanders burglary watch</a></li></ul></nav></header>
<main><article class="post">
<h1 class="entry-title">{esc(title)}</h1>
<div class="byline">By Staff Reporter · 27 December 2024</div>
<div class="entry-content">
{paras}
</div>
<div class="share"><a href="#">Share on Facebook</a> <a href="#">Share on X</a></div>
</article>
<aside class="related-stories"><h3>Related stories</h3><ul>
<li><a href="/r1">Burglary in Flanders: police appeal for witnesses</a></li>
<li><a href="/r2">Storm closes ports along the coast</a></li></ul></aside>
{pager}
<section id="comments" class="comments"><h3>3 comments</h3>
<div class="comment"><p>Burglary in Flanders is the real story, why does nobody cover it?</p></div>
</section></main>
<footer class="site-footer"><p>© 2024 World News Daily. All rights reserved.</p>
<a href="/privacy">Privacy</a> <a href="/cookies">Cookie settings</a></footer>
</body></html>""".encode()


def article_text(name: str) -> str:
    """Return the text of ``OWN`` or of the shared seed article."""
    if name == "seed":
        return (shared_dir("seed") / "north-korean-soldier-kursk.txt").read_text()
    return (ARTICLES / OWN).read_text()


class HangingServer:
    """A loopback server that never answers ``/hang…`` (until closed) and 404s everything else."""

    def __init__(self) -> None:
        release = self.release = threading.Event()
        self.hits: dict[str, int] = {}
        hits = self.hits

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                hits[self.path] = hits.get(self.path, 0) + 1
                if self.path.startswith("/hang"):
                    release.wait(30)  # bounded even if the test forgets to close
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        serving.start(self.httpd)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.release.set()
        serving.stop(self.httpd)


@pytest.fixture
def hanging_server() -> Iterator[HangingServer]:
    server = HangingServer()
    yield server
    server.close()


def _config(*feeds: Feed) -> Config:
    return Config(
        root=".",
        version="test",
        feeds=feeds,
        watchlists=(),
        destinations={},
        allow_private_networks=True,
    )


def _item(link: str, feed: str = "world", title: str = "Teaser only") -> Item:
    return Item(id=f"{feed}-{abs(hash(link)) % 10**8:08d}", feed=feed, title=title, link=link)


def _add(
    client: Any, config: Config, items: list[Item], *, allow_private: bool = True
) -> list[Item]:
    async def run() -> list[Item]:
        async with Fetcher(FetchLimits(), allow_private=allow_private) as fetcher:
            return await Articles(client, config).add(fetcher, items)

    return asyncio.run(run())


# -- extraction -------------------------------------------------------------


@pytest.mark.parametrize("name", ["own", "seed"])
@pytest.mark.parametrize("plain_trailer", [False, True])
def test_extraction_keeps_the_story_and_drops_boilerplate(name: str, plain_trailer: bool) -> None:
    text = extract_text(
        article_page(article_text(name), plain_trailer=plain_trailer), "https://news.example.com/a"
    )
    assert "North Korean" in text and "Kursk" in text
    for boilerplate in (
        "Burglary",
        "Flanders",
        "cookie",
        "Related stories",
        "PREV",
        "NEXT",
        "Share on",
        "All rights reserved",
        "comments",
    ):
        assert boilerplate not in text, boilerplate
    assert "\n-\n" not in text


def test_extraction_of_a_page_without_an_article_is_empty() -> None:
    assert (
        extract_text(b"<html><head><title>x</title></head><body></body></html>", "https://x/") == ""
    )


@pytest.mark.parametrize(
    ("mode", "words", "link", "expected"),
    [
        ("auto", 10, "https://news.example.com/a", True),
        ("auto", 500, "https://news.example.com/a", False),
        ("always", 500, "https://news.example.com/a", True),
        ("never", 10, "https://news.example.com/a", False),
        ("auto", 10, "", False),
        ("auto", 10, "ftp://news.example.com/a", False),
    ],
)
def test_which_items_want_their_article(mode: str, words: int, link: str, expected: bool) -> None:
    feed = Feed(id="world", url="https://news.example.com/rss", fulltext=mode)
    item = Item(id="1", feed="world", title="Teaser", summary="word " * (words - 1), link=link)
    assert wants_article(feed, item) is expected


# -- fetching through the poller's fetcher ----------------------------------


def test_article_text_is_added_and_cached_by_canonical_url(http_server, redis_client) -> None:
    http_server.routes["/world/nk"] = Route(article_page(article_text("own")), headers=HTML)
    config = _config(Feed(id="world", url=f"{http_server.base}/rss"))
    first = _add(redis_client, config, [_item(f"{http_server.base}/world/nk?utm_source=rss")])
    assert "North Korean" in first[0].article and "Burglary" not in first[0].article
    assert http_server.hits["/world/nk"] == 1  # tracking parameters are not sent
    again = _add(redis_client, config, [_item(f"{http_server.base}/world/nk#top")])
    assert again[0].article == first[0].article
    assert http_server.hits["/world/nk"] == 1, "served from the cache"
    assert http_server.hits["/robots.txt"] == 1
    ttl = redis_client.ttl(keys.article(f"{http_server.base}/world/nk"))
    assert 0 < ttl <= keys.ARTICLE_TTL <= keys.ITEM_TTL


def test_long_feed_text_is_not_fetched_in_auto_mode(http_server, redis_client) -> None:
    http_server.routes["/a"] = Route(article_page(article_text("own")), headers=HTML)
    config = _config(Feed(id="world", url="x", fulltext_min_words=5))
    long = Item(
        id="1", feed="world", title="A headline with six words here", link=f"{http_server.base}/a"
    )
    assert _add(redis_client, config, [long])[0].article == ""
    assert http_server.hits == {}


def test_two_pollers_fetch_a_syndicated_story_once(http_server, redis_client) -> None:
    route = Route(article_page(article_text("own")), headers=HTML)
    http_server.routes["/story"] = route
    config = _config(Feed(id="a", url="x"), Feed(id="b", url="y"))

    async def poller(feed: str, link: str) -> list[Item]:
        async with Fetcher(allow_private=True) as fetcher:  # each poller has its own fetcher
            return await Articles(redis_client, config).add(fetcher, [_item(link, feed)])

    async def both() -> list[list[Item]]:
        return await asyncio.gather(
            poller("a", f"{http_server.base}/story?utm_medium=a"),
            poller("b", f"{http_server.base}/story?utm_campaign=b"),
        )

    a, b = asyncio.run(both())
    assert a[0].article and a[0].article == b[0].article
    assert http_server.hits["/story"] == 1


def test_robots_disallowing_the_path_means_no_fetch(http_server, redis_client) -> None:
    http_server.routes["/robots.txt"] = Route(b"User-agent: *\nDisallow: /private/\n")
    http_server.routes["/private/nk"] = Route(article_page(article_text("own")), headers=HTML)
    http_server.routes["/public/nk"] = Route(article_page(article_text("own")), headers=HTML)
    config = _config(Feed(id="world", url="x"))
    out = _add(
        redis_client,
        config,
        [_item(f"{http_server.base}/private/nk"), _item(f"{http_server.base}/public/nk")],
    )
    assert out[0].article == "" and out[1].article
    assert "/private/nk" not in http_server.hits
    assert http_server.hits["/robots.txt"] == 1
    assert backed_off_hosts(redis_client) == []  # one path refused, not the host


@pytest.mark.parametrize("status", [401, 403, 404, 410])
def test_robots_txt_answering_4xx_means_no_rules(http_server, redis_client, status) -> None:
    """RFC 9309 §2.3.1.3: a 4xx robots.txt is "unavailable", and everything may be fetched."""
    http_server.routes["/robots.txt"] = Route(b"User-agent: *\nDisallow: /\n", status=status)
    http_server.routes["/nk"] = Route(article_page(article_text("own")), headers=HTML)
    out = _add(redis_client, _config(Feed(id="world", url="x")), [_item(f"{http_server.base}/nk")])
    assert "North Korean" in out[0].article
    assert http_server.hits["/robots.txt"] == 1 and http_server.hits["/nk"] == 1
    assert backed_off_hosts(redis_client) == []
    ttl = redis_client.ttl(keys.robots(http_server.base))
    assert keys.ROBOTS_ERROR_TTL < ttl <= keys.ROBOTS_TTL  # the answer is kept for a day


@pytest.mark.parametrize("status", [500, 503])
def test_robots_txt_answering_5xx_disallows_for_a_short_while(
    http_server, redis_client, status
) -> None:
    """RFC 9309 §2.3.1.4: "unreachable" disallows everything, here for ROBOTS_ERROR_TTL only."""
    http_server.routes["/robots.txt"] = Route(b"down", status=status)
    http_server.routes["/nk"] = Route(article_page(article_text("own")), headers=HTML)
    config = _config(Feed(id="world", url="x"))
    out = _add(redis_client, config, [_item(f"{http_server.base}/nk")])
    assert out[0].article == "" and "/nk" not in http_server.hits
    ttl = redis_client.ttl(keys.robots(http_server.base))
    assert 0 < ttl <= keys.ROBOTS_ERROR_TTL
    # An outage of robots.txt is not a refusal: the host is not left alone for hours.
    assert backed_off_hosts(redis_client) == []
    # Once that answer expires and robots.txt is back, the host's next article is fetched.
    http_server.routes["/robots.txt"] = Route(b"User-agent: *\nAllow: /\n")
    http_server.routes["/nk2"] = http_server.routes["/nk"]
    redis_client.delete(keys.robots(http_server.base))  # what the expiry does
    again = _add(redis_client, config, [_item(f"{http_server.base}/nk2")])
    assert "North Korean" in again[0].article and http_server.hits["/nk2"] == 1


def test_robots_rules_for_our_agent_and_disallow_all_backs_off(http_server, redis_client) -> None:
    http_server.routes["/robots.txt"] = Route(
        b"User-agent: newsalert\nDisallow: /\n\nUser-agent: *\nAllow: /\n"
    )
    http_server.routes["/nk"] = Route(article_page(article_text("own")), headers=HTML)
    out = _add(redis_client, _config(Feed(id="world", url="x")), [_item(f"{http_server.base}/nk")])
    assert out[0].article == "" and "/nk" not in http_server.hits
    assert [h["host"] for h in backed_off_hosts(redis_client)] == [http_server.base]


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (403, b"Forbidden", "HTTP 403"),
        (401, b"Login", "HTTP 401"),
        (
            200,
            (
                b'<html><body><div class="paywall"><p>Subscribe to continue reading.</p></div>'
                b"<article><p>Ukrainian forces captured a soldier.</p></article></body></html>"
            ),
            "paywall",
        ),
    ],
)
def test_a_refusing_host_is_backed_off_and_reported_once(
    http_server, redis_client, caplog, status: int, body: bytes, reason: str
) -> None:
    for path in ("/one", "/two", "/three"):
        http_server.routes[path] = Route(body, status=status, headers=HTML)
    config = _config(Feed(id="world", url="x"))
    with caplog.at_level(logging.WARNING, logger="newsalert.article"):
        first = _add(redis_client, config, [_item(f"{http_server.base}/one")])
        later = _add(
            redis_client,
            config,
            [_item(f"{http_server.base}/two"), _item(f"{http_server.base}/three")],
        )
    assert [i.article for i in first + later] == ["", "", ""]
    assert "/two" not in http_server.hits and "/three" not in http_server.hits
    hosts = backed_off_hosts(redis_client)
    assert len(hosts) == 1 and reason in hosts[0]["reason"]
    assert hosts[0]["until"] > time.time() + 3600
    assert sum("backed off" in r.getMessage() for r in caplog.records) == 1


def test_a_host_that_keeps_failing_is_backed_off(http_server, redis_client) -> None:
    for n in range(5):
        http_server.routes[f"/p{n}"] = Route(b"oops", status=503)
    config = _config(Feed(id="world", url="x"))
    for n in range(5):
        _add(redis_client, config, [_item(f"{http_server.base}/p{n}")])
    assert [f"/p{n}" in http_server.hits for n in range(5)] == [True, True, True, False, False]
    assert "keeps failing" in backed_off_hosts(redis_client)[0]["reason"]


def test_a_hanging_article_server_costs_at_most_the_deadline(
    hanging_server, redis_client, caplog
) -> None:
    config = _config(Feed(id="slow-feed", url="x", fulltext_deadline=0.5))
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="newsalert.article"):
        out = _add(
            redis_client,
            config,
            [_item(f"{hanging_server.base}/hang/{n}", "slow-feed") for n in range(3)],
        )
    assert time.monotonic() - started < 2.0
    assert [i.article for i in out] == ["", "", ""]
    late = [r.getMessage() for r in caplog.records if "matching on feed text" in r.getMessage()]
    assert len(late) == 3 and all(m.startswith("feed slow-feed:") for m in late)
    assert not redis_client.keys(keys.article_lock("*"))  # markers released


def test_articles_obey_the_private_address_policy(http_server, redis_client) -> None:
    http_server.routes["/nk"] = Route(article_page(article_text("own")), headers=HTML)
    out = _add(
        redis_client,
        _config(Feed(id="world", url="x")),
        [_item(f"{http_server.base}/nk")],
        allow_private=False,
    )
    assert out[0].article == "" and http_server.hits == {}


def test_non_html_is_not_extracted(http_server, redis_client) -> None:
    http_server.routes["/doc.pdf"] = Route(
        b"%PDF-1.7 North Korean Kursk", headers={"Content-Type": "application/pdf"}
    )
    out = _add(
        redis_client, _config(Feed(id="world", url="x")), [_item(f"{http_server.base}/doc.pdf")]
    )
    assert out[0].article == ""


# -- configuration ----------------------------------------------------------


def _feeds_config(tmp_path: Path, feeds_yaml: str) -> Config:
    (tmp_path / "watchlists").mkdir(parents=True)
    (tmp_path / "feeds.yaml").write_text(feeds_yaml)
    (tmp_path / "destinations.yaml").write_text("hook:\n  url: json://127.0.0.1:9/x\n")
    return load_config(tmp_path, env={})


def test_fulltext_settings_have_defaults_and_per_feed_values(tmp_path: Path) -> None:
    config = _feeds_config(
        tmp_path,
        (
            "defaults: {fulltext: always, fulltext_min_words: 50, fulltext_deadline: 3s}\n"
            "feeds:\n"
            "  - {id: a, url: 'https://a.example/rss'}\n"
            "  - {id: b, url: 'https://b.example/rss', fulltext: auto, fulltext_min_words: 200,"
            " fulltext_deadline: 500ms}\n"
        ),
    )
    a, b = config.feeds
    assert (a.fulltext, a.fulltext_min_words, a.fulltext_deadline) == ("always", 50, 3.0)
    assert (b.fulltext, b.fulltext_min_words, b.fulltext_deadline) == ("auto", 200, 0.5)
    plain = _feeds_config(tmp_path / "p", "feeds:\n  - {id: a, url: 'https://a.example/rss'}\n")
    assert (plain.feeds[0].fulltext_min_words, plain.feeds[0].fulltext_deadline) == (120, 10.0)


@pytest.mark.parametrize(
    "bad",
    [
        "fulltext: sometimes",
        "fulltext_min_words: -1",
        "fulltext_deadline: 10m",
        "fulltext_deadline: soon",
    ],
)
def test_bad_fulltext_settings_are_reported_with_their_line(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        _feeds_config(tmp_path, f"feeds:\n  - id: a\n    url: https://a.example/rss\n    {bad}\n")
    assert "feeds.yaml:4:" in str(info.value)


# -- what outlives matching ---------------------------------------------------


def test_an_alert_keeps_only_the_article_text_around_its_highlights() -> None:
    from worker.deliver.render import render
    from worker.model import Alert, Highlight

    text = extract_text(article_page(article_text("own")), "https://news.example.com/a")
    spans = [(m, text.index(m)) for m in ("North Korean", "Kursk")]
    highlights = tuple(Highlight("article", m, m, at, at + len(m)) for m, at in spans)
    headline = "Ukraine says it captured a soldier sent by Pyongyang"
    at = headline.index("soldier")
    title = Highlight("title", "soldier", "soldier", at, at + 7)
    item = Item(
        id="1", feed="world", title=headline, link="https://news.example.com/a", article=text
    )
    alert = Alert("nk", "NK", ("nk-in-kursk",), item, (*highlights, title))
    short = excerpt_article(alert)
    assert len(short.item.article) < len(text) / 2
    for h in short.highlights:
        assert short.item.text(h.field)[h.start : h.end] == h.text
    for fmt in ("text", "markdown", "html"):  # the message is the same, from a fraction of the text
        assert render(short, fmt) == render(alert, fmt)
    assert len(excerpt_article(alert, context=10).item.article) == 12 + 5 + 4 * 10 + len(" … ")
    bare = Alert("nk", "NK", ("r",), replace(item, article=""), (title,))
    assert excerpt_article(bare) == bare


@pytest.mark.parametrize(
    ("last", "kept"),
    [
        ("NEXT Burglary in Flanders: thieves arrested", False),
        ("PREV Earlier story", False),
        ("Next article: Storm closes ports", False),
        ("Read more: Storm closes ports", False),
        ("Next week the council meets again.", True),
        ("Related talks are planned in Geneva.", True),
    ],
)
def test_only_teaser_lines_are_trimmed_from_the_end(last: str, kept: bool) -> None:
    from worker.poll.fulltext import _trim

    assert _trim(f"Story paragraph.\n-\n{last}") == (
        "Story paragraph.\n" + last if kept else "Story paragraph."
    )
