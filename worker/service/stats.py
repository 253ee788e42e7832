"""Figures for ``newsalert stats``: queues, feeds in trouble, watchlists, destinations."""

from __future__ import annotations

import time
from typing import Any

from worker.core import keys
from worker.core.metrics import HEARTBEAT_MAX_AGE, heartbeats, read, read_last_day, summary
from worker.core.redact import redact_data
from worker.deliver.health import health as destination_health
from worker.poll import seen, websub
from worker.poll.cadence import Rate
from worker.poll.hosts import backed_off_hosts
from worker.poll.state import FeedState
from worker.service.app import App
from worker.service.queue import depths
from worker.service.safety import collect_safety, render_safety
from worker.stories.store import top_stories


def _cost(fetches: dict[tuple[str, ...], int], feed_id: str, hours: float) -> dict[str, Any]:
    """Return a feed's fetches per hour over the last day and the share answered 304."""
    mine = {labels[1]: n for labels, n in fetches.items() if labels[0] == feed_id}
    total = sum(mine.values())
    return {
        "fetches_per_hour": round(total / hours, 1),
        "not_modified_share": round(mine.get("not_modified", 0) / total, 3) if total else None,
    }


def feed_health(client: Any, feeds: Any, now: float | None = None) -> list[dict[str, Any]]:
    """Return each feed's health, schedule cost and push state from Redis, the most trouble first."""
    now = time.time() if now is None else now
    fetches = read_last_day(client, "fetches", now)
    pushes = websub.records(client)
    rows = []
    for feed in feeds:
        state = FeedState.load(client, feed.id)
        # Over less than a day the rate is extrapolated; an hour is the least we trust.
        days = max((now - state.primed_at) / 86400, 1 / 24) if state.primed_at else None
        interval = state.poll_interval or feed.interval or feed.max_interval
        per_hour = None if state.rate_since is None else Rate.from_state(state, now).per_hour(now)
        last_ok = state.last_ok
        rows.append(
            {
                "id": feed.id,
                "disabled": state.disabled or None,
                "failures": state.failures,
                "status": None if state.status is None else str(state.status),
                "last_ok": last_ok,
                "last_error": state.last_error or None,
                "last_reason": state.last_reason and state.last_reason.value,
                "last_error_at": state.last_error_at,
                "items_new": state.items_new,
                "items_per_day": round(state.items_new / days, 1) if days else None,
                "interval": interval,
                "auto": feed.interval is None,
                "items_per_hour": None if per_hour is None else round(per_hour, 2),
                **_cost(fetches, feed.id, min(days * 24, 24.0) if days else 1.0),
                "websub": websub.describe(pushes[feed.id]) if feed.id in pushes else None,
                "stale": last_ok is not None and now - last_ok > 3 * interval + 60,
                "overflow": state.overflow_warned is not None,
                "identity": state.identity,
                # Entries, not items: an item with a GUID and a link is remembered by both.
                "seen": client.strlen(keys.seen_packed(feed.id)) // seen.RECORD,
            }
        )
    rows.sort(
        key=lambda f: (
            f["disabled"] is None,
            -f["failures"],
            f["last_ok"] is not None,
            not f["stale"],
            not f["overflow"],
            f["id"],
        )
    )
    return rows


def _ago(now: float, t: float | None) -> str:
    if t is None:
        return "never"
    s = now - t
    return (
        f"{s:.0f}s ago" if s < 120 else f"{s / 60:.0f}m ago" if s < 7200 else f"{s / 3600:.1f}h ago"
    )


def render_feeds(feeds: list[dict[str, Any]], now: float) -> list[str]:
    """Return the feeds table as aligned text lines."""
    names = "feed state fails http last_ok every new/h fetch/h 304 push new/day seen last_error"
    head = tuple(h.replace("_", " ") for h in names.split())
    rows = []
    for f in feeds:
        state = (
            "disabled"
            if f["disabled"]
            else "failing"
            if f["failures"]
            else "never ok"
            if f["last_ok"] is None
            else "stale"
            if f["stale"]
            else "overflow"
            if f["overflow"]
            else "ok"
        )
        error = f"{f['last_reason']}: {f['last_error']}" if f["failures"] or f["disabled"] else ""
        rate = "-" if f["items_per_day"] is None else f"{f['items_per_day']:g}"
        share = f["not_modified_share"]
        push = f["websub"] or {}
        pushed = push.get("state") or "-"
        if push.get("last_push"):
            pushed += " " + _ago(now, push["last_push"])
        rows.append(
            (
                f["id"],
                state,
                str(f["failures"]),
                f["status"] or "-",
                _ago(now, f["last_ok"]),
                f"{f['interval']:.0f}s" + (" auto" if f["auto"] else ""),
                "-" if f["items_per_hour"] is None else f"{f['items_per_hour']:.3g}",
                f"{f['fetches_per_hour']:g}",
                "-" if share is None else f"{share:.0%}",
                pushed,
                rate,
                str(f["seen"]),
                error[:80],
            )
        )
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head) - 1)]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1]
        for r in (head, *rows)
    ]


def collect(app: App) -> dict[str, Any]:
    """Return every figure as a JSON-able dict."""
    client = app.redis
    config = app.config()
    feeds = feed_health(client, config.feeds)
    deliveries = read(client, "deliveries")
    digests = summary(read(client, "digests"), 0)

    def count(dest: str, outcome: str) -> int:
        return deliveries.get((dest, outcome), 0)

    queues = depths(client)
    day = read_last_day(client, "matches")
    ranked = sorted(day.items(), key=lambda kv: (-kv[1], kv[0]))
    rules = [{"watchlist": w, "rule": r, "matches": n} for (w, r), n in ranked]
    figures = {
        "config_version": config.version,
        "live_version": (client.get(keys.CONFIG_VERSION) or b"").decode() or None,
        "config_reload_errors": sum(read(client, "config_reload_errors").values()),
        "processes": {name: round(age, 1) for name, age in sorted(heartbeats(client).items())},
        "queues": queues,
        "feeds": feeds,
        "watchlists_24h": summary(day, 0),
        "rules_24h": rules,
        "destinations": {
            name: {
                "sent": count(name, "sent"),
                "failed_attempts": count(name, "failed"),
                "duplicates_suppressed": count(name, "duplicate"),
                "dead_letters": count(name, "dead"),
                "digests": digests.get(name, 0),
                **destination_health(client, name),
            }
            for name in config.destinations
        },
        "dead_letters": client.llen(keys.DEAD_LETTERS),
        "article_hosts_backed_off": backed_off_hosts(client),
        "stories": {
            "per_watchlist": {
                w: {"opened": n.get("opened", 0), "folded": n.get("folded", 0)}
                for w, n in _by_first(read(client, "stories")).items()
            },
            "top_24h": top_stories(client, time.time() - 86400),
        },
        **collect_safety(client),
    }
    # Errors were masked when written; mask again in case an older version wrote them.
    return dict(redact_data(figures, config.secrets()))


def _by_first(counts: dict[tuple[str, ...], int]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for labels, n in counts.items():
        out.setdefault(labels[0], {})[labels[-1]] = n
    return out


def render_stats(data: dict[str, Any]) -> str:
    """Return a readable summary of ``collect``'s figures."""
    now = time.time()
    lines = [
        f"config {data['config_version']} (live in Redis: {data['live_version']}; "
        f"{data['config_reload_errors']} rejected edits)",
        "",
        "pollers and workers (last heartbeat):",
    ]
    lines += [
        f"  {name:40} {age:>6.0f}s ago{'  ✗ silent' if age > HEARTBEAT_MAX_AGE else ''}"
        for name, age in data["processes"].items()
    ] or ["  none"]
    lines += ["", "queues:"]
    for name, q in data["queues"].items():
        lines.append(
            f"  {name:20} queued {q['queued']:>5}  running {q['running']:>3}  "
            f"retrying {q['retrying']:>4}  failed {q['failed']:>4}"
        )
    lines += ["", "feeds (most trouble first):", *render_feeds(data["feeds"], now)]
    lines += ["", "top watchlists, last 24 h (matches):"]
    lines += [
        f"  {w:28} {n}" for w, n in sorted(data["watchlists_24h"].items(), key=lambda x: -x[1])[:10]
    ] or ["  none"]
    lines += ["", "top rules, last 24 h (matches):"]
    lines += [
        f"  {r['watchlist'] + ' / ' + r['rule']:40} {r['matches']}" for r in data["rules_24h"][:10]
    ] or ["  none"]
    lines += render_safety(data, now)
    lines += ["", "destinations:"]
    for name, d in data["destinations"].items():
        lines.append(
            f"  {name:28} sent {d['sent']:>5}  duplicates suppressed "
            f"{d['duplicates_suppressed']:>4}  dead letters {d['dead_letters']:>3}"
            f"  waiting {d['waiting']:>4}"
        )
        if d["failing"]:
            lines.append(
                f"    ✗ failing: {d['consecutive_failures']} failures in a row: {d['last_error']}"
            )
    lines += ["", "article hosts backed off (their feeds are matched on feed text):"]
    lines += [
        f"  {h['host']:40} for {max(0, h['until'] - now) / 60:>4.0f} min  {h['reason']}"
        for h in data.get("article_hosts_backed_off", ())
    ] or ["  none"]
    lines += ["", "stories per watchlist (opened = alerted, folded = copies of an open story):"]
    lines += [
        f"  {w:28} opened {n['opened']:>5}  folded {n['folded']:>5}"
        for w, n in sorted(data["stories"]["per_watchlist"].items())
    ] or ["  none"]
    lines += ["", "stories of the last 24 h with the most outlets:"]
    lines += [
        f"  {len(s['outlets']):>3} outlets  {s['title'][:70]}  ({', '.join(s['outlets'][:5])})"
        for s in data["stories"]["top_24h"]
    ] or ["  none"]
    lines.append(f"\ndead letters waiting: {data['dead_letters']}")
    return "\n".join(lines)
