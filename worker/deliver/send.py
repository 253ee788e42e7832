"""Send notifications through apprise, exactly once per (watchlist, story, destination).

The only module that imports apprise. ``send`` wraps ``Apprise.notify``: it
raises ``DeliveryError`` with apprise's own reason instead of returning a
status, and it turns off apprise's per-process throttle (5.5 s between sends
by default; ARCHITECTURE.md "Dependencies"), because rate limits are ours to
keep, shared by all workers.

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

A digest (``worker.deliver.outbox``) claims all of its deliveries in one Lua step
(``claim_many``) and marks them sent together, so an alert counts as
delivered whether it went out alone or inside a digest, never both.

Failures: every destination keeps a health record (consecutive failures,
last error with secrets masked, last success) that ``stats`` reports. A
delivery that fails for good becomes a dead letter (``dead_letter``) and,
when the destination names an ``on_failure:`` destination, a short notice
goes there, itself at most once per dead letter (it has its own ledger id).
"""

from __future__ import annotations

import json
import logging
import secrets
import sys
import time
from collections.abc import Sequence
from typing import Any

import apprise
import redis
from apprise.decorators import notify as apprise_notify

from worker.config import Config, Destination
from worker.core import keys
from worker.core.metrics import incr
from worker.core.redact import redact_text
from worker.deliver.health import FAILING_AFTER
from worker.errors import DeliveryError
from worker.model import Delivery

log = logging.getLogger("newsalert.deliver")

_FORMATS = {
    "markdown": apprise.NotifyFormat.MARKDOWN,
    "html": apprise.NotifyFormat.HTML,
    "text": apprise.NotifyFormat.TEXT,
}

_RELEASE = """
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then n = n + redis.call('DEL', key) end
end
return n
"""

# KEYS: ledger keys; ARGV: claim token, claim TTL. One state per key:
# "claimed" (ours now), "sent" (delivered before), "busy" (another worker's claim).
_CLAIM_MANY = """
local out = {}
for i, key in ipairs(KEYS) do
  local state = redis.call('GET', key)
  if not state then
    redis.call('SET', key, ARGV[1], 'EX', tonumber(ARGV[2]))
    out[i] = 'claimed'
  elseif state == 'sent' then
    out[i] = 'sent'
  else
    out[i] = 'busy'
  end
end
return out
"""


class InFlight(DeliveryError):
    """Raised when another worker holds the claim on a delivery (it owns the outcome)."""


# apprise's decorator is unannotated.
@apprise_notify(on="console", name="newsalert terminal")  # type: ignore[untyped-decorator,no-untyped-call]
def _console(
    body: str, title: str = "", notify_type: str = "info", *args: Any, **kwargs: Any
) -> bool:
    """Print a notification on standard output: the zero-configuration destination."""
    rule = "─" * 72
    sys.stdout.write(f"{rule}\n{title}\n{body}\n{rule}\n")
    sys.stdout.flush()
    return True


def quiet_apprise_logs() -> None:
    """Keep apprise's DEBUG output (which prints webhook tokens) out of our logs.

    urllib3, apprise's transport through requests, logs every request line,
    webhook path and query tokens included, at DEBUG too. apprise's warnings
    do not propagate to our handlers at all: ``send`` captures them per call
    and raises them, secrets masked, as ``DeliveryError``, so they are logged
    once, by us.
    """
    for name in ("apprise", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("apprise").propagate = False


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
    # apprise does not expose the response, so an endpoint's Retry-After is not seen here.
    raise DeliveryError(
        f"destination {destination.name}: {redact_text(reason, destination.secrets)}"
    )


def deliver_once(
    client: redis.Redis, delivery: str, destination: Destination, title: str, body: str, fmt: str
) -> bool:
    """Send unless this delivery was already sent; return whether this call sent it."""
    key = keys.ledger(delivery)
    token = "claim:" + secrets.token_hex(8)
    if not client.set(key, token, nx=True, ex=keys.CLAIM_TTL):
        state = client.get(key)
        if state == b"sent":
            return False
        if state is None:  # expired between SET and GET: try once more
            return deliver_once(client, delivery, destination, title, body, fmt)
        raise InFlight(f"destination {destination.name}: delivery in flight in another worker")
    try:
        send(destination, title, body, fmt)
    except BaseException:
        client.eval(_RELEASE, 1, key, token)
        raise
    client.set(key, "sent", ex=keys.SENT_TTL)
    return True


def was_sent(client: redis.Redis, delivery: str) -> bool:
    """Return whether the ledger records the delivery as sent."""
    return bool(client.get(keys.ledger(delivery)) == b"sent")


def claim_many(client: redis.Redis, deliveries: Sequence[str]) -> tuple[str, dict[str, str]]:
    """Claim deliveries in one atomic step; return the claim token and each one's state.

    States: ``claimed`` (ours to send), ``sent`` (delivered before, skip it),
    ``busy`` (another worker holds it; try again later).
    """
    token = "claim:" + secrets.token_hex(8)
    states = client.eval(
        _CLAIM_MANY, len(deliveries), *[keys.ledger(d) for d in deliveries], token, keys.CLAIM_TTL
    )
    return token, {
        d: s.decode() if isinstance(s, bytes) else str(s)
        for d, s in zip(deliveries, states, strict=False)
    }


def release(client: redis.Redis, deliveries: Sequence[str], token: str) -> None:
    """Give back the claims that are still ours, so the deliveries can be tried again."""
    if deliveries:
        client.eval(_RELEASE, len(deliveries), *[keys.ledger(d) for d in deliveries], token)


def mark_sent(pipe: Any, deliveries: Sequence[str]) -> None:
    """Record deliveries as sent, inside the caller's transaction."""
    for d in deliveries:
        pipe.set(keys.ledger(d), "sent", ex=keys.SENT_TTL)


# -- destination health ------------------------------------------------------


def record_ok(client: redis.Redis, name: str, now: float | None = None) -> None:
    """Note that a destination accepted a message: it is healthy again."""
    key = keys.destination_health(name)
    with client.pipeline() as pipe:
        pipe.hset(key, mapping={"failures": 0, "last_ok": now or time.time()})
        pipe.hdel(key, "retry_at")
        pipe.execute()


def record_failure(
    client: redis.Redis,
    name: str,
    reason: str,
    now: float | None = None,
    retry_at: float | None = None,
    secrets: Sequence[str] = (),
) -> int:
    """Note a failed send, ``secrets`` masked in what is kept; return the consecutive failures."""
    key = keys.destination_health(name)
    now = now or time.time()
    reason = redact_text(reason, secrets)
    with client.pipeline() as pipe:
        incr(pipe, "deliveries", name, "failed")
        pipe.hincrby(key, "failures", 1)
        pipe.hset(key, mapping={"last_error": reason[:500], "last_failure_at": now})
        if retry_at is not None:
            pipe.hset(key, "retry_at", retry_at)
        failures = int(pipe.execute()[0])
    if failures == FAILING_AFTER or (failures > FAILING_AFTER and failures % 10 == 0):
        log.error(
            "destination %s keeps failing: %d failures in a row, last: %s",
            name,
            failures,
            reason,
            extra={"destination": name},
        )
    return failures


# -- dead letters ------------------------------------------------------------


def dead_letter(
    client: redis.Redis,
    config: Config,
    job: Delivery,
    reason: str,
    now: float | None = None,
    notify: bool = True,
) -> None:
    """Keep a delivery that failed for good, with its reason, and tell ``on_failure``."""
    failed_at = now or time.time()
    reason = redact_text(reason, config.secrets())
    letter = {**job.to_dict(), "reason": reason, "failed_at": failed_at}
    with client.pipeline() as pipe:
        pipe.lpush(keys.DEAD_LETTERS, json.dumps(letter))
        pipe.ltrim(keys.DEAD_LETTERS, 0, keys.DEAD_LETTERS_MAX - 1)
        incr(pipe, "deliveries", job.destination, "dead")
        pipe.execute()
    log.error(
        "%s: gave up, alert kept as a dead letter",
        reason,
        extra={"destination": job.destination},
    )
    if notify:
        notify_failure(client, config, job, reason, failed_at)


def notify_failure(
    client: redis.Redis,
    config: Config,
    job: Delivery,
    reason: str,
    failed_at: float,
    count: int = 1,
) -> None:
    """Send a short notice of dead letters to the destination's ``on_failure``, at most once.

    ``job`` is the (first) dead letter; ``count`` how many failed with it,
    so a digest that failed for good makes one notice, not one per alert.
    """
    source = config.destinations.get(job.destination)
    target = config.destinations.get(source.on_failure) if source and source.on_failure else None
    if source is None or target is None or target.name == source.name:
        return
    # Only our own names go into the notice: feed text could ping or inject markup.
    watchlist = job.alert.watchlist
    title = f"newsalert: delivery to {source.name} failed"
    what = f"1 alert of watchlist {watchlist}" if count == 1 else f"{count} alerts"
    body = (
        f"{what} could not be delivered to {source.name}; kept in the dead-letter list "
        f"(first delivery id {job.id}).\nReason: {reason}\n"
        f"Re-send with: newsalert replay --destination {source.name}"
    )
    notice = keys.notice_id(job.id, failed_at)
    try:
        deliver_once(client, notice, target, title, body, "text")
    except DeliveryError as exc:
        # Never dead-letter a notice: that could loop between two failing destinations.
        log.error(
            "on_failure notice to %s not sent: %s",
            target.name,
            exc,
            extra={"destination": target.name},
        )
