"""``newsalert add-feed``: feed discovery on a real loopback site, and the edit of feeds.yaml."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from configs import NK_WATCHLIST, write_config
from conftest import Route, _Server
from feedgen import rss
from procs import newsalert

from worker.config import load_config
from worker.poll.discover import FALLBACK_PATHS, feed_links

FEEDS_YAML = """\
# Our feeds. Keep this comment.
defaults:
  interval: 5m      # poll every five minutes
allow_private_networks: true   # the test site is on loopback
feeds:
  - id: existing    # the first feed
    url: https://news.example.com/rss.xml
    tags: [world]
"""
HTML = "text/html; charset=utf-8"
ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Example News: Comments</title>
<id>urn:x</id><updated>2026-11-30T00:00:00Z</updated>
<entry><title>A comment</title><id>urn:c1</id><link href="https://news.example.com/c1"/>
<updated>2026-11-30T00:00:00Z</updated></entry></feed>
"""


def page(*links: tuple[str, str]) -> Route:
    tags = "".join(f'<link rel="alternate" type="{t}" href="{h}" title="x">' for t, h in links)
    body = f"<!DOCTYPE html><html><head><title>Site</title>{tags}</head><body>Hi</body></html>"
    return Route(body=body.encode(), headers={"Content-Type": HTML})


def world_feed(n: int = 3) -> Route:
    items = [{"title": f"Story {i}", "link": f"https://news.example.com/{i}"} for i in range(n)]
    return Route(body=rss(items, title="Example News: World"))


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path / "config",
        feeds=FEEDS_YAML,
        destinations="hook:\n  url: json://127.0.0.1:9/alerts\n",
        watchlists={"nk": NK_WATCHLIST.format(notify="[hook]")},
    )


def add_feed(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return newsalert(config.parent, "add-feed", *args, "--config", str(config))


def added_text(config: Path) -> str:
    text = (config / "feeds.yaml").read_text()
    assert text.startswith(FEEDS_YAML), "comments, order or existing lines changed"
    return text[len(FEEDS_YAML) :]


def test_finds_the_feed_a_page_links_to_and_keeps_comments(config, http_server: _Server):
    http_server.routes["/"] = page(("application/rss+xml", "news/feed.xml"))  # relative href
    http_server.routes["/news/feed.xml"] = world_feed(3)
    done = add_feed(config, f"{http_server.base}/", "--tags", "world,korea", "--interval", "10m")
    assert done.returncode == 0, done.stderr
    assert added_text(config) == (
        "  - id: example-news-world\n"
        f"    url: {http_server.base}/news/feed.xml\n"
        "    tags: [world, korea]\n"
        "    interval: 10m\n"
    )
    assert "added example-news-world: Example News: World (3 items)" in done.stdout
    assert not any(p in http_server.hits for p in FALLBACK_PATHS)  # named: no guessing
    feeds = {f.id: f for f in load_config(config).feeds}
    assert feeds["example-news-world"].interval == 600 and feeds["existing"].tags == ("world",)

    again = add_feed(config, f"{http_server.base}/news/feed.xml#latest")
    assert again.returncode == 0, again.stderr
    assert "already in" in again.stdout and "'example-news-world'" in again.stdout
    assert added_text(config).count("- id:") == 1  # reported, not duplicated


def test_several_feeds_are_listed_and_pick_chooses(config, http_server: _Server):
    http_server.routes["/"] = page(
        ("application/rss+xml", "/world.xml"),
        ("application/atom+xml", f"{http_server.base}/comments.atom"),
        ("text/css", "/style.css"),
        ("application/rss+xml", "/world.xml"),  # named twice: offered once
    )
    http_server.routes["/world.xml"] = world_feed(2)
    http_server.routes["/comments.atom"] = Route(body=ATOM.encode())
    done = add_feed(config, http_server.base + "/")
    assert done.returncode == 0, done.stderr
    listed = [ln.strip() for ln in done.stdout.splitlines() if ln.startswith("  ")]
    assert listed == [
        f"1. Example News: World (2 items)  {http_server.base}/world.xml",
        f"2. Example News: Comments (1 items)  {http_server.base}/comments.atom",
    ]
    assert "id: example-news-world\n" in added_text(config)
    picked = add_feed(config, http_server.base + "/", "--pick", "2", "--id", "comments")
    assert picked.returncode == 0, picked.stderr
    assert added_text(config).endswith(
        f"  - id: comments\n    url: {http_server.base}/comments.atom\n"
    )


def test_usual_paths_are_tried_only_when_the_page_names_no_feed(config, http_server: _Server):
    http_server.routes["/blog/"] = page()
    http_server.routes["/index.xml"] = world_feed(4)
    done = add_feed(config, f"{http_server.base}/blog/")
    assert done.returncode == 0, done.stderr
    assert f"url: {http_server.base}/index.xml\n" in added_text(config)
    assert all(http_server.hits.get(p) == 1 for p in FALLBACK_PATHS)


def test_a_feed_url_is_added_as_it_is(config, http_server: _Server):
    http_server.routes["/feed.json"] = Route(
        body=b'{"version": "https://jsonfeed.org/version/1.1", "title": "J\\u00e9sus News",'
        b' "items": [{"id": "1", "title": "x", "url": "https://n.example.com/1"}]}',
        headers={"Content-Type": "application/feed+json"},
    )
    done = add_feed(config, f"{http_server.base}/feed.json")
    assert done.returncode == 0, done.stderr
    assert added_text(config).startswith("  - id: jesus-news\n")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no-feed", "no feed found"),
        ("not-html", "neither a feed nor an HTML page"),
        ("unreachable", "cannot connect"),
        ("private", "refusing address 127.0.0.1"),
        ("dead-link", "could not be read"),
        ("scheme", "not an http(s) URL"),
        ("pick", "--pick 3"),
    ],
)
def test_bad_input_is_one_line_and_exit_4(config, http_server: _Server, case, message):
    http_server.routes["/"] = page()  # no links; none of the usual paths exists
    http_server.routes["/dead"] = page(("application/rss+xml", "/gone.xml"))
    http_server.routes["/one"] = page(("application/rss+xml", "/w.xml"))
    http_server.routes["/w.xml"] = world_feed()
    http_server.routes["/text"] = Route(body=b"just text", headers={"Content-Type": "text/plain"})
    url, extra = {
        "no-feed": (f"{http_server.base}/", ()),
        "not-html": (f"{http_server.base}/text", ()),
        "unreachable": (f"http://127.0.0.1:{closed_port()}/", ()),
        "private": (f"{http_server.base}/one", ()),
        "dead-link": (f"{http_server.base}/dead", ()),
        "scheme": ("file:///etc/passwd", ()),
        "pick": (f"{http_server.base}/one", ("--pick", "3")),
    }[case]
    if case == "private":
        feeds = config / "feeds.yaml"
        feeds.write_text(
            feeds.read_text().replace(
                "allow_private_networks: true", "allow_private_networks: false"
            )
        )
    before = (config / "feeds.yaml").read_text()
    done = add_feed(config, url, *extra)
    assert done.returncode == 4, (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert (config / "feeds.yaml").read_text() == before


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        (
            '<link rel="alternate" type="application/rss+xml" href="feed">',
            ["https://s.example/a/feed"],
        ),
        (
            '<LINK REL="Alternate Feed" TYPE="Application/Atom+XML; charset=utf-8" HREF="/x">',
            ["https://s.example/x"],
        ),
        (
            '<base href="https://cdn.example/b/"><link rel="alternate" type="application/feed+json" href="f.json">',
            ["https://cdn.example/b/f.json"],
        ),
        ('<link rel="stylesheet" type="application/rss+xml" href="/no">', []),
        ('<link rel="alternate" type="text/html" href="/fr/">', []),
        ('<link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">', []),
    ],
)
def test_feed_links(html, expected):
    assert feed_links(f"<html><head>{html}</head></html>", "https://s.example/a/page") == expected


def test_only_feeds_yaml_has_to_be_valid(config, http_server: _Server):
    """An unset secret in destinations.yaml does not stop adding a feed; a broken feeds.yaml does."""
    http_server.routes["/feed.xml"] = world_feed()
    (config / "destinations.yaml").write_text("hook:\n  url: ${NEWSALERT_TEST_UNSET_SECRET}\n")
    done = add_feed(config, f"{http_server.base}/feed.xml")
    assert done.returncode == 0, done.stderr
    assert "id: example-news-world" in added_text(config)

    feeds = config / "feeds.yaml"
    feeds.write_text(feeds.read_text().replace("interval: 5m", "interval: soon"))
    before = feeds.read_text()
    broken = add_feed(config, f"{http_server.base}/feed.xml#again")
    assert broken.returncode == 1
    assert "feeds.yaml:3:" in broken.stderr and "Traceback" not in broken.stderr
    assert feeds.read_text() == before
