"""Changing rules safely, end to end: a live ``newsalert run`` archives and alerts; ``backtest``
from a separate config directory, ``mute``/``unmute``, shadow rules, the volume guard and
``stats --json`` are checked against it (real Redis, loopback feed, real webhook receiver).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from configs import feeds_yaml, write_config
from conftest import Route
from feedgen import rss
from test_service import Service, free_port, wait_for

from worker.core.metrics import read

LIVE = """\
notify: [hook]
rules:
  - id: live-rule
    all: [Kursk]
  - id: trial
    all: [Kursk, troops]
    shadow: true
"""
EDITED = """\
notify: [hook]
rules:
  - id: live-rule
    all: [Kursk]
    any: [fighting, troops]
  - id: markets
    all: [markets]
  - id: trial
    all: [Kursk, troops]
    shadow: true
"""
GUARDED = """\
notify: [hook]
max_per_hour: 2
rules:
  - id: f
    all: [flood]
"""


def cli(config: Path, redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, REDIS_URL=redis_url, NEWSALERT_CONFIG=str(config))
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=config.parent,
    )


class Live:
    """A running ``newsalert run`` polling one loopback feed every second."""

    def __init__(self, tmp_path: Path, http_server, receiver, redis_url: str, wls: dict) -> None:
        self.server, self.receiver, self.redis_url = http_server, receiver, redis_url
        self.items = [{"title": "Weather mild", "link": "https://n.example.com/0"}]
        http_server.routes["/feed.xml"] = Route(body=rss(self.items))
        feeds = feeds_yaml({"world": f"{http_server.base}/feed.xml"}, backfill=0)
        self.config = write_config(
            tmp_path / "live",
            feeds=feeds.replace("interval: 1m", "interval: 1s"),
            destinations=f"hook:\n  url: json://127.0.0.1:{receiver.port}/alerts\n",
            watchlists=wls,
        )
        self.service = Service(self.config, redis_url, free_port())
        wait_for(lambda: "existing items marked seen" in self.service.text(), 30, "first poll")

    def publish(self, *titles: str) -> None:
        for title in titles:
            self.items.insert(
                0, {"title": title, "link": f"https://n.example.com/{len(self.items)}"}
            )
        self.server.routes["/feed.xml"] = Route(body=rss(self.items))

    def alerts(self) -> list[str]:
        return [json.dumps(r["body"]) for r in self.receiver.received]

    def cli(self, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
        return cli(config or self.config, self.redis_url, *args)


@pytest.fixture
def live_factory(tmp_path, http_server, receiver, redis_client, redis_url) -> Iterator:
    started: list[Live] = []

    def start(watchlists: dict) -> Live:
        started.append(Live(tmp_path, http_server, receiver, redis_url, watchlists))
        return started[-1]

    yield start
    for live in started:
        assert live.service.stop() == 0


def test_backtest_of_an_edit_and_shadow_rules_through_a_live_run(
    live_factory, tmp_path, redis_client
):
    live = live_factory({"kursk": LIVE})
    live.publish(
        "Fighting continues near Kursk", "Troops move towards Kursk", "Kursk region floods"
    )
    wait_for(lambda: len(live.alerts()) == 3, 30, "three alerts")
    live.publish("Markets rally on rate cut")
    wait_for(lambda: read(redis_client, "items").get(("world", "new"), 0) == 4, 30, "4th item")
    time.sleep(1)  # its match job
    assert all('"trial"' not in a and "trial," not in a for a in live.alerts())
    assert len(live.alerts()) == 3  # the shadow rule matched one of them and sent nothing

    stats = live.cli("stats", "--json")
    assert stats.returncode == 0, stats.stderr
    figures = json.loads(stats.stdout)
    assert figures["shadow_rules_24h"] == [{"watchlist": "kursk", "rule": "trial", "matches": 1}]
    assert figures["rules_24h"] == [{"watchlist": "kursk", "rule": "live-rule", "matches": 3}]
    assert figures["archive"]["items"] == 4

    edited = write_config(
        tmp_path / "edited",
        feeds=(live.config / "feeds.yaml").read_text(),
        destinations=(live.config / "destinations.yaml").read_text(),
        watchlists={"kursk": EDITED},
    )
    done = live.cli("backtest", "--json", config=edited)
    assert done.returncode == 0, done.stderr
    got = {
        (d["watchlist"], d["rule"], d["change"], d["item"]["title"])
        for d in map(json.loads, done.stdout.splitlines())
    }
    assert got == {
        ("kursk", "live-rule", "same", "Fighting continues near Kursk"),
        ("kursk", "live-rule", "same", "Troops move towards Kursk"),
        ("kursk", "live-rule", "gone", "Kursk region floods"),
        ("kursk", "markets", "new", "Markets rally on rate cut"),
        ("kursk", "trial", "new", "Troops move towards Kursk"),
    }
    first = json.loads(done.stdout.splitlines()[0])
    assert set(first) == {"watchlist", "rule", "change", "story", "item"}
    assert set(first["item"]) == {"id", "title", "link", "feed", "published"}

    text = live.cli("backtest", "--rule", "live-rule", config=edited)
    assert text.returncode == 0, text.stderr
    assert "■ kursk / live-rule" in text.stdout and "markets" not in text.stdout
    assert "0 new, 1 gone, 2 same" in text.stdout
    assert "Kursk region floods" in text.stdout
    short = live.cli("backtest", "--since", "30d", "--json", config=edited)
    assert "the archive goes back only to" in short.stderr
    assert len(live.alerts()) == 3  # a backtest sends nothing


def _hour_safe() -> None:
    """Wait out the last 30 s of a clock hour: the guard's count starts afresh each hour."""
    left = 3600 - time.time() % 3600
    if left < 30:
        time.sleep(left + 1)


def test_mute_expiry_and_volume_guard_through_a_live_run(live_factory, redis_client):
    live = live_factory({"kursk": LIVE, "flood": GUARDED})
    muted = live.cli("mute", "kursk/live-rule", "--for", "6s", "--reason", "testing the mute")
    assert muted.returncode == 0, muted.stderr
    assert "muted kursk/live-rule" in muted.stdout and "testing the mute" in muted.stderr
    live.publish("Shelling near Kursk")
    count = lambda: read(redis_client, "muted_matches").get(("kursk", "live-rule"), 0)  # noqa: E731
    wait_for(lambda: count() == 1, 5, "the muted match")
    figures = json.loads(live.cli("stats", "--json").stdout)
    [m] = figures["mutes"]
    assert (m["target"], m["reason"]) == ("kursk/live-rule", "testing the mute")
    assert figures["mute_log"][0]["action"] == "mute" and figures["mute_log"][0]["host"]
    text = live.cli("stats").stdout
    assert "kursk/live-rule" in text.split("active mutes:")[1] and "testing the mute" in text
    assert live.alerts() == []

    wait_for(lambda: time.time() > m["until"] + 0.5, 10, "the mute to end")
    assert json.loads(live.cli("stats", "--json").stdout)["mutes"] == []
    live.publish("Kursk again")
    wait_for(lambda: len(live.alerts()) == 1, 20, "an alert after the mute ended")

    _hour_safe()
    live.publish(*(f"Flood warning {i}" for i in range(4)))
    notices = lambda: [a for a in live.alerts() if "matched" in a and "muted until" in a]  # noqa: E731
    wait_for(lambda: len(notices()) == 1 and len(live.alerts()) == 4, 20, "2 alerts + 1 notice")
    assert "rule f of watchlist flood matched 3 items in the last hour" in notices()[0]
    assert "newsalert unmute flood/f" in notices()[0]
    live.publish("Flood warning 5", "Flood warning 6")
    wait_for(lambda: read(redis_client, "muted_matches").get(("flood", "f"), 0) == 4, 20, "muted")
    time.sleep(1)
    assert len(notices()) == 1 and len(live.alerts()) == 4


def test_backtest_says_when_the_archive_is_empty(tmp_path, redis_client, redis_url):
    config = write_config(
        tmp_path / "c",
        feeds=feeds_yaml({"world": "http://127.0.0.1:9/f.xml"}),
        destinations="hook:\n  url: json://127.0.0.1:9/\n",
        watchlists={"kursk": LIVE},
    )
    done = cli(config, redis_url, "backtest")
    assert done.returncode == 1
    assert "the archive is empty" in done.stderr and "Traceback" not in done.stderr


def test_try_and_explain_mark_shadow_rules(tmp_path, redis_url):
    config = write_config(
        tmp_path / "c",
        feeds=feeds_yaml({"world": "http://127.0.0.1:9/f.xml"}),
        destinations="hook:\n  url: json://127.0.0.1:9/\n",
        watchlists={"kursk": LIVE},
    )
    feed = tmp_path / "news.xml"
    feed.write_bytes(
        rss([{"title": "Troops gather near Kursk", "link": "https://n.example.com/1"}])
    )
    done = cli(config, redis_url, "try", str(feed), "--json")
    assert done.returncode == 0, done.stderr
    hits = {h["rule"]: h for h in map(json.loads, done.stdout.splitlines())}
    assert set(hits) == {"live-rule", "trial"}
    assert set(hits["live-rule"]) == {"watchlist", "rule", "item", "highlights", "story"}
    assert hits["trial"]["shadow"] is True
    assert set(hits["trial"]) - {"shadow"} == set(hits["live-rule"])
    text = cli(config, redis_url, "try", str(feed))
    assert "● kursk / trial [shadow]:" in text.stdout
    assert "● kursk / live-rule:" in text.stdout
    why = cli(config, redis_url, "explain", str(feed), "--watchlist", "kursk")
    assert why.returncode == 0, why.stderr
    assert why.stdout.count("shadow rule") == 1 and "shadow rule trial" in why.stdout
