"""The pure rate estimate and interval formula (worker.poll.cadence)."""

from __future__ import annotations

import math

import pytest

from worker.poll.cadence import TAU, Rate, feed_times, interval_for
from worker.poll.state import FeedState

HOUR = 3600.0
T0 = 1_700_000_000.0


def steady(per_hour: float, hours: float) -> Rate:
    """Return the estimate after a feed published every 1/per_hour hours, observed hourly."""
    rate, gap, t, now = Rate.start(T0), HOUR / per_hour, T0, T0
    while now < T0 + hours * HOUR:
        now += 60.0
        due = []
        while t + gap <= now:
            t += gap
            due.append(t)
        rate = rate.observe(due, now)
    return rate


@pytest.mark.parametrize(
    ("per_hour", "hours"), [(3.0, 12.0), (12.0, 0.5), (12.0, 12.0), (60.0, 0.5), (60.0, 12.0)]
)
def test_a_steady_feed_is_estimated_at_its_rate_early_and_late(
    per_hour: float, hours: float
) -> None:
    rate = steady(per_hour, hours)
    assert rate.per_hour(T0 + hours * HOUR) == pytest.approx(per_hour, rel=0.25)


def test_a_new_feed_starts_at_min_interval_and_backs_off_while_silent() -> None:
    rate = Rate.start(T0)
    intervals = [interval_for(rate.per_second(T0 + m * 60), 60, 1800) for m in (0, 1, 10, 30, 90)]
    assert intervals[0] == intervals[1] == 60
    assert intervals == sorted(intervals)
    assert intervals[-1] == 1800


def test_a_silent_feed_decays_with_tau() -> None:
    rate = steady(60.0, 10.0)
    now = T0 + 10 * HOUR
    later = now + TAU * math.log(2)
    assert rate.per_hour(later) == pytest.approx(rate.per_hour(now) / 2, rel=0.05)


def test_a_once_a_day_feed_is_polled_at_most_twice_an_hour_in_steady_state() -> None:
    rate = Rate.start(T0)
    worst = math.inf
    for minute in range(1, 5 * 24 * 60):
        now = T0 + minute * 60
        if minute % (24 * 60) == 0:
            rate = rate.observe([now - 600], now)  # published ten minutes before we saw it
        if minute > 120:  # past the first two hours of a brand-new feed
            worst = min(worst, interval_for(rate.per_second(now), 60, 1800))
    assert worst >= 1800


def test_item_times_are_clamped_into_the_observed_window() -> None:
    rate = Rate.start(T0)
    now = T0 + HOUR
    future = rate.observe([now + 10 * HOUR], now)
    seen_now = rate.observe([None], now)
    assert future == seen_now  # a future date counts as "seen now"
    ancient = rate.observe([T0 - 100 * HOUR], now)
    at_start = rate.observe([T0], now)
    assert ancient == at_start  # older than the observation counts as its start


def test_state_round_trip_and_a_missing_state_starts_fresh() -> None:
    rate = steady(6.0, 2.0)
    state = {k.encode(): str(v).encode() for k, v in rate.to_state().items()}
    assert Rate.from_state(FeedState.read(state), T0) == rate
    assert Rate.from_state(FeedState.read({}), T0 + 5) == Rate.start(T0 + 5)
    assert Rate.from_state(FeedState.read({b"rate_since": b"x"}), T0) == Rate.start(T0)


@pytest.mark.parametrize(
    ("per_second", "expected"),
    [
        (0.0, 1800.0),  # nothing expected: max_interval
        (1 / 60, 60.0),  # one a minute wants 30 s: min_interval wins
        (1 / 600, 300.0),  # one every 10 min: every 5 min
        (1 / 86400, 1800.0),  # once a day: max_interval
        (math.inf, 60.0),
    ],
)
def test_interval_is_half_the_expected_gap_within_bounds(
    per_second: float, expected: float
) -> None:
    assert interval_for(per_second, 60.0, 1800.0) == pytest.approx(expected)


RSS = b"""<rss><channel><pubDate>Mon, 01 Jan 2024 00:00:00 GMT</pubDate>
<item><title>a</title><pubDate>Tue, 14 Nov 2023 22:13:20 GMT</pubDate></item>
<item><title>b</title><dc:date>2023-11-14T21:13:20Z</dc:date></item>
<item><title>undated</title></item>
<item><pubDate>not a date</pubDate></item></channel></rss>"""
ATOM = b"""<feed xmlns="http://www.w3.org/2005/Atom"><updated>2030-01-01T00:00:00Z</updated>
<entry><updated>2023-11-14T22:13:20+00:00</updated><published>2023-11-14T20:00:00Z</published></entry>
<entry><published>2023-11-14T21:13:20</published></entry></feed>"""
JSON = b'{"items": [{"id": "1", "date_published": "2023-11-14T22:13:20Z"}, {"id": "2"}]}'


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (RSS, [T0, T0 - 3600]),  # channel dates and undated or unreadable items left out
        (ATOM, [T0, T0 - 3600]),  # the first date of each entry; naive times are UTC
        (JSON, [T0]),
        (b"<html>not a feed</html>", []),
    ],
    ids=["rss", "atom", "json", "none"],
)
def test_feed_times(body: bytes, expected: list[float]) -> None:
    assert feed_times(body) == expected


def test_a_first_poll_starts_from_the_items_dates() -> None:
    wire = Rate.seeded([T0 - 60 * k for k in range(20)], T0)  # one a minute
    assert wire.per_hour(T0) == pytest.approx(60, rel=0.1)
    weekly = Rate.seeded([T0 - 7 * 86400 * k - 3600 for k in range(4)], T0)
    assert interval_for(weekly.per_second(T0), 60, 1800) == 1800
    undated = Rate.seeded([T0], T0)  # one date says nothing about a rate
    assert undated == Rate.start(T0)
    ancient = Rate.seeded([T0 - 400 * 86400, T0 - 500 * 86400], T0)
    assert ancient == Rate.start(T0)
