"""Burst digests, quiet hours and scheduled digests, to a real HTTP receiver, with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from configs import NK_WATCHLIST, feeds_yaml, write_config
from deliverkit import make_app, payload, run_jobs, sent, texts, uninstall

from worker.config import Config, load_config
from worker.config.schedule import parse_digest, parse_quiet_hours
from worker.core import keys
from worker.deliver import outbox
from worker.deliver.send import claim_many
from worker.errors import ConfigError
from worker.model import Delivery
from worker.service.jobs import deliver
from worker.service.queue import enqueue_delivery, enqueue_flush

KYIV = ZoneInfo("Europe/Kyiv")


def kyiv(*args: int) -> float:
    return datetime(*args, tzinfo=KYIV).timestamp()


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _cleanup(monkeypatch):
    monkeypatch.setenv("NEWSALERT_RETRY_INTERVALS", "0,0")
    yield
    uninstall()


def hook(receiver, extra: str) -> str:
    return f"hook:\n  url: json://127.0.0.1:{receiver.port}/alerts\n{extra}"


# -- schedules ----------------------------------------------------------------


@pytest.mark.parametrize(("local", "active"), [
    ((2026, 1, 15, 21, 59), False), ((2026, 1, 15, 22, 0), True), ((2026, 1, 15, 23, 30), True),
    ((2026, 1, 16, 0, 0), True), ((2026, 1, 16, 6, 59), True), ((2026, 1, 16, 7, 0), False),
    ((2026, 7, 16, 3, 0), True), ((2026, 7, 16, 12, 0), False),
])  # fmt: skip
def test_quiet_hours_cross_midnight_in_local_time(local, active):
    quiet = parse_quiet_hours("22:00-07:00 Europe/Kyiv")
    assert quiet.active(kyiv(*local)) is active


def test_quiet_hours_end_after():
    quiet = parse_quiet_hours("22:00-07:00 Europe/Kyiv")
    assert quiet.ends_after(kyiv(2026, 1, 15, 23, 0)) == kyiv(2026, 1, 16, 7, 0)
    assert quiet.ends_after(kyiv(2026, 1, 16, 3, 0)) == kyiv(2026, 1, 16, 7, 0)
    day = parse_quiet_hours("09:00-17:00")  # UTC when no zone is given
    assert day.active(utc(2026, 1, 15, 12, 0)) and not day.active(utc(2026, 1, 15, 17, 0))


@pytest.mark.parametrize(("spec", "after", "slot"), [
    ("hourly", utc(2026, 1, 15, 10, 5), utc(2026, 1, 15, 11, 0)),
    ("hourly", utc(2026, 1, 15, 11, 0), utc(2026, 1, 15, 12, 0)),
    ("daily 08:00 Europe/Kyiv", kyiv(2026, 1, 15, 7, 59), kyiv(2026, 1, 15, 8, 0)),
    ("daily 08:00 Europe/Kyiv", kyiv(2026, 1, 15, 8, 0), kyiv(2026, 1, 16, 8, 0)),
    # The night clocks go forward (29 March 2026): still 08:00 local, 23 hours later.
    ("daily 08:00 Europe/Kyiv", kyiv(2026, 3, 28, 9, 0), kyiv(2026, 3, 29, 8, 0)),
])  # fmt: skip
def test_digest_slots(spec, after, slot):
    assert parse_digest(spec).next_slot(after) == slot


@pytest.mark.parametrize(("key", "value", "message"), [
    ("quiet_hours", '"22:00 to 07:00"', "bad quiet_hours"),
    ("quiet_hours", '"22:00-07:00 Mars/Olympus"', "unknown time zone"),
    ("quiet_hours", '"07:00-07:00"', "same time"),
    ("digest", "weekly", "bad digest"),
    ("digest", '"daily 25:00"', "bad digest"),
    ("template", '"{title} {secret}"', "unknown template field {secret}"),
    ("template", '"{title"', "template syntax error"),
])  # fmt: skip
def test_bad_destination_settings_are_reported_with_their_line(tmp_path, key, value, message):
    root = write_config(
        tmp_path / "config",
        feeds=feeds_yaml({"w": "http://127.0.0.1:9/f.xml"}),
        destinations=f"hook:\n  url: json://127.0.0.1:9/x\n  {key}: {value}\n",
        watchlists={"nk": NK_WATCHLIST.format(notify="[hook]")},
    )
    with pytest.raises(ConfigError) as info:
        load_config(root)
    lines = info.value.lines()
    assert any("destinations.yaml:3:" in line and message in line for line in lines), lines


# -- bursts -------------------------------------------------------------------


def test_ten_alerts_in_a_second_collapse_into_a_few_messages(
    tmp_path, receiver, redis_client, redis_url
):
    app = make_app(
        tmp_path, redis_url, hook(receiver, "  rate: 1/s\n  digest_after: 3\n"), notify="[hook]"
    )
    payloads = [payload(n, "hook") for n in range(10)]
    for p in payloads:
        enqueue_delivery(redis_client, p["delivery"], p)
    assert run_jobs(app, wait=30) == 0
    got = texts(receiver)
    assert 1 <= len(got) <= 3, got
    everything = "\n".join(got)
    for n in range(10):
        assert f"North Korean soldier {n} captured" in everything, n
    assert any("digest" in t.split("\n")[0] for t in got)
    assert all(sent(redis_client, p) for p in payloads)
    assert redis_client.zcard(keys.outbox("hook")) == 0


def test_alert_sent_alone_never_reappears_in_a_digest_and_vice_versa(
    tmp_path, receiver, redis_client, redis_url
):
    app = make_app(
        tmp_path, redis_url, hook(receiver, "  digest_after: 3\n  rate: 1/m\n"), notify="[hook]"
    )
    clock = Clock(utc(2026, 1, 15, 12, 0))
    ps = [payload(n, "hook") for n in range(6)]
    outbox.add(redis_client, "hook", Delivery.from_dict(ps[0]), clock.now)
    assert (
        outbox.flush(redis_client, app.config(), "hook", clock, enqueue_flush=enqueue_flush) == 1
    )  # alone: no digest yet
    outbox.add(
        redis_client, "hook", Delivery.from_dict(ps[0]), clock.now
    )  # the same alert, queued again
    for p in ps[1:]:
        outbox.add(redis_client, "hook", Delivery.from_dict(p), clock.now)
    assert (
        outbox.flush(redis_client, app.config(), "hook", clock, enqueue_flush=enqueue_flush) == 0
    )  # no token left
    clock.now += 60
    assert outbox.flush(redis_client, app.config(), "hook", clock, enqueue_flush=enqueue_flush) == 1
    alone, digest = texts(receiver)
    assert "soldier 0 captured" in alone and "digest" not in alone.split("\n")[0]
    assert "soldier 0 captured" not in digest
    assert all(f"soldier {n} captured" in digest for n in range(1, 6))
    # Delivered in the digest counts as delivered: the job for one of them sends nothing.
    assert deliver(ps[3]) == "duplicate"
    clock.now += 60
    assert outbox.flush(redis_client, app.config(), "hook", clock, enqueue_flush=enqueue_flush) == 0
    assert len(receiver.received) == 2


def test_alert_claimed_by_a_dead_flusher_comes_back(tmp_path, receiver, redis_client, redis_url):
    app = make_app(tmp_path, redis_url, hook(receiver, "  rate: 5/s\n"), notify="[hook]")
    p = payload(1, "hook")
    outbox.add(redis_client, "hook", Delivery.from_dict(p), 0.0)
    claim_many(redis_client, [p["delivery"]])  # a flusher claimed it, then died before sending
    assert 0 < redis_client.ttl(keys.ledger(p["delivery"])) <= keys.CLAIM_TTL
    assert outbox.flush(redis_client, app.config(), "hook", enqueue_flush=enqueue_flush) == 0
    assert redis_client.zcard(keys.outbox("hook")) == 1, "still waiting, not lost"
    redis_client.delete(keys.ledger(p["delivery"]))  # what the claim's expiry does
    assert outbox.flush(redis_client, app.config(), "hook", enqueue_flush=enqueue_flush) == 1
    assert len(receiver.received) == 1 and sent(redis_client, p)


# -- quiet hours and scheduled digests -----------------------------------------


def quiet_nights(tmp_path, receiver, redis_url) -> Config:
    """Return the config of an app whose one destination has quiet hours 22:00-07:00 in Kyiv."""
    quiet = hook(receiver, '  quiet_hours: "22:00-07:00 Europe/Kyiv"\n')
    return make_app(tmp_path, redis_url, quiet, notify="[hook]").config()


def test_quiet_hours_hold_alerts_and_release_one_digest_at_the_end(
    tmp_path, receiver, redis_client, redis_url
):
    config = quiet_nights(tmp_path, receiver, redis_url)
    clock = Clock(kyiv(2026, 1, 15, 21, 30))

    def arrive(n: int, urgent: bool = False) -> None:
        outbox.add(
            redis_client, "hook", Delivery.from_dict(payload(n, "hook", urgent=urgent)), clock.now
        )
        outbox.flush(redis_client, config, "hook", clock, enqueue_flush=enqueue_flush)

    arrive(0)
    assert len(receiver.received) == 1, "before the window: sent at once"
    for n, hour in [(1, 23), (2, 1), (3, 4)]:
        clock.now = kyiv(2026, 1, 15 if hour > 12 else 16, hour, 0)
        arrive(n)
    assert len(receiver.received) == 1, "held during quiet hours"
    clock.now = kyiv(2026, 1, 16, 5, 0)
    arrive(4, urgent=True)
    assert len(receiver.received) == 2 and "soldier 4" in texts(receiver)[1], (
        "urgent bypasses quiet hours"
    )
    assert redis_client.zscore(keys.FLUSH_DUE, "hook") == kyiv(2026, 1, 16, 7, 0)
    clock.now = kyiv(2026, 1, 16, 6, 59)
    assert outbox.flush_due(redis_client, config, clock, enqueue_flush=enqueue_flush) == 0
    clock.now = kyiv(2026, 1, 16, 7, 0)
    assert outbox.flush_due(redis_client, config, clock, enqueue_flush=enqueue_flush) == 1
    assert len(receiver.received) == 3
    digest = texts(receiver)[2]
    assert "quiet hours" in digest.split("\n")[0]
    assert all(f"soldier {n} captured" in digest for n in (1, 2, 3))
    assert "soldier 0 " not in digest and "soldier 4 " not in digest
    clock.now += 3600
    assert outbox.flush_due(redis_client, config, clock, enqueue_flush=enqueue_flush) == 0
    assert redis_client.zcard(keys.outbox("hook")) == 0


def test_hourly_digest_goes_out_at_the_top_of_the_hour(tmp_path, receiver, redis_client, redis_url):
    app = make_app(tmp_path, redis_url, hook(receiver, "  digest: hourly\n"), notify="[hook]")
    clock = Clock(utc(2026, 1, 15, 10, 5))
    for n, minute in [(1, 5), (2, 40)]:
        clock.now = utc(2026, 1, 15, 10, minute)
        outbox.add(redis_client, "hook", Delivery.from_dict(payload(n, "hook")), clock.now)
        outbox.flush(redis_client, app.config(), "hook", clock, enqueue_flush=enqueue_flush)
    clock.now = utc(2026, 1, 15, 10, 59, 59)
    assert outbox.flush_due(redis_client, app.config(), clock, enqueue_flush=enqueue_flush) == 0
    assert receiver.received == []
    clock.now = utc(2026, 1, 15, 11, 0, 0)
    assert outbox.flush_due(redis_client, app.config(), clock, enqueue_flush=enqueue_flush) == 1
    (digest,) = texts(receiver)
    assert "hourly digest" in digest.split("\n")[0]
    assert "soldier 1 captured" in digest and "soldier 2 captured" in digest


def test_digest_that_fails_for_good_makes_dead_letters_and_one_notice(
    tmp_path, receiver, redis_client, redis_url
):
    dests = (
        hook(receiver, "  digest_after: 1\n  rate: 100/s\n  on_failure: ops\n")
        + f"ops:\n  url: json://127.0.0.1:{receiver.port}/ops\n"
    )
    app = make_app(tmp_path, redis_url, dests, notify="[hook]")
    ps = [payload(n, "hook") for n in range(3)]
    for p in ps:
        outbox.add(redis_client, "hook", Delivery.from_dict(p), 0.0)
    receiver.fail_next = [500, 500, 500]  # NEWSALERT_RETRY_INTERVALS=0,0: three attempts
    for _ in range(3):
        assert outbox.flush(redis_client, app.config(), "hook", enqueue_flush=enqueue_flush) == 0
    assert redis_client.llen(keys.DEAD_LETTERS) == 3
    assert redis_client.zcard(keys.outbox("hook")) == 0
    notices = [r for r in receiver.received if r["path"] == "/ops"]
    assert len(notices) == 1 and "3 alerts" in notices[0]["body"]["message"]
    assert not any(sent(redis_client, p) for p in ps)


def test_a_backlog_of_120_goes_out_as_digests_of_at_most_50(
    tmp_path, receiver, redis_client, redis_url
):
    config = quiet_nights(tmp_path, receiver, redis_url)
    clock = Clock(kyiv(2026, 1, 15, 23, 0))
    payloads = [payload(n, "hook") for n in range(120)]
    for p in payloads:
        outbox.add(redis_client, "hook", Delivery.from_dict(p), clock.now)
        clock.now += 1
    assert outbox.flush(redis_client, config, "hook", clock, enqueue_flush=enqueue_flush) == 0
    clock.now = kyiv(2026, 1, 16, 7, 0)
    for _ in range(10):  # bounded: each call sends what is due, the next picks up the rest
        outbox.flush_due(redis_client, config, clock, enqueue_flush=enqueue_flush)
        if redis_client.zcard(keys.outbox("hook")) == 0:
            break
        clock.now += 1
    got = texts(receiver)
    heads = [t.split("\n")[0] for t in got]
    assert [h.split(": ", 1)[1] for h in heads] == [
        "50 alerts (quiet hours ended)",
        "50 alerts (quiet hours ended)",
        "20 alerts (quiet hours ended)",
    ], heads
    everything = "\n".join(got)
    for n in range(120):  # each alert in exactly one digest, the oldest first
        assert everything.count(f"<https://news.example.com/story/{n}>") == 1, n
        assert f"/story/{n}>" in got[n // 50], n
    assert all(sent(redis_client, p) for p in payloads)
    assert redis_client.zcard(keys.outbox("hook")) == 0
