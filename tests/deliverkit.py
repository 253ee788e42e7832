"""Helpers for delivery tests: an installed App on the test Redis, alert payloads, a job runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis
from configs import NK_WATCHLIST, feeds_yaml, write_config

import worker.service.app
from worker.core import keys
from worker.model import Alert, Highlight, Item
from worker.service.app import App, install
from worker.service.roles import drain

WATCHLIST = "nk"


def make_app(
    tmp_path: Path,
    redis_url: str,
    destinations: str,
    notify: str,
    urgent: bool = False,
    env: dict[str, str] | None = None,
) -> App:
    """Write a config with the given destinations, and install an App for it."""
    watchlist = NK_WATCHLIST.format(notify=notify) + ("urgent: true\n" if urgent else "")
    root = write_config(
        tmp_path / "config",
        feeds=feeds_yaml({"world": "http://127.0.0.1:9/feed.xml"}),
        destinations=destinations,
        watchlists={WATCHLIST: watchlist},
    )
    app = App(root, redis_url=redis_url, var_dir=tmp_path / "var")
    if env is not None:
        from worker.config import load_config

        app._config = load_config(root, env=env)
    install(app)
    return app


def uninstall() -> None:
    worker.service.app._current = None


def alert(n: int, title: str | None = None) -> Alert:
    """Return alert number ``n``: a distinct story whose title highlights "North Korean"."""
    title = title or f"North Korean soldier {n} captured in Kursk"
    item = Item(
        id=f"item-{n}",
        feed="world",
        title=title,
        link=f"https://news.example.com/story/{n}",
        summary=f"Story {n}: a North Korean unit near Kursk.",
        story=f"story-{n}",
        published=1_700_000_000.0,
    )
    start = title.find("North Korean")
    highlights = (
        (Highlight("title", "North Korean", "North Korean", start, start + 12),)
        if start >= 0
        else ()
    )
    return Alert(
        watchlist=WATCHLIST,
        watchlist_name="North Korean troops in Kursk",
        rules=("nk-in-kursk",),
        item=item,
        highlights=highlights,
    )


def payload(
    n: int, destination: str, urgent: bool = False, title: str | None = None
) -> dict[str, Any]:
    """Return the delivery job payload of alert ``n`` to ``destination``."""
    a = alert(n, title)
    return {
        "delivery": keys.delivery_id(WATCHLIST, a.item.story, destination),
        "destination": destination,
        "alert": a.to_dict(),
        "urgent": urgent,
    }


def run_jobs(app: App, wait: float = 30.0) -> int:
    """Run queued jobs (and due outbox flushes) in this process, as ``run --once`` does."""
    return drain(app, wait)


def make_scheduled_due(client: redis.Redis) -> int:
    """Make every job waiting in RQ's scheduled registries due now; return how many.

    What waiting out their delay would do, without the wait: the next ``run_jobs``
    runs them.
    """
    moved = 0
    for name in keys.QUEUES:
        registry = f"rq:scheduled:{name}"
        for job_id in client.zrange(registry, 0, -1):
            client.zadd(registry, {job_id: 0})
            moved += 1
    return moved


def texts(receiver: Any) -> list[str]:
    """Return title + message of every notification the HTTP receiver accepted."""
    return [
        f"{r['body'].get('title', '')}\n{r['body'].get('message', '')}" for r in receiver.received
    ]


def sent(client: redis.Redis, p: dict[str, Any]) -> bool:
    return client.get(keys.ledger(p["delivery"])) == b"sent"


def dead_letters(client: redis.Redis) -> list[bytes]:
    return list(client.lrange(keys.DEAD_LETTERS, 0, -1))
