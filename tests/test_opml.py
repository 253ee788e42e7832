"""``newsalert import-opml``: OPML → feeds.yaml, comments kept, no flood on the first poll."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest
from feedgen import rss
from loopfeeds import Answer, FeedServer

from worker.config import load_config
from worker.core import keys
from worker.errors import ConfigError
from worker.poll.feedsfile import slugify
from worker.poll.opml import import_opml, read_opml
from worker.poll.poller import Poller
from worker.service.queue import depths, enqueue_match

FEEDS_YAML = """\
# Feeds we watch. Keep this comment.
defaults:
  interval: 5m      # polled every five minutes
  backfill: 0
  fulltext: never   # test items link off loopback
allow_private_networks: true
feeds:
  # the first feed
  - id: bbc-world
    url: https://feeds.bbci.co.uk/news/world/rss.xml
    tags: [world]
"""


def opml(outlines: str) -> bytes:
    return (
        f'<?xml version="1.0"?><opml version="2.0"><head><title>x</title></head>'
        f"<body>{outlines}</body></opml>"
    ).encode()


def outline(title: str, url: str) -> str:
    return f'<outline type="rss" text={quoteattr(title)} xmlUrl={quoteattr(url)}/>'


def config_dir(tmp_path: Path, feeds: str = FEEDS_YAML) -> Path:
    root = tmp_path / "config"
    (root / "watchlists").mkdir(parents=True)
    (root / "feeds.yaml").write_text(feeds)
    (root / "destinations.yaml").write_text("hook:\n  url: json://127.0.0.1:9/x\n")
    return root


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("BBC News - World", "bbc-news-world"),
        ("Zelenskýj's Blog!", "zelenskyj-s-blog"),
        ("  ", ""),
        ("x" * 80, "x" * 48),
    ],
)
def test_slugify(title, slug):
    assert slugify(title) == slug


def test_import_keeps_comments_and_order_and_skips_known_feeds(tmp_path):
    root = config_dir(tmp_path)
    doc = opml(
        outline("BBC World again", "https://FEEDS.bbci.co.uk/news/world/rss.xml?utm_source=x")
        + "<outline text='Tech news'>"
        + outline("Ars Technica", "https://feeds.arstechnica.com/arstechnica/index")
        + outline("Ars Technica", "https://feeds.arstechnica.com/arstechnica/science")
        + "</outline>"
        + outline("Ars Technica", "https://feeds.arstechnica.com/arstechnica/index")  # repeat
        + outline("Bad", "ftp://example.com/feed")
        + outline("", "https://blog.example.org/feed.xml")
    )
    (tmp_path / "subs.opml").write_bytes(doc)
    result = import_opml(tmp_path / "subs.opml", root)
    assert result.added == ["ars-technica", "ars-technica-2", "blog-example-org"]
    assert (result.present, result.invalid) == (2, 1)
    text = (root / "feeds.yaml").read_text()
    assert text.startswith(FEEDS_YAML)  # every comment, key and line kept as it was
    assert text[len(FEEDS_YAML) :] == (
        "  - id: ars-technica\n    url: https://feeds.arstechnica.com/arstechnica/index\n"
        "    tags: [tech-news]\n"
        "  - id: ars-technica-2\n    url: https://feeds.arstechnica.com/arstechnica/science\n"
        "    tags: [tech-news]\n"
        "  - id: blog-example-org\n    url: https://blog.example.org/feed.xml\n"
    )
    config = load_config(root)
    assert config.feeds[0].id == "bbc-world" and len(config.feeds) == 4
    again = import_opml(tmp_path / "subs.opml", root)
    assert again.added == [] and again.present == 5


def test_entity_declarations_are_refused(tmp_path):
    bomb = b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaa">]><opml><body/></opml>'
    with pytest.raises(ConfigError, match="entity"):
        read_opml(bomb)


def test_cli_prints_what_it_did(tmp_path):
    root = config_dir(tmp_path)
    (tmp_path / "subs.opml").write_bytes(
        opml(
            outline("One", "https://one.example.com/rss")
            + outline("BBC", "https://feeds.bbci.co.uk/news/world/rss.xml")
        )
    )
    env = dict(os.environ, NEWSALERT_CONFIG=str(root))
    out = subprocess.run(
        [sys.executable, "-m", "worker.cli", "import-opml", str(tmp_path / "subs.opml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).parent.parent,
    )
    assert out.returncode == 0, out.stderr
    assert "added 1 feeds, skipped 1 already present" in out.stdout


def test_200_imported_feeds_flood_nobody(tmp_path, redis_client):
    server = FeedServer()
    try:
        lines = []
        for i in range(200):
            path = f"/feed/{i}.xml"
            body = rss(
                [
                    {"title": f"Feed {i} story {j}", "link": f"https://n{i}.example.com/{j}"}
                    for j in range(15)
                ],
                title=f"Feed {i}",
            )
            server.answers[path] = Answer(body)
            lines.append(outline(f"Feed {i}", server.url(path)))
        (tmp_path / "subs.opml").write_bytes(opml("".join(lines)))
        root = config_dir(
            tmp_path,
            FEEDS_YAML.replace(
                "feeds:\n",
                f"feeds:\n  - id: eager\n    url: {server.url('/feed/0.xml')}x\n    backfill: 3\n",
            ),
        )
        server.answers["/feed/0.xmlx"] = server.answers["/feed/0.xml"]
        result = import_opml(tmp_path / "subs.opml", root)
        assert len(result.added) == 200
        config = load_config(root)
        local = tuple(f for f in config.feeds if f.url.startswith("http://127.0.0.1"))
        assert len(local) == 201
        poller = Poller(redis_client, config, enqueue=enqueue_match)
        outs = asyncio.run(poller.poll_all(local))
        assert len(outs) == 201 and not [o for o in outs if o.error]
        assert sum(o.marked_seen for o in outs) == 200 * 15 + 12
        # The backfilled feed's three items, in one batch: nothing else.
        assert depths(redis_client)[keys.MATCH_QUEUE]["queued"] == 1
        assert sum(o.queued for o in outs) == 3
        assert poller.parses == 1  # only the backfill feed needed a full parse
    finally:
        server.close()
