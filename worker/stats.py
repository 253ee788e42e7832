"""Figures for ``newsalert stats``: queues, feeds in trouble, watchlists, destinations."""

from __future__ import annotations

import time
from typing import Any

from worker import keys
from worker.app import App
from worker.deliver import health as destination_health
from worker.queue import depths


def _decode(mapping: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode(errors="replace") for k, v in mapping.items()}


def collect(app: App) -> dict[str, Any]:
    """Return every figure as a JSON-able dict."""
    client = app.redis
    config = app.config()
    feeds = []
    for feed in config.feeds:
        state = _decode(client.hgetall(keys.feed_state(feed.id)))
        feeds.append({
            "id": feed.id,
            "failures": int(state.get("failures", 0)),
            "status": state.get("status"),
            "last_ok": float(state["last_ok"]) if "last_ok" in state else None,
            "last_error": state.get("last_error"),
            "disabled": state.get("disabled"),
            "items_new": int(state.get("items_new", 0)),
            "seen": client.zcard(keys.seen(feed.id)),
        })
    feeds.sort(key=lambda f: (-f["failures"], f["last_ok"] is not None, f["id"]))
    counters = {name: {k: int(v) for k, v in _decode(client.hgetall(keys.counter(name))).items()}
                for name in ("watchlist", "sent", "duplicate", "dead", "digest")}
    queues = depths(client)
    return {
        "config_version": config.version,
        "live_version": (client.get(keys.CONFIG_VERSION) or b"").decode() or None,
        "queues": queues,
        "feeds": feeds,
        "watchlists": counters["watchlist"],
        "destinations": {name: {"sent": counters["sent"].get(name, 0),
                                "duplicates_suppressed": counters["duplicate"].get(name, 0),
                                "dead_letters": counters["dead"].get(name, 0),
                                "digests": counters["digest"].get(name, 0),
                                **destination_health(client, name)}
                         for name in config.destinations},
        "dead_letters": client.llen(keys.DEAD_LETTERS),
    }


def render_stats(data: dict[str, Any]) -> str:
    """Return a readable summary of ``collect``'s figures."""
    now = time.time()
    lines = [f"config {data['config_version']} (live in Redis: {data['live_version']})", "", "queues:"]
    for name, q in data["queues"].items():
        lines.append(f"  {name:20} queued {q['queued']:>5}  running {q['running']:>3}  "
                     f"retrying {q['retrying']:>4}  failed {q['failed']:>4}")
    lines += ["", "feeds (most trouble first):"]
    for f in data["feeds"]:
        ago = f"{now - f['last_ok']:.0f}s ago" if f["last_ok"] else "never"
        trouble = f"  ✗ {f['failures']} failures: {f['last_error']}" if f["failures"] else ""
        lines.append(f"  {f['id']:28} ok {ago:>12}  new {f['items_new']:>5}  seen {f['seen']:>5}{trouble}")
    lines += ["", "watchlists (alerts):"]
    lines += [f"  {w:28} {n}" for w, n in sorted(data["watchlists"].items(), key=lambda x: -x[1])] or ["  none yet"]
    lines += ["", "destinations:"]
    for name, d in data["destinations"].items():
        lines.append(f"  {name:28} sent {d['sent']:>5}  duplicates suppressed "
                     f"{d['duplicates_suppressed']:>4}  dead letters {d['dead_letters']:>3}"
                     f"  waiting {d['waiting']:>4}")
        if d["failing"]:
            lines.append(f"    ✗ failing: {d['consecutive_failures']} failures in a row: {d['last_error']}")
    lines.append(f"\ndead letters waiting: {data['dead_letters']}")
    return "\n".join(lines)
