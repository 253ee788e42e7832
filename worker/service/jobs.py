"""The RQ job functions: match a batch of items, deliver one alert, flush an outbox.

The three are safe to run twice (RQ re-runs lost jobs): matching only
enqueues deliveries under deterministic ids, and delivery goes through the
exactly-once ledger in ``worker.deliver.send``.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from worker.core import keys
from worker.core.archive import record_sent
from worker.core.metrics import incr, incr_hourly, observe_latency
from worker.deliver import outbox
from worker.deliver import send as deliver_
from worker.deliver.mute import muted_alerts
from worker.deliver.render import excerpt_article, render
from worker.deliver.send import default_format, deliver_once
from worker.errors import DeliveryError
from worker.model import Alert, Delivery, Item, Match
from worker.service.app import current_app
from worker.service.gate import route
from worker.service.queue import enqueue_delivery, enqueue_flush, recheck_delivery, retries_left
from worker.stories.storyid import story_id

log = logging.getLogger("newsalert.jobs")


def _alerts(item: Item, matches: list[Match], names: dict[str, str]) -> list[Alert]:
    """Fold the rules that fired per watchlist into one alert each."""
    by_watchlist: dict[str, list[Match]] = {}
    for m in matches:
        by_watchlist.setdefault(m.watchlist, []).append(m)
    alerts = []
    for wid, ms in by_watchlist.items():
        highlights = tuple(dict.fromkeys(h for m in ms for h in m.highlights))
        alerts.append(
            Alert(
                watchlist=wid,
                watchlist_name=names.get(wid, wid),
                rules=tuple(m.rule for m in ms),
                item=item,
                highlights=highlights,
            )
        )
    return alerts


def match_batch(item_ids: list[str], version: str) -> dict[str, int]:
    """Match stored items against the live rules and queue one delivery per destination."""
    app = current_app()
    client = app.redis
    if version != app.config().version:
        app.reload()
    config, engine = app.config(), app.engine()
    raw = client.mget([keys.item(i) for i in item_ids])
    names = {w.id: w.name for w in config.watchlists}
    counts = {"items": 0, "matches": 0, "queued": 0, "expired": 0}
    for item_id, body in zip(item_ids, raw, strict=False):
        if body is None:
            counts["expired"] += 1
            log.info(
                "item %s is gone: matched by an earlier run of this batch, or expired",
                item_id,
                extra={"job": "match"},
            )
            continue
        item = Item.from_dict(json.loads(body))
        counts["items"] += 1
        scope = config.watchlists_for(item.feed)
        matches = engine.match(item.texts(), watchlists=scope) if scope else []
        matches = route(client, config, matches, enqueue_delivery) if matches else []
        for alert in _alerts(item, matches, names):
            alert = excerpt_article(alert)  # the full article is not kept beyond its cache
            counts["matches"] += 1
            wl = config.watchlist(alert.watchlist)
            story = story_id(item)
            client.sadd(keys.story_feeds(story), item.feed)
            client.expire(keys.story_feeds(story), keys.STORY_FEEDS_TTL)
            for rule in alert.rules:
                incr(client, "matches", alert.watchlist, rule)
                incr_hourly(client, "matches", alert.watchlist, rule)
            for dest in wl.notify if wl else ():
                job = Delivery(
                    id=keys.delivery_id(alert.watchlist, story, dest),
                    destination=dest,
                    alert=alert,
                    urgent=bool(wl and wl.urgent),
                    story=story,
                )
                if enqueue_delivery(client, job.id, job.to_dict()):
                    counts["queued"] += 1
            log.info(
                "match: watchlist %s rule %s on %r (%s)",
                alert.watchlist,
                ", ".join(alert.rules),
                item.title[:80],
                item.feed,
                extra={"watchlist": alert.watchlist, "feed": item.feed},
            )
    # Matched: the bodies (article text included) are no longer needed; what an alert
    # shows travels in its delivery payload. A re-run of this job finds them gone.
    matched = [keys.item(i) for i, body in zip(item_ids, raw, strict=False) if body is not None]
    if matched:
        client.delete(*matched)
    return counts


def dead_letter(job: Delivery, reason: str) -> None:
    """Keep a delivery that failed for good, with its reason, for ``newsalert replay``."""
    app = current_app()
    deliver_.dead_letter(app.redis, app.config(), job, reason)


def deliver(payload: dict[str, Any]) -> str:
    """Send a ``Delivery.to_dict()`` (or an older payload) at most once, directly or via its outbox.

    A payload with ``notice`` (the volume guard's) is an ops notice, not an alert.
    """
    app = current_app()
    client = app.redis
    config = app.config()
    name = payload["destination"]
    dest = config.destinations.get(name)
    if "notice" in payload:
        return _notice(client, dest, payload)
    job = Delivery.from_dict(payload)
    if dest is None:
        dead_letter(job, f"destination {name} is no longer configured")
        return "dead"
    dropped = _dropped(client, config, job)
    if dropped:
        return dropped
    if outbox.uses_outbox(dest):
        if deliver_.was_sent(client, job.id):
            incr(client, "deliveries", name, "duplicate")
            return "duplicate"
        outbox.add(client, name, job, time.time())
        incr(client, "deliveries", name, "queued")
        outbox.flush(client, config, name, enqueue_flush=enqueue_flush)
        return "queued"
    alert = outbox.with_also_in(client, job.alert)
    fmt = dest.format or default_format(dest.url)
    title, body = render(alert, fmt, dest.template)
    try:
        sent = deliver_once(client, job.id, dest, title, body, fmt)
    except deliver_.InFlight:
        # Another worker holds the claim. If it dies mid-send the claim expires after
        # CLAIM_TTL: look again then, without spending this job's retries on waiting.
        ttl = client.ttl(keys.ledger(job.id))
        recheck_delivery(client, job.id, job.to_dict(), (ttl if ttl > 0 else 1) + 1)
        return "in flight"
    except DeliveryError as exc:
        deliver_.record_failure(client, name, str(exc), secrets=dest.secrets)
        if retries_left() > 0:
            log.warning("%s (will retry)", exc, extra={"destination": name})
            raise
        dead_letter(job, str(exc))
        return "dead"
    if sent:
        deliver_.record_ok(client, name)
        observe_latency(client, time.time() - (alert.item.seen_at or time.time()))
        with client.pipeline(transaction=False) as pipe:
            record_sent(pipe, [job.to_dict()], config.archive, time.time())
            pipe.execute()
    incr(client, "deliveries", name, "sent" if sent else "duplicate")
    log.info(
        "%s to %s: %s",
        "sent" if sent else "already sent",
        name,
        alert.item.title[:80],
        extra={"destination": name, "watchlist": alert.watchlist},
    )
    return "sent" if sent else "duplicate"


def _dropped(client: Any, config: Any, job: Delivery) -> str | None:
    """Return why an alert must not go (its watchlist was removed, or it is muted), else None."""
    name, watchlist = job.destination, job.alert.watchlist
    if config.watchlist(watchlist) is None:
        outcome, why = "cancelled", f"watchlist {watchlist} was removed: alert cancelled"
    elif muted_alerts(client, [job.alert.to_dict()])[0]:
        outcome, why = "muted", f"watchlist {watchlist} is muted: alert dropped"
    else:
        return None
    incr(client, "deliveries", name, outcome)
    log.info(
        "%s: %s",
        why,
        job.alert.item.title[:80],
        extra={"destination": name, "watchlist": watchlist},
    )
    return outcome


def _notice(client: Any, dest: Any, payload: dict[str, Any]) -> str:
    """Send an ops notice (volume guard) at most once: no outbox, mute or rate limit.

    A notice is never dead-lettered (that could loop between failing destinations).
    """
    notice = payload["notice"]
    if dest is None:
        log.error("notice to %s not sent: no such destination", payload["destination"])
        return "dead"
    try:
        sent = deliver_once(
            client, payload["delivery"], dest, notice["title"], notice["body"], "text"
        )
    except deliver_.InFlight:
        return "in flight"
    except DeliveryError as exc:
        deliver_.record_failure(client, dest.name, str(exc), secrets=dest.secrets)
        if retries_left() > 0:
            raise
        log.error("notice to %s not sent: %s", dest.name, exc, extra={"destination": dest.name})
        return "dead"
    return "sent" if sent else "duplicate"


def flush(destination: str) -> int:
    """Send what is due from one destination's outbox; return how many messages went out."""
    app = current_app()
    return outbox.flush(app.redis, app.config(), destination, enqueue_flush=enqueue_flush)
