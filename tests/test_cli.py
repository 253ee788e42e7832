"""``newsalert try`` and ``explain`` (the dry-run commands ops script against), and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from configs import NK_WATCHLIST, feeds_yaml, write_config
from conftest import Route
from faults import RedisServer, wait_for
from feedgen import UNRELATED, article_item, rss
from shared import shared_dir

from worker.commands.common import RET_PENDING, RET_REDIS
from worker.service.queue import pending

FIXTURES = Path(__file__).parent / "fixtures"
FEEDS = "allow_private_networks: true\nfeeds: []\n"
DESTS = "hook:\n  url: json://127.0.0.1:9/alerts\n"
PRISONER = """\
notify: [hook]
rules:
  - id: nk-prisoner
    query: '"North Korean" NEAR/5 (prisoner OR captured) -exercise'
"""


def newsalert(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # No REDIS_URL and a var dir that must stay empty: try/explain touch no Redis.
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["NEWSALERT_VAR"] = str(config.parent / "var")
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path / "config",
        feeds=FEEDS,
        destinations=DESTS,
        watchlists={
            "north-korea-kursk": NK_WATCHLIST.format(notify="[hook]"),
            "prisoners": PRISONER,
        },
    )


def _feed(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "feed.xml"
    path.write_bytes(rss([article_item(text, "https://n.example.com/nk"), *UNRELATED]))
    return path


def test_try_json_lines_have_the_pinned_shape(tmp_path):
    config = _config(tmp_path)
    feed = _feed(tmp_path, (FIXTURES / "articles" / "nk-prisoner.txt").read_text())
    result = newsalert(config, "try", "--json", str(feed))
    assert result.returncode == 0, result.stderr
    hits = [json.loads(line) for line in result.stdout.splitlines()]
    assert {(h["watchlist"], h["rule"]) for h in hits} == {
        ("north-korea-kursk", "nk-in-kursk"),
        ("prisoners", "nk-prisoner"),
    }
    for hit in hits:
        assert list(hit) == ["watchlist", "rule", "item", "highlights", "story"]
        assert list(hit["item"]) == ["id", "title", "link", "feed"]
        assert hit["item"]["link"] == "https://n.example.com/nk"
        for h in hit["highlights"]:
            assert list(h) == ["field", "term", "text", "start", "end"]
    title = hits[0]["item"]["title"]
    first = next(h for h in hits[0]["highlights"] if h["field"] == "title")
    assert title[first["start"] : first["end"]] == first["text"]
    assert not (tmp_path / "var").exists(), "try must not start or touch Redis"


def test_try_on_the_seed_article(tmp_path):
    seed = (shared_dir("seed") / "north-korean-soldier-kursk.txt").read_text()
    result = newsalert(_config(tmp_path), "try", "--json", str(_feed(tmp_path, seed)))
    assert result.returncode == 0, result.stderr
    hits = [json.loads(line) for line in result.stdout.splitlines()]
    nk = [h for h in hits if h["rule"] == "nk-in-kursk"]
    assert len(nk) == 1
    terms = {h["term"] for h in nk[0]["highlights"]}
    assert {"North Korean", "Kursk"} <= terms


def test_try_human_output_shows_why(tmp_path):
    feed = _feed(tmp_path, (FIXTURES / "articles" / "nk-prisoner.txt").read_text())
    result = newsalert(_config(tmp_path), "try", str(feed))
    assert result.returncode == 0, result.stderr
    assert "north-korea-kursk / nk-in-kursk" in result.stdout
    assert "Kursk" in result.stdout
    assert "2 hit(s)" in result.stderr


def test_try_missing_source_is_one_line(tmp_path):
    result = newsalert(_config(tmp_path), "try", str(tmp_path / "nope.xml"))
    assert result.returncode == 4
    assert "no such file" in result.stderr and "Traceback" not in result.stderr


def test_explain_marks_each_node(tmp_path):
    feed = _feed(tmp_path, (FIXTURES / "articles" / "nk-prisoner.txt").read_text())
    result = newsalert(_config(tmp_path), "explain", str(feed), "--watchlist", "north-korea-kursk")
    assert result.returncode == 0, result.stderr
    blocks = result.stdout.split("■ ")[1:]
    assert len(blocks) == 4  # one per item
    story = next(b for b in blocks if b.startswith("Ukraine says"))
    assert "✓" in story and "Kursk" in story
    football = next(b for b in blocks if "football" in b.lower())
    assert "✗" in football


def test_explain_unknown_watchlist(tmp_path):
    feed = _feed(tmp_path, "Title\nBody")
    result = newsalert(_config(tmp_path), "explain", str(feed), "--watchlist", "nope")
    assert result.returncode == 1
    assert "unknown watchlist 'nope'" in result.stderr


def test_try_fetches_a_url(tmp_path, http_server):
    text = (FIXTURES / "articles" / "nk-prisoner.txt").read_text()
    http_server.routes["/feed.xml"] = Route(
        body=rss([article_item(text, "https://n.example.com/a")])
    )
    result = newsalert(_config(tmp_path), "try", "--json", f"{http_server.base}/feed.xml")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2


# -- exit codes (worker.cli RET_*) ----------------------------------------------


def _service_env(config: Path, redis_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ, REDIS_URL=redis_url, NEWSALERT_CONFIG=str(config), **extra)
    env.pop("PORT", None)
    return env


def test_run_once_exits_5_when_deliveries_are_left_pending(
    tmp_path, http_server, receiver, redis_client, redis_url
):
    http_server.routes["/feed.xml"] = Route(
        rss([{"title": "North Korean troops in Kursk", "link": "https://n.example.com/1"}])
    )
    config = write_config(
        tmp_path / "config",
        feeds=feeds_yaml({"world": f"{http_server.base}/feed.xml"}, backfill=1),
        destinations=f"hook:\n  url: json://127.0.0.1:{receiver.port}/alerts\n",
        watchlists={"kursk": "notify: [hook]\nrules:\n  - id: r\n    all: [Kursk]\n"},
    )
    receiver.fail_next = [500]  # the first try fails; the retry is due in a minute
    env = _service_env(config, redis_url, NEWSALERT_RETRY_INTERVALS="60")
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "run", "--once", "--wait", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == RET_PENDING == 5, done.stderr
    assert "1 jobs still pending" in done.stderr, done.stderr
    assert receiver.received == []  # the one try was refused
    assert pending(redis_client) == 1, "the retry stays queued in Redis"


def test_run_exits_3_when_redis_stays_unreachable_past_the_grace(tmp_path):
    config = write_config(tmp_path / "config", feeds=FEEDS, destinations=DESTS)
    server = RedisServer(tmp_path / "redis")
    server.start()
    log = tmp_path / "run.log"
    try:
        with log.open("w") as stderr:
            run = subprocess.Popen(
                [sys.executable, "-m", "worker.cli", "run"],
                env=_service_env(config, server.url, NEWSALERT_REDIS_GRACE="1"),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        wait_for(lambda: "worker" in log.read_text() and "started" in log.read_text(), 60, "start")
        server.stop()
        # Noticed within a 5 s check (plus the client's retries), given up after the 1 s
        # grace at the next check, then up to SHUTDOWN_GRACE (25 s) for the children.
        code = run.wait(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        server.stop()
    assert code == RET_REDIS == 3, log.read_text()[-2000:]
    assert "Redis unreachable for" in log.read_text()
