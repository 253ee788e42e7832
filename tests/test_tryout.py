"""``try`` on saved feeds, on every configured feed, and its ``--json`` lines."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from configs import NK_WATCHLIST, write_config
from conftest import Route
from feedgen import rss
from procs import newsalert

from worker.model import Highlight, Item, Match, hit_lines, hit_record

DESTS = "hook:\n  url: json://127.0.0.1:9/alerts\n"
HEADLINE = "North Korean troops seen in Kursk region"


def dry_run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return newsalert(cwd, *args, NEWSALERT_VAR=str(cwd / "var"))  # must stay empty: no Redis


def config(root: Path, feeds: str = "allow_private_networks: true\nfeeds: []\n") -> Path:
    return write_config(
        root / "config",
        feeds=feeds,
        destinations=DESTS,
        watchlists={"nk": NK_WATCHLIST.format(notify="[hook]")},
    )


def saved_feed(channel: str) -> bytes:
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel {channel}><title>Saved</title>'
        f"<item><title>{HEADLINE}</title><link>/content/b224</link></item>"
        "</channel></rss>"
    ).encode()


@pytest.mark.parametrize(
    ("channel", "link", "warned"),
    [
        ('xml:base="https://base.example.org/a/"', "https://base.example.org/content/b224", False),
        ("", "", True),  # neither xml:base nor a channel <link>
    ],
)
def test_relative_links_of_a_saved_feed(tmp_path, channel, link, warned):
    cfg = config(tmp_path)
    path = tmp_path / "saved-feed.xml"
    path.write_bytes(saved_feed(channel))
    done = dry_run(tmp_path, "try", str(path), "--json", "--config", str(cfg))
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.splitlines()
    assert json.loads(line)["item"]["link"] == link
    warning = [ln for ln in done.stderr.splitlines() if ln.startswith("warning:")]
    assert bool(warning) == warned, done.stderr
    if warned:
        assert "1 relative item link(s) left empty" in warning[0] and "saved-feed.xml" in warning[0]
    assert not (tmp_path / "var").exists()


def test_a_saved_feed_resolves_against_its_channel_link(tmp_path):
    cfg = config(tmp_path)
    path = tmp_path / "saved.xml"
    body = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Saved</title>'
        "<link>https://news.example.com/world/</link>"
        f"<item><title>{HEADLINE}</title><link>/content/b224</link></item>"
        f"<item><title>{HEADLINE} again</title><link>more/b225</link></item>"
        "</channel></rss>"
    )
    path.write_text(body)
    done = dry_run(tmp_path, "try", "--json", str(path), "--config", str(cfg))
    assert done.returncode == 0, done.stderr
    links = [json.loads(line)["item"]["link"] for line in done.stdout.splitlines()]
    assert links == [
        "https://news.example.com/content/b224",
        "https://news.example.com/world/more/b225",
    ]
    assert "warning" not in done.stderr


def test_try_without_source_tries_every_configured_feed(tmp_path, http_server):
    http_server.routes["/a.xml"] = Route(body=rss([{"title": HEADLINE}]))
    http_server.routes["/b.xml"] = Route(body=rss([{"title": f"Second report: {HEADLINE}"}]))
    feeds = (
        "allow_private_networks: true\nfeeds:\n"
        f"  - {{id: first, url: '{http_server.base}/a.xml'}}\n"
        f"  - {{id: second, url: '{http_server.base}/b.xml'}}\n"
    )
    cfg = config(tmp_path, feeds)
    done = dry_run(tmp_path, "--config", str(cfg), "try", "--json")
    assert done.returncode == 0, done.stderr
    feeds_hit = sorted(json.loads(line)["item"]["feed"] for line in done.stdout.splitlines())
    assert feeds_hit == ["first", "second"]
    assert http_server.hits == {"/a.xml": 1, "/b.xml": 1}

    # One feed down: the other is still matched; the failure is one line, and exit 4.
    del http_server.routes["/b.xml"]
    done = dry_run(tmp_path, "--config", str(cfg), "try")
    assert done.returncode == 4
    assert "second:" in done.stderr and "404" in done.stderr and "Traceback" not in done.stderr
    assert "nk / nk-in-kursk" in done.stdout and "(first)" in done.stdout


@pytest.mark.parametrize("title", ["plain", 'quotes " and \\ and \u2028 and ünï and \x07'])
def test_hit_lines_are_the_pinned_json(title):
    item = Item(id="i1", feed="f", title=title, link="https://n.example.com/é")
    matches = [
        Match("w", "r1", (Highlight("title", "t", title[:3], 0, 3),)),
        Match("w", "r2", ()),
    ]
    expected = [json.dumps(hit_record(item, m), ensure_ascii=False) for m in matches]
    assert list(hit_lines(item, matches)) == expected
    assert json.loads(expected[0]) == {
        "watchlist": "w",
        "rule": "r1",
        "item": {"id": "i1", "title": title, "link": "https://n.example.com/é", "feed": "f"},
        "highlights": [{"field": "title", "term": "t", "text": title[:3], "start": 0, "end": 3}],
    }
