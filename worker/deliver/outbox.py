"""Per-destination outbox: rate limits, burst digests, quiet hours and scheduled digests.

Destinations with none of ``rate``, ``digest_after``, ``quiet_hours`` or
``digest`` are sent to directly by the delivery job. For the others the
delivery job only ``add``s the alert to the destination's outbox and calls
``flush``; what leaves, and when, is decided here:

- **Outbox**: a sorted set of delivery ids scored by arrival time, with the
  payloads in a hash. ``ZADD NX`` makes a delivery wait at most once.
  Entries stay in the outbox until they are sent (or dead-lettered): nothing
  is popped before sending, so an alert taken by a flusher that dies comes
  back by itself, with no processing list to recover.
- **Flush** (one process per destination at a time: ``worker.core.locks`` with
  a TTL): work out which entries are eligible now (quiet hours hold
  non-urgent alerts until the window ends; a ``digest`` schedule holds them
  until the next slot after they arrived), take one token from the Redis
  token bucket (``worker.deliver.ratelimit``), then send either the oldest alert
  alone or, when more than ``digest_after`` are eligible, or held alerts are
  being released, one digest listing them all (up to ``DIGEST_MAX`` a
  message; the rest go in the next one).
- **Exactly once**: before sending, every included delivery is claimed in
  the ledger in one Lua step (``deliver.claim_many``); deliveries already
  sent (alone or in an earlier digest) are dropped from the outbox unsent.
  After apprise accepts, the ledger marks and the outbox removal happen in
  one MULTI. A crash between send and mark leaves claims that expire after
  ``CLAIM_TTL``, after which the alerts go again: the same at-least-once
  window as the direct path.
- **Waking up**: a flush that cannot send everything records when it next
  needs to run in ``keys.FLUSH_DUE`` (earliest time wins) and, when that is
  within ``HORIZON`` seconds, queues an RQ job for then. Later wake-ups
  (end of quiet hours, tomorrow's digest) are picked up by ``flush_due``,
  which workers call periodically and ``run --once`` calls before it exits.
- **Failures**: a failed send counts an attempt for each included alert and
  holds the whole destination back (``retry_at``) for the next retry
  interval; an alert that has used up every interval becomes a dead letter.

Every function takes ``clock`` (a ``time.time``-like callable) so tests can
run quiet hours and digest schedules without sleeping.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import redis

from worker.config import Config, Destination
from worker.core import keys
from worker.core.archive import record_sent
from worker.core.locks import hold
from worker.core.metrics import incr, observe_latency
from worker.core.replies import text
from worker.core.retry import delivery_retry_intervals
from worker.deliver.mute import muted_alerts
from worker.deliver.ratelimit import take
from worker.deliver.release import Entry, Plan, plan, uses_outbox
from worker.deliver.render import render, render_digest
from worker.deliver.send import (
    claim_many,
    dead_letter,
    default_format,
    mark_sent,
    notify_failure,
    record_failure,
    record_ok,
    release,
    send,
)
from worker.errors import DeliveryError
from worker.model import Alert, Delivery
from worker.stories.storyid import story_id

__all__ = ["add", "flush", "flush_due", "plan", "schedule_flush", "uses_outbox"]

log = logging.getLogger("newsalert.outbox")

Clock = Callable[[], float]
#: Queue a flush of a destination in ``delay`` seconds (the service passes RQ's).
EnqueueFlush = Callable[[redis.Redis, str, float], None]

#: Most messages one flush sends before it hands over to a fresh job.
MAX_MESSAGES_PER_FLUSH = 20
#: Wake-ups at most this far ahead get an RQ job; later ones wait for ``flush_due``.
HORIZON = 600.0
#: How soon to look again at alerts another worker holds a claim on.
BUSY_RECHECK = 5.0
#: How many waiting alerts one flush reads.
LOAD_MAX = 1000

# KEYS[1] FLUSH_DUE; ARGV: destination, at, now, stale. Keep the earliest wake-up,
# unless the recorded one is long past (its job was lost): then take the new one.
_SCHEDULE = """
local cur = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
local at = tonumber(ARGV[2])
if cur and cur <= at and cur >= tonumber(ARGV[3]) - tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], at, ARGV[1])
return 1
"""
# KEYS[1] FLUSH_DUE; ARGV: now. Take every destination that is due.
_TAKE_DUE = """
local names = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, name in ipairs(names) do redis.call('ZREM', KEYS[1], name) end
return names
"""


def add(client: redis.Redis, destination: str, job: Delivery, now: float) -> bool:
    """Put a delivery in the destination's outbox unless it is already waiting; return whether added."""
    with client.pipeline() as pipe:
        pipe.zadd(keys.outbox(destination), {job.id: now}, nx=True)
        pipe.hsetnx(keys.outbox_payloads(destination), job.id, json.dumps(job.to_dict()))
        added = pipe.execute()[0]
    return bool(added)


def schedule_flush(
    client: redis.Redis,
    destination: str,
    at: float,
    now: float,
    enqueue_flush: EnqueueFlush,
    force: bool = False,
) -> None:
    """Make sure the destination is flushed at ``at`` (or earlier)."""
    changed = client.eval(_SCHEDULE, 1, keys.FLUSH_DUE, destination, repr(at), repr(now), 30)
    if (changed or force) and at - now <= HORIZON:
        enqueue_flush(client, destination, max(0.0, at - now))


def _load(client: redis.Redis, destination: str) -> list[Entry]:
    ids: list[tuple[bytes, float]] = client.zrange(
        keys.outbox(destination), 0, LOAD_MAX - 1, withscores=True
    )
    if not ids:
        return []
    raw = client.hmget(keys.outbox_payloads(destination), [d for d, _ in ids])
    entries = []
    for (delivery, arrived), body in zip(ids, raw, strict=False):
        if body is None:  # payload lost (should not happen): nothing to send
            client.zrem(keys.outbox(destination), delivery)
            continue
        entries.append(
            Entry(delivery.decode(), float(arrived), Delivery.from_dict(json.loads(body)))
        )
    return entries


def _forget(pipe: Any, destination: str, deliveries: list[str]) -> None:
    if deliveries:
        pipe.zrem(keys.outbox(destination), *deliveries)
        pipe.hdel(keys.outbox_payloads(destination), *deliveries)
        pipe.hdel(keys.outbox_attempts(destination), *deliveries)


def with_also_in(client: redis.Redis, alert: Alert) -> Alert:
    """Return ``alert`` with the other feeds its story arrived from ("also in")."""
    story = story_id(alert.item)
    others = sorted(text(f) for f in client.smembers(keys.story_feeds(story)))
    return replace(alert, also_in=tuple(f for f in others if f != alert.item.feed))


class _Flush:
    """One flush of one destination's outbox, under its lock."""

    def __init__(
        self,
        client: redis.Redis,
        config: Config,
        dest: Destination,
        clock: Clock,
        enqueue_flush: EnqueueFlush,
    ) -> None:
        self.client, self.config, self.dest, self.clock = client, config, dest, clock
        self.enqueue_flush = enqueue_flush
        self.skip: set[str] = set()  # claimed by another worker during this flush
        self.sent = 0

    def cancel_orphans(self, entries: list[Entry]) -> list[Entry]:
        """Drop waiting alerts whose watchlist was removed (logged) or that are muted now."""
        live = {w.id for w in self.config.watchlists}
        orphans = [e for e in entries if e.payload.alert.watchlist not in live]
        flags = muted_alerts(self.client, [e.payload.alert.to_dict() for e in entries])
        muted = [e for e, m in zip(entries, flags, strict=False) if m and e not in orphans]
        if orphans or muted:
            with self.client.pipeline() as pipe:
                _forget(pipe, self.dest.name, [e.delivery for e in orphans + muted])
                for outcome, group in (("cancelled", orphans), ("muted", muted)):
                    if group:
                        incr(pipe, "deliveries", self.dest.name, outcome, by=len(group))
                pipe.execute()
        for e in orphans:
            log.info(
                "watchlist %s was removed: alert cancelled: %s",
                e.payload.alert.watchlist,
                e.payload.alert.item.title[:80],
                extra={"destination": self.dest.name},
            )
        gone = {e.delivery for e in orphans + muted}
        return [e for e in entries if e.delivery not in gone]

    def schedule(self, at: float, now: float) -> None:
        schedule_flush(self.client, self.dest.name, at, now, self.enqueue_flush)

    def run(self) -> int:
        name = self.dest.name
        now = self.clock()
        # Whatever is still waiting when this flush ends gets a fresh wake-up from it.
        self.client.zrem(keys.FLUSH_DUE, name)
        for _ in range(MAX_MESSAGES_PER_FLUSH):
            entries = self.cancel_orphans(
                [e for e in _load(self.client, name) if e.delivery not in self.skip]
            )
            if not entries:
                break
            retry_at = float(self.client.hget(keys.destination_health(name), "retry_at") or 0)
            if retry_at > now:  # backing off after a failure
                self.schedule(retry_at, now)
                break
            p = plan(self.dest, entries, now)
            if not p.batch:
                if p.next_due is not None:
                    self.schedule(p.next_due, now)
                break
            if self.dest.rate:
                wait = take(
                    self.client, name, self.dest.rate, None if self.clock is time.time else now
                )
                if wait > 0:
                    self.schedule(now + wait, now)
                    break
            if not self.send(p, now):
                break
            now = self.clock()
        else:
            self.schedule(now, now)  # more than one flush's worth: carry on in a fresh job
        if self.skip:
            self.schedule(now + BUSY_RECHECK, now)
        return self.sent

    def send(self, p: Plan, now: float) -> bool:
        """Send one message for the plan's batch; return whether to go on flushing."""
        name = self.dest.name
        token, states = claim_many(self.client, [e.delivery for e in p.batch])
        claimed = [e for e in p.batch if states[e.delivery] == "claimed"]
        already = [e.delivery for e in p.batch if states[e.delivery] == "sent"]
        self.skip |= {e.delivery for e in p.batch if states[e.delivery] == "busy"}
        if already:
            with self.client.pipeline() as pipe:
                _forget(pipe, name, already)
                incr(pipe, "deliveries", name, "duplicate", by=len(already))
                pipe.execute()
        if not claimed:
            return True
        fmt = self.dest.format or default_format(self.dest.url)
        alerts = [with_also_in(self.client, e.payload.alert) for e in claimed]
        digest = p.digest_reason is not None and (
            len(claimed) > 1 or p.digest_reason.endswith("digest")
        )
        if digest:
            title, body = render_digest(alerts, fmt, p.digest_reason or "")
        else:
            title, body = render(alerts[0], fmt, self.dest.template)
        ids = [e.delivery for e in claimed]
        try:
            send(self.dest, title, body, fmt)
        except DeliveryError as exc:
            release(self.client, ids, token)
            self.failed(claimed, exc, now)
            return False
        with self.client.pipeline() as pipe:  # MULTI: marked sent and gone from the outbox together
            mark_sent(pipe, ids)
            _forget(pipe, name, ids)
            record_sent(pipe, [e.payload.to_dict() for e in claimed], self.config.archive, now)
            incr(pipe, "deliveries", name, "sent", by=len(ids))
            if digest:
                incr(pipe, "digests", name)
            for alert in alerts:
                observe_latency(pipe, now - (alert.item.seen_at or now))
            pipe.execute()
        record_ok(self.client, name, now)
        self.sent += 1
        what = f"digest of {len(ids)} ({p.digest_reason})" if digest else alerts[0].item.title[:80]
        log.info("sent to %s: %s", name, what, extra={"destination": name})
        return True

    def failed(self, claimed: list[Entry], exc: DeliveryError, now: float) -> None:
        """Count an attempt for each alert, back the destination off, dead-letter the exhausted."""
        name = self.dest.name
        intervals = delivery_retry_intervals()
        with self.client.pipeline() as pipe:
            for e in claimed:
                pipe.hincrby(keys.outbox_attempts(name), e.delivery, 1)
            attempts = [int(a) for a in pipe.execute()]
        exhausted = [e for e, n in zip(claimed, attempts, strict=False) if n > len(intervals)]
        for e in exhausted:
            dead_letter(self.client, self.config, e.payload, str(exc), now, notify=False)
        if exhausted:
            notify_failure(
                self.client, self.config, exhausted[0].payload, str(exc), now, len(exhausted)
            )
            with self.client.pipeline() as pipe:
                _forget(pipe, name, [e.delivery for e in exhausted])
                pipe.execute()
        left = [n for n in attempts if n <= len(intervals)]
        delay = float(intervals[min(left) - 1]) if left else 0.0
        delay = max(delay, exc.retry_after or 0.0)
        record_failure(
            self.client, name, str(exc), now, retry_at=now + delay, secrets=self.dest.secrets
        )
        if left:
            log.warning("%s (will retry in %.0fs)", exc, delay, extra={"destination": name})
        self.schedule(now + delay, now)


def flush(
    client: redis.Redis,
    config: Config,
    destination: str,
    clock: Clock = time.time,
    *,
    enqueue_flush: EnqueueFlush,
) -> int:
    """Send what is due from a destination's outbox; return how many messages went out."""
    dest = config.destinations.get(destination)
    if dest is None:
        for e in _load(client, destination):
            dead_letter(
                client, config, e.payload, f"destination {destination} is no longer configured"
            )
            with client.pipeline() as pipe:
                _forget(pipe, destination, [e.delivery])
                pipe.execute()
        return 0
    with hold(client, keys.flush_lock(destination), keys.FLUSH_LOCK_TTL) as ours:
        if ours:
            return _Flush(client, config, dest, clock, enqueue_flush).run()
    now = clock()  # another process is flushing: look again shortly, in case it just finished
    schedule_flush(client, destination, now + 1.0, now, enqueue_flush, force=True)
    return 0


def flush_due(
    client: redis.Redis, config: Config, clock: Clock = time.time, *, enqueue_flush: EnqueueFlush
) -> int:
    """Flush every destination whose wake-up time has come; return how many messages went out."""
    now = clock()
    names = {text(n) for n in client.eval(_TAKE_DUE, 1, keys.FLUSH_DUE, repr(now))}
    # An outbox with alerts but no wake-up (a crash between add and schedule) is due too.
    for name, dest in config.destinations.items():
        if (
            uses_outbox(dest)
            and client.zscore(keys.FLUSH_DUE, name) is None
            and client.zcard(keys.outbox(name))
        ):
            names.add(name)
    return sum(
        flush(client, config, name, clock, enqueue_flush=enqueue_flush) for name in sorted(names)
    )
