"""The ``stats`` figures of changing rules safely: shadow and muted volume, mutes, the archive."""

from __future__ import annotations

import time
from typing import Any

import redis

from worker.core.archive import extent
from worker.core.metrics import read_last_day
from worker.deliver import mute as mutes


def _ranked(client: redis.Redis, name: str) -> list[dict[str, Any]]:
    day = read_last_day(client, name)
    return [
        {"watchlist": w, "rule": r, "matches": n}
        for (w, r), n in sorted(day.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def collect_safety(client: redis.Redis) -> dict[str, Any]:
    """Return shadow and muted rule volume over 24 h, active mutes, recent mute changes, archive."""
    ext = extent(client)
    return {
        "shadow_rules_24h": _ranked(client, "shadow_matches"),
        "muted_rules_24h": _ranked(client, "muted_matches"),
        "mutes": [m.to_dict() for m in mutes.active(client)],
        "mute_log": mutes.history(client, 10),
        "archive": {
            "items": ext.items,
            "bytes": ext.bytes,
            "oldest": ext.oldest,
            "newest": ext.newest,
        },
    }


def _clock(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))


def render_safety(data: dict[str, Any], now: float) -> list[str]:
    """Return the text lines of ``collect_safety``'s figures."""
    lines = ["", "shadow rules, last 24 h (matches; never delivered):"]
    lines += [
        f"  {r['watchlist'] + ' / ' + r['rule']:40} {r['matches']}"
        for r in data["shadow_rules_24h"][:10]
    ] or ["  none"]
    lines += ["", "muted matches, last 24 h (counted, not delivered):"]
    lines += [
        f"  {r['watchlist'] + ' / ' + r['rule']:40} {r['matches']}"
        for r in data["muted_rules_24h"][:10]
    ] or ["  none"]
    lines += ["", "active mutes:"]
    lines += [
        f"  {m['target']:40} until {_clock(m['until'])} ({max(0, m['until'] - now) / 60:.0f} min)"
        f"  by {m['by']}@{m['host']}" + (f": {m['reason']}" if m["reason"] else "")
        for m in data["mutes"]
    ] or ["  none"]
    a = data["archive"]
    since = f"since {_clock(a['oldest'])}" if a["oldest"] else "empty"
    lines += ["", f"archive: {a['items']} items, {a['bytes'] / 1024**2:.1f} MiB, {since}"]
    return lines
