"""Mutes: stop a watchlist, or one rule of it, delivering for a while, on every worker at once.

A mute is one Redis key per target (``watchlist`` or ``watchlist/rule``)
holding who muted it, why, from which host and until when, and expiring with
the mute: there is nothing to clean up and no config edit or deploy. Workers
look the keys up when they match and again when they deliver (one ``MGET``,
no cache), so a mute or an unmute takes effect on the next batch or delivery.

Decisions:

- Muted matches are counted (``muted_matches``) and dropped: not delivered,
  not held for later. An alert queued before an ops mute, or waiting in an
  outbox (rate limit, quiet hours, digest), is dropped when its turn comes;
  one queued before the volume guard tripped was within the limit and goes.
- An alert that fired through several rules is dropped only when every one
  of them is muted.
- ``MUTES`` (a sorted set by end time) lists the mutes for ``stats``; the key
  is the authority, so a stale entry there is harmless and pruned on read.
- Every mute and unmute is logged and kept in ``MUTE_LOG`` (who, what, when,
  why, host), newest first, so "who muted this?" has an answer.
"""

from __future__ import annotations

import getpass
import json
import logging
import math
import socket
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import redis

from worker.config import Config
from worker.config.schema import parse_duration
from worker.core import keys
from worker.errors import NewsAlertError
from worker.model import alert_rules

log = logging.getLogger("newsalert.mute")

#: The longest mute: past this, fix the rule or remove it.
MAX_MUTE = 30 * 86400.0


@dataclass(frozen=True)
class Mute:
    """One active mute: ``target`` is ``watchlist`` or ``watchlist/rule``."""

    target: str
    until: float
    reason: str
    by: str
    host: str
    at: float
    #: "ops" (``newsalert mute``) or "guard" (the volume guard).
    kind: str = "ops"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Mute:
        names = ("target", "until", "reason", "by", "host", "at", "kind")
        return cls(**{k: data[k] for k in names if k in data})


def target(watchlist: str, rule: str | None = None) -> str:
    """Return the mute target of a watchlist, or of one of its rules."""
    return f"{watchlist}/{rule}" if rule else watchlist


def check_target(config: Config, what: str) -> None:
    """Raise ``NewsAlertError`` unless ``what`` names a watchlist, or a rule of one, in ``config``."""
    wid, _, rule = what.partition("/")
    wl = config.watchlist(wid)
    if wl is None:
        known = ", ".join(w.id for w in config.watchlists) or "none"
        raise NewsAlertError(f"unknown watchlist {wid!r} (watchlists: {known})")
    if rule and rule not in {r.id for r in wl.rules}:
        known = ", ".join(r.id for r in wl.rules)
        raise NewsAlertError(f"watchlist {wid!r} has no rule {rule!r} (rules: {known})")


def who() -> tuple[str, str]:
    """Return (user, host) of this process, for the mute log."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no $USER in a container
        user = "unknown"
    return user, socket.gethostname()


def mute_command(client: redis.Redis, config: Config, what: str, duration: str, reason: str) -> str:
    """Run ``newsalert mute``: check the target and the duration, mute; return what to print."""
    check_target(config, what)
    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise NewsAlertError(f"--for: {exc}") from None
    m = mute(client, what, seconds, reason)
    return f"muted {what} until {_utc(m.until)} on every worker"


def unmute_command(client: redis.Redis, config: Config, what: str, reason: str) -> str:
    """Run ``newsalert unmute``: check the target, end its mute; return what to print."""
    check_target(config, what)
    return f"unmuted {what}" if unmute(client, what, reason) else f"{what} was not muted"


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def _audit(pipe: Any, action: str, mute: Mute) -> None:
    pipe.lpush(keys.MUTE_LOG, json.dumps({"action": action, **mute.to_dict()}))
    pipe.ltrim(keys.MUTE_LOG, 0, keys.MUTE_LOG_MAX - 1)


def mute(
    client: redis.Redis,
    what: str,
    seconds: float,
    reason: str = "",
    *,
    by: tuple[str, str] | None = None,
    now: float | None = None,
    kind: str = "ops",
) -> Mute:
    """Mute ``what`` for ``seconds`` on every worker; replace an earlier mute of it."""
    if not 0 < seconds <= MAX_MUTE:
        raise NewsAlertError(f"--for must be more than 0 and at most {MAX_MUTE / 86400:.0f}d")
    now = time.time() if now is None else now
    user, host = by or who()
    m = Mute(what, now + seconds, reason, user, host, now, kind)
    with client.pipeline() as pipe:  # MULTI: the key, the index and the log agree
        pipe.set(keys.mute(what), json.dumps(m.to_dict()), ex=max(1, math.ceil(seconds)))
        pipe.zadd(keys.MUTES, {what: m.until})
        _audit(pipe, "mute", m)
        pipe.execute()
    log.warning(
        "%s@%s muted %s until %s%s",
        user,
        host,
        what,
        _utc(m.until),
        f": {reason}" if reason else "",
        extra={"watchlist": what.split("/", 1)[0]},
    )
    return m


def unmute(
    client: redis.Redis, what: str, reason: str = "", *, by: tuple[str, str] | None = None
) -> Mute | None:
    """End the mute of ``what`` now; return it, or None when it was not muted."""
    raw = client.get(keys.mute(what))
    user, host = by or who()
    now = time.time()
    with client.pipeline() as pipe:
        pipe.delete(keys.mute(what))
        pipe.zrem(keys.MUTES, what)
        if raw is not None:
            _audit(pipe, "unmute", Mute(what, now, reason, user, host, now))
        pipe.execute()
    if raw is None:
        return None
    log.warning(
        "%s@%s unmuted %s%s",
        user,
        host,
        what,
        f": {reason}" if reason else "",
        extra={"watchlist": what.split("/", 1)[0]},
    )
    return Mute.from_dict(json.loads(raw))


def active(client: redis.Redis, now: float | None = None) -> list[Mute]:
    """Return the mutes in force, soonest to end first."""
    now = time.time() if now is None else now
    client.zremrangebyscore(keys.MUTES, "-inf", now)
    targets = [t.decode() for t in client.zrange(keys.MUTES, 0, -1)]
    if not targets:
        return []
    raws = client.mget([keys.mute(t) for t in targets])
    gone = [t for t, raw in zip(targets, raws, strict=False) if raw is None]
    if gone:
        client.zrem(keys.MUTES, *gone)
    return [Mute.from_dict(json.loads(raw)) for raw in raws if raw is not None]


def history(client: redis.Redis, count: int = 10) -> list[dict[str, Any]]:
    """Return the newest ``count`` mute and unmute records."""
    return [json.loads(r) for r in client.lrange(keys.MUTE_LOG, 0, count - 1)]


def _rules(alert: dict[str, Any]) -> list[str]:
    return list(alert_rules(alert))


def _lookups(watchlist: str, rules: Sequence[str]) -> list[str]:
    return [keys.mute(watchlist), *(keys.mute(target(watchlist, r)) for r in rules)]


def _muted(found: Sequence[Any], rules: Sequence[str], *, guard: bool = True) -> set[str]:
    def on(raw: Any) -> bool:
        return raw is not None and (guard or json.loads(raw).get("kind") != "guard")

    if on(found[0]):
        return set(rules)
    return {r for r, raw in zip(rules, found[1:], strict=False) if on(raw)}


def muted_rules(client: redis.Redis, watchlist: str, rules: Sequence[str]) -> set[str]:
    """Return which of ``rules`` of ``watchlist`` are muted now (all of them if it is)."""
    return _muted(client.mget(_lookups(watchlist, rules)), rules)


def muted_alerts(client: redis.Redis, alerts: Sequence[dict[str, Any]]) -> list[bool]:
    """Return, per queued alert (as a dict), whether every rule it fired through is muted now.

    Volume-guard mutes do not count here: an alert queued before the guard
    tripped was within the limit, and goes out.
    """
    if not alerts:
        return []
    with client.pipeline(transaction=False) as pipe:
        for a in alerts:
            pipe.mget(_lookups(str(a.get("watchlist", "")), _rules(a)))
        found = pipe.execute()
    return [
        bool(_rules(a)) and _muted(f, _rules(a), guard=False) == set(_rules(a))
        for a, f in zip(alerts, found, strict=False)
    ]
