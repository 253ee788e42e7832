"""Send notifications through apprise, exactly once per (watchlist, story, destination).

The only module that imports apprise. ``send`` wraps ``Apprise.notify``: it
raises ``DeliveryError`` with apprise's own reason instead of returning a
status, and it turns off apprise's per-process throttle (5.5 s between sends
by default, FACTS.md), because rate limits are ours to keep, shared by all
workers.

Exactly-once protocol (``deliver_once``), per delivery id:

1. ``SET newsalert:sent:<id> claim:<token> NX EX CLAIM_TTL`` — claim it.
   If the key says ``sent``, the delivery already happened: do nothing.
   If another worker's claim is there, raise so the job is retried later.
2. Send through apprise.
3. On success ``SET … sent EX SENT_TTL``; on failure release the claim
   (only if it is still ours) and raise so RQ retries with backoff.

A worker that dies between 2 and 3 leaves a claim that expires after
``CLAIM_TTL``; the retried job then sends again. That window is the one
place where at-least-once, not exactly-once, holds (see README).
"""

from __future__ import annotations

import logging
import secrets
import sys
from typing import Any

import apprise
import redis
from apprise.decorators import notify as apprise_notify

from worker import keys
from worker.config import Destination
from worker.errors import DeliveryError

log = logging.getLogger("newsalert.deliver")

_FORMATS = {
    "markdown": apprise.NotifyFormat.MARKDOWN,
    "html": apprise.NotifyFormat.HTML,
    "text": apprise.NotifyFormat.TEXT,
}

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@apprise_notify(on="console", name="newsalert terminal")
def _console(body: str, title: str = "", notify_type: str = "info", *args: Any, **kwargs: Any) -> bool:
    """Print a notification on standard output: the zero-configuration destination."""
    rule = "─" * 72
    sys.stdout.write(f"{rule}\n{title}\n{body}\n{rule}\n")
    sys.stdout.flush()
    return True


def quiet_apprise_logs() -> None:
    """Keep apprise's DEBUG output (which prints webhook tokens) out of our logs."""
    logging.getLogger("apprise").setLevel(logging.WARNING)


def default_format(url: str) -> str:
    """Return the message format a service wants when the destination names none."""
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("mailto", "mailtos", "email"):
        return "html"
    if scheme in ("json", "jsons", "form", "forms", "xml", "xmls", "console", "ntfy", "ntfys"):
        return "text"
    return "markdown"


def send(destination: Destination, title: str, body: str, fmt: str) -> None:
    """Send one notification; raise ``DeliveryError`` with the reason unless it was accepted."""
    plugin = apprise.Apprise.instantiate(destination.url, tag=destination.tag)
    if plugin is None:
        raise DeliveryError(f"destination {destination.name}: not a usable apprise URL")
    plugin.request_rate_per_sec = 0  # our own rate limit applies, across workers
    box = apprise.Apprise()
    box.add(plugin)
    quiet_apprise_logs()
    result = box.notify(body=body, title=title, body_format=_FORMATS[fmt])
    if result:
        return
    reasons = [e.message for e in result.logs() if e.level in ("WARNING", "ERROR", "CRITICAL")]
    reason = "; ".join(dict.fromkeys(reasons)) or f"apprise status {result.status.name}"
    for secret in destination.secrets:
        reason = reason.replace(secret, "****")
    raise DeliveryError(f"destination {destination.name}: {reason}")


def deliver_once(client: redis.Redis, delivery: str, destination: Destination,
                 title: str, body: str, fmt: str) -> bool:
    """Send unless this delivery was already sent; return whether this call sent it."""
    key = keys.ledger(delivery)
    token = "claim:" + secrets.token_hex(8)
    if not client.set(key, token, nx=True, ex=keys.CLAIM_TTL):
        state = client.get(key)
        if state == b"sent":
            return False
        if state is None:  # expired between SET and GET: try once more
            return deliver_once(client, delivery, destination, title, body, fmt)
        raise DeliveryError(f"destination {destination.name}: delivery in flight in another worker")
    try:
        send(destination, title, body, fmt)
    except BaseException:
        client.eval(_RELEASE, 1, key, token)
        raise
    client.set(key, "sent", ex=keys.SENT_TTL)
    return True


def was_sent(client: redis.Redis, delivery: str) -> bool:
    """Return whether the ledger records the delivery as sent."""
    return client.get(keys.ledger(delivery)) == b"sent"
