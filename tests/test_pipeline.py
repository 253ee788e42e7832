"""End to end: a loopback feed → real Redis → RQ → apprise → a real receiver.

Each test runs the real ``newsalert run --once`` as a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from configs import NK_WATCHLIST, feeds_yaml, write_config
from feedgen import UNRELATED, article_item, rss
from shared import shared_dir

FIXTURES = Path(__file__).parent / "fixtures"


def newsalert(
    config: Path, redis_url: str, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ, REDIS_URL=redis_url, NEWSALERT_CONFIG=str(config), NEWSALERT_LOG_LEVEL="INFO"
    )
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=config.parent,
    )


def _article(which: str) -> str:
    """Return the seed article (from ../shared) or our own fixture: title line, then body."""
    if which == "seed":
        return (shared_dir("seed") / "north-korean-soldier-kursk.txt").read_text()
    return (FIXTURES / "articles" / "nk-prisoner.txt").read_text()


def _serve_article(http_server, text: str) -> str:
    items = [
        article_item(text, "https://news.example.com/world/nk-soldier-kursk?utm_source=rss"),
        *UNRELATED,
    ]
    http_server.routes["/feed.xml"] = http_server_route(rss(items))
    return f"{http_server.base}/feed.xml"


def http_server_route(body: bytes):
    from conftest import Route

    return Route(body=body, headers={"Content-Type": "application/rss+xml"})


def _webhook_config(tmp_path: Path, feed_url: str, receiver) -> Path:
    return write_config(
        tmp_path / "config",
        feeds=feeds_yaml({"world": feed_url}),
        destinations=f"hook:\n  url: json://127.0.0.1:{receiver.port}/alerts\n",
        watchlists={"north-korea-kursk": NK_WATCHLIST.format(notify="[hook]")},
    )


def _alert_texts(receiver) -> list[str]:
    return [
        f"{r['body'].get('title', '')}\n{r['body'].get('message', '')}" for r in receiver.received
    ]


@pytest.mark.parametrize("article", ["own", "seed"])
def test_story_reaches_webhook_exactly_once(
    article, tmp_path, http_server, receiver, redis_client, redis_url
):
    text = _article(article)
    config = _webhook_config(tmp_path, _serve_article(http_server, text), receiver)

    first = newsalert(config, redis_url, "run", "--once", "--wait", "30")
    assert first.returncode == 0, first.stderr
    texts = _alert_texts(receiver)
    assert len(texts) == 1, (texts, first.stderr)
    assert "North Korean" in texts[0] and "Kursk" in texts[0]
    assert "nk-in-kursk" in texts[0]  # says why it fired
    assert "news.example.com/world/nk-soldier-kursk" in texts[0]

    second = newsalert(config, redis_url, "run", "--once", "--wait", "30")
    assert second.returncode == 0, second.stderr
    assert len(receiver.received) == 1, "a second run must send nothing new"


@pytest.mark.parametrize("article", ["own", "seed"])
def test_story_reaches_mailbox_exactly_once(
    article, tmp_path, http_server, smtp_server, redis_client, redis_url
):
    text = _article(article)
    feed_url = _serve_article(http_server, text)
    config = write_config(
        tmp_path / "config",
        feeds=feeds_yaml({"world": feed_url}),
        destinations=(
            f"desk:\n  url: mailto://newsalert@127.0.0.1:{smtp_server.port}"
            "?to=desk@example.com&from=newsalert@example.com\n"
        ),
        watchlists={"north-korea-kursk": NK_WATCHLIST.format(notify="[desk]")},
    )
    for _ in range(2):
        result = newsalert(config, redis_url, "run", "--once", "--wait", "30")
        assert result.returncode == 0, result.stderr
    assert len(smtp_server.messages) == 1
    msg = smtp_server.messages[0]
    assert "North Korean" in msg["Subject"]
    body = msg.get_body(preferencelist=("html", "plain")).get_content()
    assert "Kursk" in body and "North Korean" in body


def test_first_poll_without_backfill_alerts_nothing(
    tmp_path, http_server, receiver, redis_client, redis_url
):
    text = (FIXTURES / "articles" / "nk-prisoner.txt").read_text()
    feed_url = _serve_article(http_server, text)
    config = write_config(
        tmp_path / "config",
        feeds=feeds_yaml({"world": feed_url}, backfill=0),
        destinations=f"hook:\n  url: json://127.0.0.1:{receiver.port}/alerts\n",
        watchlists={"north-korea-kursk": NK_WATCHLIST.format(notify="[hook]")},
    )
    first = newsalert(config, redis_url, "run", "--once", "--wait", "20")
    assert first.returncode == 0, first.stderr
    assert receiver.received == []
    assert "existing items marked seen" in first.stderr

    # A story that appears after the first poll is new, and alerts.
    items = [article_item(text, "https://news.example.com/world/later-story"), *UNRELATED]
    http_server.routes["/feed.xml"] = http_server_route(rss(items))
    second = newsalert(config, redis_url, "run", "--once", "--wait", "20")
    assert second.returncode == 0, second.stderr
    assert len(receiver.received) == 1


def test_syndicated_story_alerts_once(tmp_path, http_server, receiver, redis_client, redis_url):
    text = (FIXTURES / "articles" / "nk-prisoner.txt").read_text()
    a = article_item(text, "https://news.example.com/world/nk?utm_source=a#top")
    b = dict(a, link="https://NEWS.example.com/world/nk?utm_medium=b", guid="other-guid-123")
    http_server.routes["/a.xml"] = http_server_route(rss([a]))
    http_server.routes["/b.xml"] = http_server_route(rss([b]))
    config = write_config(
        tmp_path / "config",
        feeds=feeds_yaml(
            {"wire-a": f"{http_server.base}/a.xml", "wire-b": f"{http_server.base}/b.xml"}
        ),
        destinations=f"hook:\n  url: json://127.0.0.1:{receiver.port}/alerts\n",
        watchlists={"north-korea-kursk": NK_WATCHLIST.format(notify="[hook]")},
    )
    result = newsalert(config, redis_url, "run", "--once", "--wait", "30")
    assert result.returncode == 0, result.stderr
    assert len(receiver.received) == 1, _alert_texts(receiver)


def test_unreachable_feed_is_one_clear_line(tmp_path, receiver, redis_client, redis_url):
    config = write_config(
        tmp_path / "config",
        feeds=feeds_yaml({"down": "http://127.0.0.1:9/feed.xml"}),
        destinations=f"hook:\n  url: json://127.0.0.1:{receiver.port}/alerts\n",
        watchlists={"north-korea-kursk": NK_WATCHLIST.format(notify="[hook]")},
    )
    result = newsalert(config, redis_url, "run", "--once", "--wait", "5")
    assert result.returncode == 0, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if "down" in ln and "feed" in ln]
    assert lines, result.stderr
    assert "Traceback" not in result.stderr
