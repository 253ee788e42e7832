"""Mutes, shadow rules and the volume guard, against real Redis and real RQ queues."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from configs import write_config
from deliverkit import WATCHLIST as NK
from deliverkit import make_app, payload, run_jobs, uninstall

from worker.config import load_config
from worker.core import keys
from worker.core.archive import sent_since
from worker.core.metrics import read, read_last_day
from worker.deliver import mute as mutes
from worker.deliver.outbox import flush
from worker.errors import ConfigError, NewsAlertError
from worker.model import Match
from worker.service.gate import guard_notice, route
from worker.service.queue import enqueue_delivery, enqueue_flush, queue

WATCHLIST = """\
notify: [hook, desk]
{extra}
rules:
  - id: live
    all: [Kursk]
  - id: trial
    all: [Kursk]
    shadow: true
"""


def make_config(tmp_path: Path, extra: str = ""):
    root = write_config(
        tmp_path / "config",
        feeds="feeds:\n  - {id: wire, url: 'https://example.com/f.xml'}\n",
        destinations="hook:\n  url: json://127.0.0.1:9/\ndesk:\n  url: json://127.0.0.1:9/d\n",
        watchlists={"w": WATCHLIST.format(extra=extra)},
    )
    return load_config(root)


def matches() -> list[Match]:
    return [Match("w", "live"), Match("w", "trial")]


def queued_notices(client) -> list[dict]:
    jobs = queue(client, keys.DELIVER_QUEUE).get_jobs()
    return [j.args[0] for j in jobs if "notice" in j.args[0]]


def test_mute_is_seen_by_the_next_lookup_and_expires_on_time(redis_client):
    m = mutes.mute(redis_client, "w/live", 1.2, "too noisy", by=("ops", "laptop"))
    assert mutes.muted_rules(redis_client, "w", ["live", "other"]) == {"live"}
    [active] = mutes.active(redis_client)
    assert (active.target, active.reason, active.by, active.host) == (
        "w/live",
        "too noisy",
        "ops",
        "laptop",
    )
    assert active.until == pytest.approx(m.until)
    time.sleep(2.1)  # Redis expires the key: nothing to clean up
    assert mutes.muted_rules(redis_client, "w", ["live"]) == set()
    assert mutes.active(redis_client) == []


def test_watchlist_mute_covers_every_rule_and_unmute_ends_it(redis_client):
    mutes.mute(redis_client, "w", 3600, by=("ops", "h1"))
    assert mutes.muted_rules(redis_client, "w", ["a", "b"]) == {"a", "b"}
    alerts = [{"watchlist": "w", "rule": "a, b"}, {"watchlist": "x", "rule": "a"}]
    assert mutes.muted_alerts(redis_client, alerts) == [True, False]
    assert mutes.unmute(redis_client, "w", "fixed", by=("lead", "h2")) is not None
    assert mutes.muted_rules(redis_client, "w", ["a"]) == set()
    assert mutes.unmute(redis_client, "w") is None
    log = mutes.history(redis_client)
    assert [(e["action"], e["by"], e["host"], e["reason"]) for e in log] == [
        ("unmute", "lead", "h2", "fixed"),
        ("mute", "ops", "h1", ""),
    ]


def test_an_alert_is_dropped_only_when_all_its_rules_are_muted(redis_client):
    mutes.mute(redis_client, "w/a", 60)
    assert mutes.muted_alerts(redis_client, [{"watchlist": "w", "rule": "a, b"}]) == [False]
    mutes.mute(redis_client, "w/b", 60)
    assert mutes.muted_alerts(redis_client, [{"watchlist": "w", "rule": "a, b"}]) == [True]


def test_queued_alerts_go_out_after_a_guard_mute_not_after_an_ops_mute(redis_client):
    alert = {"watchlist": "w", "rule": "a"}
    mutes.mute(redis_client, "w/a", 60, kind="guard")  # queued within the limit: still goes
    assert mutes.muted_rules(redis_client, "w", ["a"]) == {"a"}  # new matches are muted
    assert mutes.muted_alerts(redis_client, [alert]) == [False]
    mutes.mute(redis_client, "w", 60)
    assert mutes.muted_alerts(redis_client, [alert]) == [True]


@pytest.mark.parametrize("seconds", [0, -5, 31 * 86400])
def test_mute_length_is_bounded(redis_client, seconds):
    with pytest.raises(NewsAlertError):
        mutes.mute(redis_client, "w", seconds)


def test_mute_target_must_exist(tmp_path):
    config = make_config(tmp_path)
    mutes.check_target(config, "w")
    mutes.check_target(config, "w/trial")
    for bad in ("nope", "w/nope"):
        with pytest.raises(NewsAlertError, match="nope"):
            mutes.check_target(config, bad)


def test_shadow_rule_is_counted_and_never_routed(tmp_path, redis_client):
    config = make_config(tmp_path)
    out = route(redis_client, config, matches(), enqueue_delivery)
    assert out == [Match("w", "live")]
    assert read(redis_client, "shadow_matches") == {("w", "trial"): 1}
    assert read_last_day(redis_client, "shadow_matches") == {("w", "trial"): 1}


def test_muted_rule_is_counted_not_routed(tmp_path, redis_client):
    config = make_config(tmp_path)
    mutes.mute(redis_client, "w/live", 60)
    assert route(redis_client, config, matches(), enqueue_delivery) == []
    assert read(redis_client, "muted_matches") == {("w", "live"): 1}


def test_guard_trips_once_per_hour_with_one_notice_per_destination(tmp_path, redis_client):
    config = make_config(tmp_path, "max_per_hour: 3")
    hour = 3600.0 * 490_000  # 09:00 UTC, some day
    routed = [
        route(redis_client, config, [Match("w", "live")], enqueue_delivery, now=hour + 60 + i)
        for i in range(8)
    ]
    assert [len(r) for r in routed] == [1, 1, 1, 0, 0, 0, 0, 0]
    notices = queued_notices(redis_client)
    assert sorted(n["destination"] for n in notices) == ["desk", "hook"]
    title, body = guard_notice("w", "live", 4, hour + 3600)
    assert {(n["notice"]["title"], n["notice"]["body"]) for n in notices} == {(title, body)}
    assert body.startswith("rule live of watchlist w matched 4 items in the last hour; muted until")
    assert body.endswith("edit it or run `newsalert unmute w/live`")
    [m] = mutes.active(redis_client, now=hour + 70)
    assert m.target == "w/live" and m.until == hour + 3600 and m.by == "volume-guard"
    assert read(redis_client, "muted_matches") == {("w", "live"): 5}

    # The next hour starts afresh: under the limit again, then one more trip and notice.
    mutes.unmute(redis_client, "w/live")  # the mute would have expired at the hour
    nxt = hour + 3600
    later = [
        route(redis_client, config, [Match("w", "live")], enqueue_delivery, now=nxt + i)
        for i in range(5)
    ]
    assert [len(r) for r in later] == [1, 1, 1, 0, 0]
    assert len(queued_notices(redis_client)) == 4


@pytest.mark.parametrize(
    ("where", "text", "line", "col", "message"),
    [
        ("feeds", "archive: soon\n", 1, 10, "archive: bad duration"),
        ("feeds", "archive_max: 1KiB\n", 1, 14, "archive_max must be at least 1MiB"),
        ("feeds", "archive_max: lots\n", 1, 14, "archive_max: bad size"),
        ("watchlist", "shadow: maybe\n", 2, 9, "shadow: must be true or false"),
        ("watchlist", "max_per_hour: 0\n", 2, 15, "max_per_hour: must be a whole number ≥ 1"),
        ("rule", "    shadow: 1\n", 7, 13, "shadow: must be true or false"),
    ],
)
def test_new_keys_are_checked_with_positions(tmp_path, where, text, line, col, message):
    feeds = "feeds:\n  - {id: wire, url: 'https://example.com/f.xml'}\n"
    wl = "notify: [hook]\nrules:\n  - id: r\n    all: [Kursk]\n"
    if where == "feeds":
        feeds = text + feeds
    elif where == "watchlist":
        wl = wl.replace("rules:\n", text + "rules:\n")
    else:
        wl = "notify: [hook]\n\n\n\nrules:\n  - id: r\n" + text + "    all: [Kursk]\n"
    root = write_config(
        tmp_path / "c",
        feeds=feeds,
        destinations="hook:\n  url: json://127.0.0.1:9/\n",
        watchlists={"w": wl},
    )
    with pytest.raises(ConfigError) as err:
        load_config(root)
    name = "feeds.yaml" if where == "feeds" else "w.yaml"
    [found] = [ln for ln in err.value.lines() if message in ln]
    assert found.split(": ")[0].endswith(f"{name}:{line}:{col}"), err.value.lines()


@pytest.fixture
def delivery_app(tmp_path, receiver, redis_url):
    destinations = (
        f"hook:\n  url: json://127.0.0.1:{receiver.port}/alerts\n"
        f"paced:\n  url: json://127.0.0.1:{receiver.port}/paced\n  rate: 1/h\n"
    )
    app = make_app(tmp_path, redis_url, destinations, notify="[hook, paced]")
    yield app
    uninstall()


def test_alerts_queued_before_a_mute_are_dropped_not_held(delivery_app, receiver, redis_client):
    first, held, direct = payload(1, "paced"), payload(2, "paced"), payload(3, "hook")
    for p in (first, held):
        enqueue_delivery(redis_client, p["delivery"], {**p, "story": "s1"})
    run_jobs(delivery_app, wait=2)  # the first goes, the second waits for the rate limit
    assert [r["path"] for r in receiver.received] == ["/paced"]
    assert redis_client.zcard(keys.outbox("paced")) == 1

    mutes.mute(redis_client, NK, 60)
    enqueue_delivery(redis_client, direct["delivery"], direct)
    run_jobs(delivery_app, wait=2)
    flush(redis_client, delivery_app.config(), "paced", enqueue_flush=enqueue_flush)
    assert len(receiver.received) == 1  # neither the waiting nor the direct alert went
    assert redis_client.zcard(keys.outbox("paced")) == 0  # and nothing is held for later
    outcomes = read(redis_client, "deliveries")
    assert outcomes[("hook", "muted")] == 1 and outcomes[("paced", "muted")] == 1

    # What went out is in the sent log, with its story, for backtest.
    [entry] = sent_since(redis_client, 0)
    assert (entry["watchlist"], entry["rules"], entry["story"], entry["destination"]) == (
        NK,
        ["nk-in-kursk"],
        "s1",
        "paced",
    )
