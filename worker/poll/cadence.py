"""How often to poll a feed: its publication rate, estimated, and the interval it asks for.

Pure: no I/O, every function takes the time, so tests choose the clock.

**Rate.** Each item a feed adds counts as one event at its time: the feed's own
publication time when it has one that is plausible, else the time the poller
first saw it. Times are clamped into ``[since, now]``, so a backdated or
future-dated item cannot distort the estimate. The start of observation
(``since``) counts as one event too; it makes a feed we know nothing about
start fast and back off steadily while nothing arrives. Events decay with
time constant ``TAU``::

    W(now)   = sum over events e of exp(-(now - t_e) / TAU)
    rate     = W / (TAU * (1 - exp(-(now - since) / TAU)))      items per second

The denominator is the decayed length of the time observed, so a steady feed
is estimated without bias both early (``now - since`` much shorter than
``TAU``: the plain mean ``count / time``) and late (``W / TAU``). Only ``W``,
the time it was computed at and ``since`` are stored (three numbers in the
feed's state hash).

**First poll.** The items a feed holds when we first read it were added at
their feed times too: when they carry dates, the estimate starts from them
(``since`` is the oldest), so a wire feed is polled at ``min_interval`` and
a weekly blog at ``max_interval`` from the start. A feed without dates starts
from the start-of-observation event alone: ``min_interval``, then backing
off while nothing arrives.

**Interval.** Fetch about twice per expected new item, within bounds::

    interval = clamp(1 / (2 * rate), min_interval, max_interval)

A silent feed's ``W`` halves every ``TAU * ln 2`` (83 min), so its interval
doubles at that pace until it reaches ``max_interval``.
"""

from __future__ import annotations

import email.utils
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from worker.poll.state import FeedState

__all__ = ["TAU", "Rate", "feed_times", "interval_for"]

#: Time constant of the rate estimate (seconds): events older than a few TAU hardly count.
TAU = 2 * 3600.0
#: How far back a first poll's item dates may start the estimate.
SEED_SPAN = 30 * 86400.0

_ENTRY = re.compile(rb"<(?:\w+:)?(?:item|entry)[\s>]")
_DATE = re.compile(rb"<(?:\w+:)?(?:pubDate|published|updated|date|issued)>\s*([^<]{6,64}?)\s*<")
_JSON_DATE = re.compile(rb'"date_published"\s*:\s*"([^"]{6,64})"')


@dataclass(frozen=True)
class Rate:
    """A feed's decayed event weight ``weight`` as of ``at``, observed since ``since``."""

    since: float
    weight: float
    at: float

    @classmethod
    def start(cls, now: float) -> Rate:
        """Return the estimate of a feed first observed at ``now``."""
        return cls(since=now, weight=1.0, at=now)

    @classmethod
    def seeded(cls, times: Iterable[float], now: float) -> Rate:
        """Return the estimate of a feed first read at ``now`` holding items dated ``times``."""
        dated = [min(t, now) for t in times if t >= now - SEED_SPAN]
        if len(dated) < 2:
            return cls.start(now)
        since = min(dated)
        return cls(since, sum(math.exp(-(now - t) / TAU) for t in dated), now)

    @classmethod
    def from_state(cls, state: FeedState, now: float) -> Rate:
        """Read the estimate from a feed's state (``start(now)`` when it has none)."""
        if state.rate_since is None or state.rate_weight is None or state.rate_at is None:
            return cls.start(now)
        return cls(state.rate_since, state.rate_weight, state.rate_at)

    def to_state(self) -> dict[str, float]:
        """Return the fields to store in the feed's state hash."""
        return {"rate_since": self.since, "rate_weight": self.weight, "rate_at": self.at}

    def _weight_at(self, now: float) -> float:
        return self.weight * math.exp(-max(now - self.at, 0.0) / TAU)

    def observe(self, times: Iterable[float | None], now: float) -> Rate:
        """Return the estimate after items added at ``times`` (None: first seen ``now``)."""
        weight = self._weight_at(now)
        for t in times:
            t = now if t is None else min(max(t, self.since), now)
            weight += math.exp(-(now - t) / TAU)
        return Rate(self.since, weight, max(now, self.at))

    def per_second(self, now: float) -> float:
        """Return the estimated items per second at ``now`` (infinite before any time passed)."""
        span = TAU * -math.expm1(-max(now - self.since, 0.0) / TAU)
        return self._weight_at(now) / span if span > 0 else math.inf

    def per_hour(self, now: float) -> float:
        """Return the estimated items per hour at ``now``."""
        return self.per_second(now) * 3600.0


def interval_for(rate: float, min_interval: float, max_interval: float) -> float:
    """Return the poll interval for ``rate`` items/s: half the expected gap, within the bounds."""
    if rate <= 0:
        return max_interval
    return min(max(0.5 / rate, min_interval), max_interval)


def _timestamp(raw: bytes) -> float | None:
    text = raw.decode("ascii", errors="replace").strip()
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def feed_times(body: bytes) -> list[float]:
    """Return the first date of each item of an RSS, Atom or JSON feed body (undated: left out)."""
    found = [_DATE.search(chunk) for chunk in _ENTRY.split(body)[1:]]
    raws = [m.group(1) for m in found if m] or _JSON_DATE.findall(body)
    return [t for t in map(_timestamp, raws) if t is not None]
