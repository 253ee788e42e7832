"""Read JSON Feed dates with the standard library (RFC 3339, as JSON Feed 1.1 requires).

Decisions, for the dates real feeds send:

- RFC 3339 is read by ``datetime.fromisoformat``; its lower-case ``t``/``z`` are
  accepted, fractions of a second kept, and a leap second (``:60``) is the
  next second.
- A date without an offset is taken as UTC, never as this machine's local time.
- An RFC 822 date (``Wed, 01 May 2024 12:00:00 GMT``, what RSS uses and some
  JSON Feeds send by mistake) is read too: dropping it would drop the date.
- Anything else is no date (``None``): the item keeps its place without one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

__all__ = ["epoch"]


def epoch(text: str) -> float | None:
    """Return the POSIX time of an RFC 3339 (or RFC 822) date, or None if it is not one."""
    text = text.strip()
    if not text:
        return None
    leap = timedelta(0)
    iso = text.upper()
    if iso[17:19] == "60" and iso[13:14] == ":":  # 23:59:60 is a leap second
        iso, leap = iso[:17] + "59" + iso[19:], timedelta(seconds=1)
    try:
        when = datetime.fromisoformat(iso) + leap
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
