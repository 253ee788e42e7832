"""A feed's fetch state and health, the ``feed:<id>`` hash, as one typed value.

The poller writes it (under the feed's lease) and ``stats`` reads it. Redis keeps
strings; ``FeedState.read`` turns them into numbers, flags and a ``FailureReason``,
and ``FeedState.encode`` turns values back, refusing a field name it does not know
(a typo would otherwise write a field nobody reads).

Tolerance, since several versions (and branches) share one Redis: a field this
version does not know is kept in ``other`` and never deleted; a value that does
not parse reads as the field's default; an unknown failure reason reads as
``FailureReason.ERROR``. A field whose value is ``None`` is not written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import redis

from worker.core import keys
from worker.errors import FailureReason

__all__ = ["FeedState"]


@dataclass(frozen=True)
class FeedState:
    """Everything newsalert keeps about one feed between polls."""

    # -- fetching
    config_url: str = ""  # the configured URL ``url`` was recorded for
    url: str = ""  # where a permanent redirect moved the feed
    etag: str = ""
    last_modified: str = ""
    # -- schedule
    ttl: float = 0.0  # RSS <ttl>, seconds
    interval: float | None = None  # what overflow made of the interval…
    interval_config: float | None = None  # …for this configured interval
    poll_interval: float | None = None  # the wait chosen at the last poll
    next_due: float | None = None
    # -- health
    status: int | None = None  # last HTTP status
    failures: int = 0  # consecutive
    last_ok: float | None = None
    last_error: str = ""
    last_error_at: float | None = None
    last_reason: FailureReason | None = None
    disabled: str = ""  # why the feed is no longer polled (410 Gone)
    # -- items
    primed: bool = False  # first poll done: existing items marked seen
    primed_at: float | None = None
    items_new: int = 0  # since primed_at
    identity: str = "guid"  # or "link", for feeds whose GUIDs churn
    overflow_warned: float | None = None
    # -- pace (worker.poll.cadence, worker.poll.pacing)
    rate_since: float | None = None  # the feed's item rate estimate: observed since…
    rate_weight: float | None = None  # …its decayed weight…
    rate_at: float | None = None  # …as of
    last_push: float | None = None  # content a WebSub hub pushed
    #: Fields this version does not know, as read (another version's, or a newer one's).
    other: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, client: redis.Redis, feed_id: str) -> FeedState:
        """Return the stored state of ``feed_id`` (the defaults if there is none)."""
        return cls.read(client.hgetall(keys.feed_state(feed_id)))

    @classmethod
    def read(cls, raw: Mapping[bytes | str, bytes | str]) -> FeedState:
        """Return the state a Redis hash holds."""
        text = {_str(k): _str(v) for k, v in raw.items()}
        known = {f.name: f for f in fields(cls) if f.name != "other"}
        values: dict[str, Any] = {}
        for name, value in text.items():
            if name in known:
                values[name] = _decode(name, value, known[name].default)
        other = {k: v for k, v in text.items() if k not in known}
        return cls(**values, other=other)

    @classmethod
    def encode(cls, changes: Mapping[str, Any]) -> dict[str, str]:
        """Return ``changes`` (field name → value) as hash fields; ``None`` values are left out."""
        names = {f.name for f in fields(cls)} - {"other"}
        unknown = set(changes) - names
        if unknown:
            raise KeyError(f"not a FeedState field: {', '.join(sorted(unknown))}")
        return {k: _encode(v) for k, v in changes.items() if v is not None}


def _str(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _encode(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else ""
    return str(value)


_INTS = {"status", "failures", "items_new"}
_FLOATS = {
    "ttl",
    "interval",
    "interval_config",
    "poll_interval",
    "next_due",
    "last_ok",
    "last_error_at",
    "primed_at",
    "overflow_warned",
    "rate_since",
    "rate_weight",
    "rate_at",
    "last_push",
}


def _decode(name: str, value: str, default: Any) -> Any:
    """Return a hash field's value as its field's type (the default if it does not parse)."""
    try:
        if name in _INTS:
            return int(float(value))
        if name in _FLOATS:
            return float(value)
    except ValueError:
        return default
    if name == "primed":
        return bool(value)
    if name == "last_reason":
        return FailureReason.read(value) if value else None
    return value
