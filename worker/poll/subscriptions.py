"""The poller's side of WebSub: keep subscriptions in line with the config, take pushes in.

``maintain`` walks the subscription records (``worker.poll.websub``) and sends
the hub what each needs (§5.1: a form POST with ``hub.callback``,
``hub.mode``, ``hub.topic`` and ``hub.secret``):

- a configured feed whose hub is known: **subscribe**, with a fresh callback
  token and secret (at most 199 bytes, §5.1); again when a request was not
  verified within ``VERIFY_TIMEOUT``, a denial is ``DENIED_RETRY`` old, or the
  lease reaches ``websub.RENEW_AT`` (**renewal**, same token and secret, so
  pushes keep flowing while the hub verifies);
- a feed removed from the config, or every feed once ``websub.callback`` is
  removed: **unsubscribe**; the record goes when the hub verifies that, or
  when the lease has run out anyway;
- a hub that refuses or cannot be reached: retried with back-off (1 min
  doubling to ``MAX_RETRY``), logged, counted.

``Push`` runs ``maintain`` every ``every`` seconds and feeds pushed bodies to
``Poller.take_pushed`` (the same parse, identity, seen-set and match path as a
poll), each as a background task of the poll loop so a slow hub or a slow
article fetch never holds up polling. A body taken off the inbox is lost if
the poller dies right then; the feed's safety-net poll finds its items.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis

from worker.core import keys
from worker.core.metrics import incr
from worker.core.retry import backoff
from worker.errors import FeedError
from worker.poll import websub

if TYPE_CHECKING:
    from worker.config import Config
    from worker.poll.fetch import Fetcher
    from worker.poll.poller import Poller

__all__ = ["Push", "maintain"]

log = logging.getLogger("newsalert.websub")

#: A subscribe or unsubscribe request not verified within this long is sent again.
VERIFY_TIMEOUT = 600.0
#: The longest wait before asking a failing hub again.
MAX_RETRY = 6 * 3600.0
#: How many pushed bodies one drain takes off the inbox.
DRAIN_BATCH = 50


def _due(sub: dict[str, str], wanted: bool, now: float) -> str | None:
    """Return what a record needs now: ``subscribe``, ``unsubscribe``, ``forget`` or None."""
    state, next_try = sub.get("state", "offered"), float(sub.get("next_try") or 0)
    if not wanted:
        if state in ("offered", "denied") or (
            state == "unsubscribing" and float(sub.get("lease_until") or 0) <= now
        ):
            return "forget"  # nothing live at the hub to undo
        return "unsubscribe" if state != "unsubscribing" or now >= next_try else None
    if state == "active":  # renew; a renewal already sent waits for its verification
        return "subscribe" if now >= max(float(sub.get("renew_at") or 0), next_try) else None
    return "subscribe" if state == "unsubscribing" or now >= next_try else None


async def _ask(
    client: redis.Redis,
    fetcher: Fetcher,
    feed_id: str,
    sub: dict[str, str],
    mode: str,
    callback: str,
    now: float,
) -> None:
    """Send one subscribe or unsubscribe request to the feed's hub and record the outcome."""
    renewing = mode == "subscribe" and sub.get("state") == "active"
    token = sub["token"] if renewing or mode == "unsubscribe" else secrets.token_hex(16)
    secret = sub["secret"] if renewing or mode == "unsubscribe" else secrets.token_hex(32)
    url = sub.get("callback") if mode == "unsubscribe" else f"{callback}/websub/{feed_id}/{token}"
    form = {"hub.callback": url or "", "hub.mode": mode, "hub.topic": sub["topic"]}
    if mode == "subscribe":
        form["hub.secret"] = secret
    key = keys.websub(feed_id)
    # Written first: the hub may verify before it even answers this request.
    state = "active" if renewing else "requested" if mode == "subscribe" else "unsubscribing"
    before = {"mode": mode, "token": token, "secret": secret, "callback": url or "", "state": state}
    client.hset(key, mapping={**before, "requested_at": now, "next_try": now + VERIFY_TIMEOUT})
    try:
        await fetcher.fetch(sub["hub"], form=form)
    except FeedError as exc:
        failures = int(sub.get("failures") or 0) + 1
        retry = backoff(60.0, failures, MAX_RETRY)
        client.hset(key, mapping={"failures": failures, "error": str(exc)[:300]})
        client.hset(key, "next_try", now + retry)
        incr(client, "websub", feed_id, "failed")
        log.warning("feed %s: WebSub %s at %s failed: %s", feed_id, mode, sub["hub"], exc)
        return
    incr(client, "websub", feed_id, "requested")
    log.info("feed %s: WebSub %s sent to %s", feed_id, mode, sub["hub"])


async def maintain(client: redis.Redis, config: Config, fetcher: Fetcher, now: float) -> None:
    """Subscribe, renew and unsubscribe so that hubs push exactly the configured feeds."""
    wanted = {f.id for f in config.feeds} if config.websub_callback else set()
    for feed_id, sub in websub.records(client).items():
        action = _due(sub, feed_id in wanted, now) if sub.get("topic") else "forget"
        if action == "forget":
            client.delete(keys.websub(feed_id))
            client.srem(keys.WEBSUB_FEEDS, feed_id)
        elif action is not None and sub.get("hub"):
            await _ask(client, fetcher, feed_id, sub, action, config.websub_callback or "", now)


def _report(task: asyncio.Task[Any]) -> None:
    """Log what ended a background task with an error (the next tick starts it again)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed: %r", task.get_name(), task.exception())


class Push:
    """The WebSub work of one poll loop: background maintenance and inbox drains."""

    def __init__(self, poller: Poller, fetcher: Fetcher, *, every: float = 5.0) -> None:
        self.poller, self.fetcher, self.every = poller, fetcher, every
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._maintained = -float("inf")

    def _start(self, name: str, work: Callable[[], Any]) -> None:
        task = self._tasks.get(name)
        if task is None or task.done():
            self._tasks[name] = asyncio.create_task(work(), name=f"websub-{name}")
            self._tasks[name].add_done_callback(_report)

    def tick(self) -> None:
        """Start what is due (each kind of work runs once at a time)."""
        if time.monotonic() - self._maintained >= self.every:
            self._maintained = time.monotonic()
            p = self.poller
            self._start("maintain", lambda: maintain(p.redis, p.config, self.fetcher, p.clock()))
        if self.poller.config.websub_callback and self.poller.redis.llen(keys.WEBSUB_INBOX):
            self._start("drain", self.drain)

    async def drain(self) -> int:
        """Take pushed bodies off the inbox through the poller; return how many were taken."""
        client, taken = self.poller.redis, 0
        for _ in range(DRAIN_BATCH):
            raw = client.lpop(keys.WEBSUB_INBOX)
            if raw is None:
                break
            msg = json.loads(raw)
            feed = self.poller.config.feed(msg["feed"])
            if feed is None:
                log.info("feed %s: pushed content dropped: no longer configured", msg["feed"])
                continue
            body = base64.b64decode(msg["body"])
            try:
                out = await self.poller.take_pushed(self.fetcher, feed, body, msg["headers"])
            except FeedError as exc:  # unreadable content: dropped; the next poll reads the feed
                log.warning("feed %s: pushed content dropped: %s", feed.id, exc)
                continue
            if out is None:  # being polled right now: try again on the next tick
                client.lpush(keys.WEBSUB_INBOX, raw)
                break
            taken += 1
            log.info("feed %s: pushed content: %d new items queued", feed.id, out.queued)
        return taken

    async def close(self) -> None:
        """Wait briefly for running work, then cancel what is left."""
        running = [t for t in self._tasks.values() if not t.done()]
        if running:
            await asyncio.wait(running, timeout=10)
        for task in running:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
