"""The RQ job functions: match a batch of items, deliver one alert, flush an outbox.

The three are safe to run twice (RQ re-runs lost jobs): matching only
enqueues deliveries under deterministic ids, and delivery goes through the
exactly-once ledger in ``worker.deliver.send``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from typing import Any

from worker import stories
from worker.config import Config, StorySettings
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


def _read_items(client: Any, item_ids: list[str]) -> tuple[list[Item], list[str]]:
    """Return the stored items of a batch, and the keys of those still there."""
    items, present = [], []
    for item_id, body in zip(item_ids, client.mget([keys.item(i) for i in item_ids]), strict=False):
        if body is None:
            log.info(
                "item %s is gone: matched by an earlier run of this batch, or expired",
                item_id,
                extra={"job": "match"},
            )
            continue
        items.append(Item.from_dict(json.loads(body)))
        present.append(keys.item(item_id))
    return items, present


def _queue_alert(
    client: Any, config: Config, alert: Alert, story: str, opened: bool, grouped: bool
) -> int:
    """Queue one delivery per destination of the alert's story; return how many were queued."""
    wl = config.watchlist(alert.watchlist)
    if not grouped:  # grouped stories record their outlets themselves (worker.stories.store)
        client.sadd(keys.story_feeds(story), alert.item.feed)
        client.expire(keys.story_feeds(story), keys.STORY_FEEDS_TTL)
    for rule in alert.rules:
        incr(client, "matches", alert.watchlist, rule)
        incr_hourly(client, "matches", alert.watchlist, rule)
    incr(client, "stories", alert.watchlist, "opened" if opened else "folded")
    queued = 0
    for dest in wl.notify if wl else ():
        delivery = keys.delivery_id(alert.watchlist, story, dest)
        if not opened and deliver_.was_sent(client, delivery):
            continue  # a copy of a story already alerted: recorded on the story, not sent
        # A copy of a story whose alert is not sent yet queues it again (the ledger and
        # the job id keep it to one): the story alerts even if its opener's job was lost.
        job = Delivery(delivery, dest, alert, urgent=bool(wl and wl.urgent), story=story)
        queued += bool(enqueue_delivery(client, delivery, job.to_dict()))
    log.info(
        "match: watchlist %s rule %s on %r (%s), story %s",
        alert.watchlist,
        ", ".join(alert.rules),
        alert.item.title[:80],
        alert.item.feed,
        story,
        extra={"watchlist": alert.watchlist, "feed": alert.item.feed},
    )
    return queued


def match_batch(item_ids: list[str], version: str) -> dict[str, int]:
    """Match stored items against the live rules and queue one delivery per story and destination."""
    app = current_app()
    client = app.redis
    if version != app.config().version:
        app.reload()
    config, engine = app.config(), app.engine()
    names = {w.id: w.name for w in config.watchlists}
    items, present = _read_items(client, item_ids)
    counts = {"items": len(items), "matches": 0, "queued": 0, "expired": len(item_ids) - len(items)}
    hits: list[Alert] = []
    for item in items:
        scope = config.watchlists_for(item.feed)
        matches = engine.match(item.texts(), watchlists=scope) if scope else []
        matches = route(client, config, matches, enqueue_delivery) if matches else []
        # The full article is not kept beyond its cache: alerts carry excerpts.
        hits.extend(excerpt_article(a) for a in _alerts(item, matches, names))
    similar = {w.id for w in config.watchlists if w.stories.group == "similar"}
    grouped = stories.group(
        client, config, list({a.item.id: a.item for a in hits if a.watchlist in similar}.values())
    )
    for alert in hits:
        wl = config.watchlist(alert.watchlist)
        found = grouped.get(alert.item.id)
        story = stories.story_id(wl.stories if wl else StorySettings(), alert.item, found)
        opened = found is None or found.opened or story != found.story
        alert = replace(alert, item=replace(alert.item, story=story))
        counts["matches"] += 1
        grouped_here = found is not None and story == found.story
        counts["queued"] += _queue_alert(client, config, alert, story, opened, grouped_here)
    # Matched: the bodies (article text included) are no longer needed; what an alert
    # shows travels in its delivery payload. A re-run of this job finds them gone.
    if present:
        client.delete(*present)
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
