"""Stories end to end: real Redis, RQ jobs, apprise and a loopback receiver.

Feeds go through the real ``newsalert run --once`` where the poller matters;
the outbox and crash cases run the real match and delivery jobs in this
process (as ``run --once`` does) so they can hold an alert in quiet hours or
kill a process at a chosen point.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from configs import feeds_yaml, write_config
from deliverkit import run_jobs, texts, uninstall
from feedgen import rss
from test_cli import newsalert as dry  # no REDIS_URL, a var dir that must stay empty
from test_pipeline import http_server_route, newsalert

from worker.core import keys
from worker.deliver import outbox
from worker.model import Item
from worker.service.app import App, install
from worker.service.jobs import match_batch
from worker.service.queue import enqueue_flush

LEAD = (
    "A powerful winter storm swept across Texas on Thursday, knocking out power to more than "
    "300,000 homes and businesses and forcing schools to close."
)
WIRE_A = {"title": "Winter storm knocks out power to 300,000 in Texas", "description": LEAD,
          "link": "https://apnews.example.com/storm-texas"}  # fmt: skip
WIRE_B = {"title": "Hundreds of thousands without power as storm slams Texas", "description": LEAD,
          "link": "https://cbs.example.com/news/texas-storm-outages?utm_source=rss"}  # fmt: skip
STORM_WATCHLIST = "notify: [hook]\nrules:\n  - id: storm\n    all: [storm, Texas]\n"
GM_WATCHLIST = "notify: [hook]\nrules:\n  - id: gm\n    all: [GM]\n"


@pytest.fixture(autouse=True)
def _cleanup(monkeypatch):
    monkeypatch.setenv("NEWSALERT_RETRY_INTERVALS", "0,0")
    yield
    uninstall()


def _two_feeds(tmp_path, http_server, receiver, a, b, watchlist, stories: str = "") -> Path:
    http_server.routes["/a.xml"] = http_server_route(rss(a))
    http_server.routes["/b.xml"] = http_server_route(rss(b))
    return write_config(
        tmp_path / "config",
        feeds=feeds_yaml(
            {"wire-a": f"{http_server.base}/a.xml", "wire-b": f"{http_server.base}/b.xml"}
        )
        + stories,
        destinations=f"hook:\n  url: json://127.0.0.1:{receiver.port}/alerts\n",
        watchlists={"w": watchlist},
    )


def _run(config: Path, redis_url: str) -> None:
    result = newsalert(config, redis_url, "run", "--once", "--wait", "30")
    assert result.returncode == 0, result.stderr


def test_one_wire_story_in_two_feeds_alerts_once(
    tmp_path, http_server, receiver, redis_client, redis_url
):
    config = _two_feeds(tmp_path, http_server, receiver, [WIRE_A], [WIRE_B], STORM_WATCHLIST)
    _run(config, redis_url)
    assert len(receiver.received) == 1, texts(receiver)
    assert redis_client.hget(keys.counter("stories"), "w\x1ffolded") == b"1"


def test_two_stories_about_one_company_alert_twice(
    tmp_path, http_server, receiver, redis_client, redis_url
):
    recall = {"title": "GM recalls 1.6 million cars over faulty brake sensors",
              "link": "https://a.example.com/gm-recall"}  # fmt: skip
    shares = {"title": "GM shares fall on earnings miss as tariffs bite",
              "link": "https://b.example.com/gm-shares"}  # fmt: skip
    config = _two_feeds(tmp_path, http_server, receiver, [recall], [shares], GM_WATCHLIST)
    _run(config, redis_url)
    assert len(receiver.received) == 2, texts(receiver)


@pytest.mark.parametrize(
    ("group", "same_link", "alerts"),
    [("link", False, 2), ("link", True, 1), ("off", True, 2), ("similar", True, 1)],
)
def test_group_settings(
    tmp_path, http_server, receiver, redis_client, redis_url, group, same_link, alerts
):
    b = dict(WIRE_B, link=WIRE_A["link"] + "?utm_medium=x") if same_link else WIRE_B
    b["guid"] = "guid-b"
    config = _two_feeds(
        tmp_path, http_server, receiver, [WIRE_A], [b], STORM_WATCHLIST,
        f"stories: {{group: {group}, window: 2h}}\n",
    )  # fmt: skip
    _run(config, redis_url)
    assert len(receiver.received) == alerts, texts(receiver)


# -- in process: outbox, crash ---------------------------------------------------


def _app(tmp_path: Path, redis_url: str, destination: str) -> App:
    root = write_config(
        tmp_path / "config",
        feeds=feeds_yaml({"wire-a": "http://127.0.0.1:9/a", "wire-b": "http://127.0.0.1:9/b"}),
        destinations=destination,
        watchlists={"w": STORM_WATCHLIST},
    )
    app = App(root, redis_url=redis_url, var_dir=tmp_path / "var")
    install(app)
    return app


def _store(app: App, n: int, feed: str, wire: dict[str, str]) -> str:
    from worker.poll.identity import story_key

    item = Item(id=f"item-{n}", feed=feed, title=wire["title"], summary=wire["description"],
                link=wire["link"], story=story_key(wire["link"], f"item-{n}"))  # fmt: skip
    app.redis.set(keys.item(item.id), json.dumps(item.to_dict()), ex=keys.ITEM_TTL)
    return item.id


def test_also_in_names_the_outlet_that_joined_while_the_alert_waited(
    tmp_path, receiver, redis_client, redis_url
):
    hour = time.gmtime().tm_hour
    quiet = f"{(hour - 1) % 24:02d}:00-{(hour + 2) % 24:02d}:00"  # now is inside it
    app = _app(tmp_path, redis_url,
               f'hook:\n  url: json://127.0.0.1:{receiver.port}/alerts\n  quiet_hours: "{quiet}"\n')  # fmt: skip
    version = app.config().version
    match_batch([_store(app, 1, "wire-a", WIRE_A)], version)
    run_jobs(app, wait=10)
    assert receiver.received == [] and redis_client.zcard(keys.outbox("hook")) == 1
    match_batch([_store(app, 2, "wire-b", WIRE_B)], version)
    run_jobs(app, wait=10)
    assert redis_client.zcard(keys.outbox("hook")) == 1  # the copy added nothing to send
    later = time.time() + 4 * 3600
    outbox.flush(redis_client, app.config(), "hook", lambda: later, enqueue_flush=enqueue_flush)
    assert len(receiver.received) == 1, texts(receiver)
    assert "also in: wire-b" in texts(receiver)[0]
    assert WIRE_A["title"] in texts(receiver)[0]


# -- try / explain / stats -------------------------------------------------------


def _dry_config(tmp_path: Path) -> tuple[Path, list[str]]:
    root = write_config(
        tmp_path / "config",
        feeds="feeds: []\n",
        destinations="hook:\n  url: json://127.0.0.1:9/alerts\n",
        watchlists={"w": STORM_WATCHLIST, "gm": GM_WATCHLIST},
    )
    gm = {
        "title": "GM recalls 1.6 million cars over faulty brake sensors",
        "link": "https://gm.example.com/1",
    }
    files = []
    for name, items in (("ap", [WIRE_A]), ("cbs", [WIRE_B, gm])):
        (tmp_path / f"{name}.xml").write_bytes(rss(items))
        files.append(str(tmp_path / f"{name}.xml"))
    return root, files


def test_try_shows_the_story_of_each_hit_and_groups_by_story(tmp_path):
    root, files = _dry_config(tmp_path)
    result = dry(root, "try", "--json", *files)
    assert result.returncode == 0, result.stderr
    hits = [json.loads(line) for line in result.stdout.splitlines()]
    stories = {(h["watchlist"], h["item"]["feed"]): h["story"] for h in hits}
    assert stories[("w", "ap")] == stories[("w", "cbs")] != stories[("gm", "cbs")]
    assert not (tmp_path / "var").exists()
    text = dry(root, "try", *files)
    assert text.stdout.count("◆ story") == 1 and "3 hit(s) in 2 stories" in text.stderr


def test_explain_names_the_story_an_item_folds_into_and_why(tmp_path):
    root, files = _dry_config(tmp_path)
    result = dry(root, "explain", *files, "--watchlist", "w")
    assert result.returncode == 0, result.stderr
    assert "opens a new story" in result.stdout
    folded = next(line for line in result.stdout.splitlines() if "folds into" in line)
    assert WIRE_A["title"] in folded and "similarity" in folded and "texas" in folded


def test_stats_lists_the_story_with_its_outlets(
    tmp_path, http_server, receiver, redis_client, redis_url
):
    config = _two_feeds(tmp_path, http_server, receiver, [WIRE_A], [WIRE_B], STORM_WATCHLIST)
    _run(config, redis_url)
    result = newsalert(config, redis_url, "stats", "--json")
    figures = json.loads(result.stdout)["stories"]
    assert figures["per_watchlist"]["w"] == {"opened": 1, "folded": 1}
    assert [s["outlets"] for s in figures["top_24h"]] == [["wire-a", "wire-b"]]
    assert "2 outlets" in newsalert(config, redis_url, "stats").stdout
