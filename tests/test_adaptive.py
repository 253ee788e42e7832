"""Adaptive poll intervals: the real poller, real Redis and a loopback feed server, on a virtual clock.

Feeds publish at different rates; the poller's clock is virtual and each feed
is polled when the poller said it would be due, so hours pass in seconds
while every fetch is a real HTTP request answered by what was published by
then (ETag and 304 included).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from configs import write_config
from loopfeeds import FeedServer
from virtualpoll import Source, every, simulate

from worker.config import load_config
from worker.errors import ConfigError
from worker.service.stats import feed_health, render_feeds

T0 = 1_760_000_000.0
HOURS = 4
END = T0 + HOURS * 3600


def steady(gap: float, **settings: float) -> Source:
    """A feed with an item every ``gap`` s, 20 of them already there when first read."""
    return Source(every(gap, T0 - 20 * gap + 1, END), settings)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    srv = FeedServer()
    yield srv
    srv.close()


def late(polls: list[tuple[float, float]], hours: float = 1.5) -> list[float]:
    """Return the delays chosen in the last ``hours`` of the run."""
    return [d for t, d in polls if t >= T0 + (HOURS - hours) * 3600]


def test_intervals_follow_each_feeds_rate_within_bounds(
    redis_client: redis.Redis, server: FeedServer
) -> None:
    run = simulate(
        redis_client,
        server,
        {
            "wire": steady(60),  # wants 30 s: min_interval (1m) wins
            "busy": steady(240),  # 15/h: every 2 min
            "steady": steady(1200),  # 3/h: every 10 min
            # Once a day (20 days of items when first read, the next 2 h later): max_interval.
            "daily": Source(every(86400, T0 + 7200 - 20 * 86400, END)),
            "silent": Source([]),  # nothing, ever: no dates to start from
            "floored": steady(30, min_interval=180.0),
            "capped": steady(3600, max_interval=600.0),
            "fixed": steady(60, interval=420.0),  # a fixed interval wins
            "max-age": Source(every(60, T0 - 1200, END), headers={"Cache-Control": "max-age=900"}),
        },
        T0,
        HOURS,
    )
    polls = run.polls
    median = {fid: statistics.median(late(p)) for fid, p in polls.items()}
    assert 60 <= median["wire"] <= 66  # 1.0-1.1 jitter on top of the bound
    assert 100 <= median["busy"] <= 160
    assert 450 <= median["steady"] <= 800
    assert 180 <= median["floored"] <= 198
    assert 600 <= median["capped"] <= 660
    assert 420 <= median["fixed"] <= 462
    assert 900 <= median["max-age"] <= 990
    assert (
        25 <= statistics.median(w for _, w in run.waits["wire"]) <= 40
    )  # half of a ~63 s interval
    for quiet in ("daily", "silent"):
        assert all(1800 <= d <= 1980 for d in late(polls[quiet], 3.0)), quiet
        fetch_times = [t for t, _ in polls[quiet] if t >= T0 + (HOURS - 3) * 3600]
        assert len(fetch_times) <= 2 * 3  # at most twice an hour once past its first hour

    rows = {r["id"]: r for r in feed_health(redis_client, run.feeds, run.clock.now)}
    assert rows["wire"]["items_per_hour"] == pytest.approx(60, rel=0.15)
    assert rows["steady"]["items_per_hour"] == pytest.approx(3, rel=0.5)
    assert rows["wire"]["auto"] and not rows["fixed"]["auto"]
    assert rows["wire"]["fetches_per_hour"] == pytest.approx(len(polls["wire"]) / HOURS, rel=0.05)
    assert rows["wire"]["not_modified_share"] < 0.1  # every wire poll finds a new item
    assert rows["silent"]["not_modified_share"] > 0.9  # the same body: 304 after the first
    assert rows["silent"]["items_per_hour"] < 0.5
    table = render_feeds(list(rows.values()), run.clock.now)
    line = {row.split()[0]: row for row in table[1:]}
    assert re.search(r" 6\ds auto +[\d.]+ +[\d.]+ +\d% +- ", line["wire"]), table
    assert re.search(r" 4\d\ds +[\d.]+ ", line["fixed"]), table  # fixed: no "auto"
    assert re.search(r" 9\d% ", line["silent"]), table


def test_feeds_yaml_interval_settings(tmp_path: Path) -> None:
    feeds = """\
allow_private_networks: true
websub: {callback: "https://alerts.example.com/"}
defaults: {max_interval: 20m}
feeds:
  - {id: a, url: "https://a.example/rss"}
  - {id: b, url: "https://b.example/rss", interval: 2m}
  - {id: c, url: "https://c.example/rss", interval: auto, min_interval: 30s, max_interval: 1h}
"""
    config = load_config(write_config(tmp_path / "c", feeds=feeds, destinations="{}\n"))
    a, b, c = config.feeds
    assert (a.interval, a.min_interval, a.max_interval) == (None, 60.0, 1200.0)
    assert (b.interval, b.min_interval, b.max_interval) == (120.0, 60.0, 1200.0)
    assert (c.interval, c.min_interval, c.max_interval) == (None, 30.0, 3600.0)
    assert config.websub_callback == "https://alerts.example.com"
    plain = load_config(write_config(tmp_path / "d", feeds="feeds: []\n", destinations="{}\n"))
    assert plain.websub_callback is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "  - {id: a, url: 'https://a.example/rss', min_interval: 1h, max_interval: 5m}",
            "min_interval exceeds max_interval",
        ),
        ("  - {id: a, url: 'https://a.example/rss', interval: soon}", "bad duration"),
        ("  - {id: a, url: 'https://a.example/rss', max_interval: 0s}", "at least 1s"),
    ],
)
def test_bad_interval_settings_are_config_errors(tmp_path: Path, line: str, message: str) -> None:
    root = write_config(tmp_path / "c", feeds=f"feeds:\n{line}\n", destinations="{}\n")
    with pytest.raises(ConfigError) as err:
        load_config(root)
    assert message in str(err.value) and "feeds.yaml:2:" in str(err.value)


def test_a_bad_websub_callback_is_a_config_error(tmp_path: Path) -> None:
    feeds = "websub: {callback: alerts.example.com}\nfeeds: []\n"
    with pytest.raises(ConfigError, match=r"feeds.yaml:1:\d+: websub callback must be http"):
        load_config(write_config(tmp_path / "c", feeds=feeds, destinations="{}\n"))
