"""Decide what leaves a destination's outbox now, alone or as one digest. Pure, no I/O.

Quiet hours hold non-urgent alerts until the window ends; a ``digest``
schedule holds them until the next slot after they arrived. Held alerts that
are released together, or more than ``digest_after`` eligible at once, go out
as one digest of at most ``DIGEST_MAX``; otherwise the oldest goes alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.config import Destination
from worker.config.schedule import release_time
from worker.model import Delivery

#: Most alerts listed in one digest message (chat services cap message size).
DIGEST_MAX = 50


@dataclass(frozen=True)
class Entry:
    """One alert waiting in a destination's outbox."""

    delivery: str
    arrived: float
    payload: Delivery

    @property
    def urgent(self) -> bool:
        return self.payload.urgent


@dataclass(frozen=True)
class Plan:
    """What a flush sends now, and when it must look again."""

    batch: list[Entry]
    digest_reason: str | None  # None: one alert on its own
    next_due: float | None


def uses_outbox(dest: Destination) -> bool:
    """Return whether alerts to ``dest`` wait in its outbox instead of going out directly."""
    return bool(dest.rate or dest.digest_after is not None or dest.quiet_hours or dest.digest)


def plan(dest: Destination, entries: list[Entry], now: float) -> Plan:
    """Decide which waiting entries go out now, alone or as one digest."""
    quiet, schedule = dest.quiet_hours, dest.digest
    eligible: list[Entry] = []
    held: list[Entry] = []
    later: list[float] = []
    for e in sorted(entries, key=lambda e: (e.arrived, e.delivery)):
        if e.urgent:  # urgent watchlists bypass quiet hours and digest schedules
            eligible.append(e)
            continue
        due = schedule.next_slot(e.arrived) if schedule else e.arrived
        release_at = release_time(due, now, quiet)
        if release_at > now:
            later.append(release_at)
            continue
        eligible.append(e)
        if schedule or (quiet and quiet.active(e.arrived)):
            held.append(e)
    next_due = min(later) if later else None
    if not eligible:
        return Plan([], None, next_due)
    if held and (schedule or len(held) > 1):
        reason = schedule.reason if schedule else "quiet hours ended"
    elif dest.digest_after is not None and len(eligible) > dest.digest_after:
        reason = f"{len(eligible)} alerts at once"
    else:
        return Plan(eligible[:1], None, next_due)
    return Plan(eligible[:DIGEST_MAX], reason, next_due)
