"""Fault injection: a destination down, a poller killed holding leases, SIGTERM, bad config.

Each test ends with a lost/dup tally. ``pytest -m slow tests/test_faults*.py`` runs the
long versions (a 2-minute outage, lease expiry at ``keys.LEASE_TTL``, 1,000-item burst).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from faults import Rig, story_items, tally, wait_for

from worker.core import keys


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.close()


def stories(feed: str, n: int, start: int = 0) -> set[str]:
    return {f"{feed}-{i}" for i in range(start, start + n)}


@pytest.mark.parametrize(
    ("down", "intervals"),
    [
        pytest.param(12.0, "1,2,4,8,16", id="12s"),
        pytest.param(120.0, "5,15,30,60,60", id="2min", marks=pytest.mark.slow),
    ],
)
def test_destination_down_then_back(rig: Rig, down: float, intervals: str) -> None:
    n = 30
    rig.feeds.publish("w", story_items("w", n))
    rig.configure(["w"], backfill=n)
    rig.receiver.down_status = 503
    rig.spawn("run", "--workers", "2", NEWSALERT_RETRY_INTERVALS=intervals)
    wait_for(lambda: rig.receiver.refused >= n, 60, "every alert to be refused once")
    time.sleep(down)
    rig.receiver.down_status = 0
    back = time.monotonic()
    retry_window = sum(float(x) for x in intervals.split(","))
    wait_for(
        lambda: len(set(rig.receiver.stories())) >= n, retry_window + 30, "every alert", step=0.5
    )
    print(f"all {n} alerts arrived {time.monotonic() - back:.1f}s after the destination came back")
    time.sleep(2)
    t = tally(f"destination down {down:.0f}s", stories("w", n), rig.receiver)
    assert (t.lost, t.duplicated) == (0, 0), t
    assert rig.redis is not None and rig.redis.client().llen(keys.DEAD_LETTERS) == 0
    log = (rig.tmp / "run.log").read_text()
    assert "will retry" in log and "Traceback" not in log  # an outage is one line a try


@pytest.mark.parametrize(
    "recover",
    [
        pytest.param(False, id="short"),
        pytest.param(True, id="lease-expiry", marks=pytest.mark.slow),
    ],
)
def test_poller_killed_holding_leases(rig: Rig, recover: bool) -> None:
    feeds = [f"f{i}" for i in range(10)]
    for f in feeds:
        rig.feeds.publish(f, story_items(f, 2))
    rig.configure(feeds, backfill=0)
    rig.spawn("run", "--workers", "1")  # its poller is the one that survives
    doomed = rig.spawn("poll", log="poll2.log")
    client = rig.redis.client() if rig.redis else None
    assert client is not None
    wait_for(lambda: all(rig.feeds.hits.get(f) for f in feeds), 30, "first polls")
    time.sleep(2)
    rig.feeds.delay = 3.0  # every fetch now takes 3 s, so leases are held when the kill lands
    wait_for(lambda: len(list(client.scan_iter(keys.lease("*")))) >= 4, 20, "leases in hand")
    doomed.kill()
    killed_at = time.monotonic()
    time.sleep(rig.feeds.delay + 1.5)  # the survivor finishes its own fetches and frees its leases
    orphaned = {k.decode().rsplit(":", 1)[1] for k in client.scan_iter(keys.lease("*"))}
    ttls = [client.ttl(keys.lease(f)) for f in orphaned]
    print(f"{len(orphaned)} feeds leased by the killed poller, TTLs {ttls}")
    rig.feeds.delay = 0.0
    for f in feeds:
        rig.feeds.publish(f, story_items(f, 1, start=2))
    healthy = set(feeds) - orphaned
    wait_for(
        lambda: {f"{f}-2" for f in healthy} <= set(rig.receiver.stories()),
        30,
        "alerts from the feeds the killed poller did not hold",
    )
    assert all(0 < t <= keys.LEASE_TTL for t in ttls)
    expected = {f"{f}-2" for f in (feeds if recover else healthy)}
    if recover:
        took = wait_for(
            lambda: expected <= set(rig.receiver.stories()),
            keys.LEASE_TTL + 60,
            "alerts from the orphaned feeds",
            step=0.5,
        )
        print(
            f"orphaned feeds alerted {time.monotonic() - killed_at:.0f}s after the kill "
            f"(waited {took:.0f}s)"
        )
        assert time.monotonic() - killed_at <= keys.LEASE_TTL + 30
    time.sleep(2)
    t = tally(f"poller killed holding {len(orphaned)} leases", expected, rig.receiver)
    assert (t.lost, t.duplicated) == (0, 0), t


@pytest.mark.parametrize(
    "n", [pytest.param(300, id="300"), pytest.param(1000, id="1000", marks=pytest.mark.slow)]
)
def test_sigterm_whole_tree_during_burst(rig: Rig, n: int) -> None:
    rig.feeds.publish("w", story_items("w", n))
    rig.configure(["w"], backfill=n)
    run = rig.spawn("run", "--workers", "2")
    wait_for(lambda: len(rig.receiver.receipts) >= 20, 90, "the burst to start arriving")
    started = time.monotonic()
    run.kill_group(signal.SIGTERM)  # what a dyno manager does: every process in the group
    stopped = time.monotonic() - started
    at_stop = len(set(rig.receiver.stories()))
    print(f"stopped in {stopped:.1f}s with {at_stop}/{n} delivered")
    assert stopped < 30
    assert run.proc.returncode == 0
    assert at_stop < n, "the burst ended before SIGTERM: nothing was tested"
    # Graceful: every job in hand finished (none left "started" for another worker to
    # take over later) and RQ's scheduler locks were let go for the next run.
    client = rig.redis.client() if rig.redis else None
    assert client is not None
    assert [k for k in client.keys("rq:wip:*") if client.zcard(k)] == []
    assert client.keys("rq:scheduler-lock:*") == []
    rig.spawn("run", "--workers", "2", log="run2.log")
    wait_for(lambda: len(set(rig.receiver.stories())) >= n, 240, "the rest of the burst", step=0.5)
    time.sleep(2)
    t = tally(f"SIGTERM tree during {n}-item burst", stories("w", n), rig.receiver)
    assert (t.lost, t.duplicated) == (0, 0), t


#: Bad edits pushed one after another, each with the ``path:line:`` its rejection must name.
BAD_EDITS = {
    "watchlists/kursk.yaml": (
        "notify: [hook]\nrules:\n  - id: broken\n    query: '(Kursk'\n",
        "kursk.yaml:4:",
    ),
    "feeds.yaml": ("feeds:\n  - id: w\n    url: [not, a, url\n", "feeds.yaml:4:"),
    "destinations.yaml": ("hook: {url: 42, rate: lots}\n", "destinations.yaml:1:"),
}


def rejections(run_log: str) -> list[str]:
    return [line for line in run_log.splitlines() if "config rejected" in line]


def test_bad_config_pushed_while_running_loses_nothing(rig: Rig) -> None:
    n = 150
    rig.feeds.publish("w", story_items("w", n))
    root = rig.configure(["w"], backfill=n)
    run = rig.spawn("run", "--workers", "2")
    wait_for(lambda: len(rig.receiver.receipts) >= 10, 60, "the burst to start arriving")
    good = {name: (root / name).read_text() for name in BAD_EDITS}
    for name, (text, where) in BAD_EDITS.items():  # one bad edit after another, mid-burst
        (root / name).write_text(text)
        wait_for(
            lambda where=where: any(where in line for line in rejections(run.text())),
            20,
            f"{name} to be rejected with {where}",
        )
    # New stories while every file is bad: the last good config keeps them flowing.
    rig.feeds.publish("w", story_items("w", 20, start=n))
    wait_for(lambda: len(set(rig.receiver.stories())) >= n + 20, 120, "every alert", step=0.5)
    for name, text in good.items():
        (root / name).write_text(text)
    rig.feeds.publish("w", story_items("w", 5, start=n + 20))
    wait_for(lambda: len(set(rig.receiver.stories())) >= n + 25, 60, "alerts after the fix")
    time.sleep(2)
    t = tally("bad config pushed mid-burst", stories("w", n + 25), rig.receiver)
    assert (t.lost, t.duplicated) == (0, 0), t
    assert run.proc.poll() is None
    log = run.text()
    assert "config switched" not in log  # the live config was the last good one throughout
    assert "Traceback" not in log
