"""Quiet hours and digest schedules: parse them, and answer "when" questions. Pure, no I/O.

Syntax (``config/destinations.yaml``):

- ``quiet_hours: "22:00-07:00 Europe/Kyiv"`` — a daily window in a zoneinfo
  time zone (UTC when none is given). A window whose end is before its start
  crosses midnight. The start is inside the window, the end is not.
- ``digest: hourly`` — at the top of every hour (UTC);
  ``digest: "daily 08:00 Europe/Kyiv"`` — every day at that local time.

Every function takes the time as a Unix timestamp, so callers (and tests)
choose the clock. Local times are computed through zoneinfo, so daylight
saving changes move the UTC instant, not the local one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["DigestSchedule", "QuietHours", "parse_digest", "parse_quiet_hours", "release_time"]

_CLOCK = r"([01]?\d|2[0-3]):([0-5]\d)"
_QUIET = re.compile(rf"^\s*{_CLOCK}\s*-\s*{_CLOCK}(?:\s+(\S+))?\s*$")
_DAILY = re.compile(rf"^\s*daily\s+{_CLOCK}(?:\s+(\S+))?\s*$", re.IGNORECASE)


def _zone(name: str | None) -> tzinfo:
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name such as Europe/Kyiv)"
        ) from None


def _at(day: datetime, clock: time, tz: tzinfo) -> float:
    """Return the timestamp of ``clock`` on ``day``'s local date in ``tz``."""
    return datetime.combine(day.date(), clock, tzinfo=tz).timestamp()


@dataclass(frozen=True)
class QuietHours:
    """A daily window during which non-urgent alerts are held."""

    start: time
    end: time
    tz: tzinfo

    def active(self, now: float) -> bool:
        """Return whether ``now`` falls inside the window."""
        local = datetime.fromtimestamp(now, self.tz).time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # crosses midnight

    def ends_after(self, now: float) -> float:
        """Return the first end of the window strictly after ``now``."""
        local = datetime.fromtimestamp(now, self.tz)
        for days in range(3):  # today, tomorrow, or the day after around a DST change
            candidate = _at(local + timedelta(days=days), self.end, self.tz)
            if candidate > now:
                return candidate
        raise AssertionError("unreachable: a daily end time always comes within 3 days")


@dataclass(frozen=True)
class DigestSchedule:
    """When a digest destination's accumulated alerts go out."""

    label: str  # "hourly" or "daily"
    clock: time | None = None
    tz: tzinfo = UTC

    def next_slot(self, after: float) -> float:
        """Return the first digest time strictly after ``after``."""
        if self.clock is None:  # hourly, on the hour
            return (int(after) // 3600 + 1) * 3600.0
        local = datetime.fromtimestamp(after, self.tz)
        for days in range(3):
            candidate = _at(local + timedelta(days=days), self.clock, self.tz)
            if candidate > after:
                return candidate
        raise AssertionError("unreachable: a daily time always comes within 3 days")

    @property
    def reason(self) -> str:
        return f"{self.label} digest"


def parse_quiet_hours(text: str) -> QuietHours:
    """Return the window for ``"22:00-07:00 Europe/Kyiv"``; raise ``ValueError`` if malformed."""
    m = _QUIET.match(str(text))
    if not m:
        raise ValueError(f'bad quiet_hours {text!r}: use e.g. "22:00-07:00 Europe/Kyiv"')
    start, end = time(int(m.group(1)), int(m.group(2))), time(int(m.group(3)), int(m.group(4)))
    if start == end:
        raise ValueError(f"bad quiet_hours {text!r}: start and end are the same time")
    return QuietHours(start, end, _zone(m.group(5)))


def parse_digest(text: str) -> DigestSchedule:
    """Return the schedule for ``hourly`` or ``"daily 08:00 Europe/Kyiv"``; raise ``ValueError``."""
    if str(text).strip().lower() == "hourly":
        return DigestSchedule("hourly")
    m = _DAILY.match(str(text))
    if not m:
        raise ValueError(f'bad digest {text!r}: use hourly or e.g. "daily 08:00 Europe/Kyiv"')
    return DigestSchedule("daily", time(int(m.group(1)), int(m.group(2))), _zone(m.group(3)))


def release_time(due: float, now: float, quiet: QuietHours | None) -> float:
    """Return when something due at ``due`` may go out, given quiet hours (never before ``now``)."""
    t = max(due, now)
    # A window end can land inside the next window only if windows overlapped; two hops suffice.
    for _ in range(2):
        if quiet is None or not quiet.active(t):
            return t
        t = quiet.ends_after(t)
    return t
