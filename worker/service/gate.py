"""Decide which matches may deliver: shadow rules, mutes and the volume guard.

Every match is counted once, under one of three counters: ``matches`` (it
goes on to delivery), ``shadow_matches`` (a ``shadow: true`` watchlist or
rule: counted, never delivered) or ``muted_matches`` (muted by ``newsalert
mute`` or by the volume guard: counted, not delivered, not held).

Volume guard (``max_per_hour: N`` on a watchlist): each live, unmuted match
of a rule counts towards that rule's total for the current clock hour. The
match that takes it past N trips the guard, once per rule and hour across all
workers (``SET NX``): the rule is muted until the hour ends and each of the
watchlist's destinations gets one notice, through the delivery queue and the
ledger like any alert (so a retried job never sends it twice). Matches past N
are muted whether or not the mute has reached Redis yet. The hour is the
worker's clock hour; the notice shows its end in the worker's local time
(``TZ``; UTC on most hosts).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis

from worker.config import Config, Watchlist
from worker.core import keys
from worker.core.metrics import incr, incr_hourly
from worker.deliver import mute as mutes
from worker.model import Match

log = logging.getLogger("newsalert.gate")

#: Sends a notice: (client, delivery id, payload) → queued or not (``worker.queue.enqueue_delivery``).
Enqueue = Callable[[redis.Redis, str, dict[str, Any]], bool]


def _count(client: Any, name: str, watchlist: str, rule: str, now: float) -> None:
    incr(client, name, watchlist, rule)
    incr_hourly(client, name, watchlist, rule, now=now)


def guard_notice(watchlist: str, rule: str, count: int, until: float) -> tuple[str, str]:
    """Return the title and text of the notice sent when a rule trips the volume guard."""
    what = mutes.target(watchlist, rule)
    return (
        f"newsalert: rule {rule} of watchlist {watchlist} muted",
        f"rule {rule} of watchlist {watchlist} matched {count} items in the last hour; "
        f"muted until {time.strftime('%H:%M', time.localtime(until))}; "
        f"edit it or run `newsalert unmute {what}`",
    )


def over_limit(client: redis.Redis, wl: Watchlist, rule: str, now: float, enqueue: Enqueue) -> bool:
    """Count one match of a guarded rule; return whether it is past ``max_per_hour``.

    The match that first goes past the limit mutes the rule until the hour
    ends and queues one notice per destination of the watchlist.
    """
    limit = wl.max_per_hour
    if limit is None:
        return False
    what, hour = mutes.target(wl.id, rule), int(now // 3600)
    with client.pipeline(transaction=False) as pipe:
        pipe.incr(keys.guard_count(what, hour))
        pipe.expire(keys.guard_count(what, hour), keys.GUARD_TTL)
        count = int(pipe.execute()[0])
    if count <= limit:
        return False
    if not client.set(keys.guard_tripped(what, hour), count, nx=True, ex=keys.GUARD_TTL):
        return True  # tripped already, by this or another worker
    until = (hour + 1) * 3600.0
    reason = f"volume guard: {count} matches this hour (max_per_hour {limit})"
    by = ("volume-guard", mutes.who()[1])
    mutes.mute(client, what, until - now, reason, by=by, now=now, kind="guard")
    title, body = guard_notice(wl.id, rule, count, until)
    for dest in wl.notify:
        delivery = keys.delivery_id(f"guard:{what}", str(hour), dest)
        payload = {
            "delivery": delivery,
            "destination": dest,
            "notice": {"title": title, "body": body},
        }
        enqueue(client, delivery, payload)
    log.warning(body, extra={"watchlist": wl.id})
    return True


def route(
    client: redis.Redis,
    config: Config,
    matches: Sequence[Match],
    enqueue: Enqueue,
    now: float | None = None,
) -> list[Match]:
    """Count every match and return those that may deliver (live, not muted, under the guard)."""
    now = time.time() if now is None else now
    by_watchlist: dict[str, list[Match]] = {}
    for m in matches:
        by_watchlist.setdefault(m.watchlist, []).append(m)
    out: list[Match] = []
    for wid, ms in by_watchlist.items():
        wl = config.watchlist(wid)
        if wl is None:
            continue
        live = [m for m in ms if not wl.is_shadow(m.rule)]
        for m in ms:
            if wl.is_shadow(m.rule):
                _count(client, "shadow_matches", wid, m.rule, now)
        muted = mutes.muted_rules(client, wid, [m.rule for m in live]) if live else set()
        for m in live:
            if m.rule in muted or over_limit(client, wl, m.rule, now, enqueue):
                _count(client, "muted_matches", wid, m.rule, now)
            else:
                out.append(m)
    return out
