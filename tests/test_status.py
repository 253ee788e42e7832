"""What ``run`` shows while it runs: a live line on a terminal, summary log lines off one."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
from pathlib import Path

from configs import NK_WATCHLIST, write_config
from conftest import Route
from feedgen import rss
from procs import wait_for

from worker.core import keys
from worker.core.metrics import incr
from worker.service.queue import enqueue_match
from worker.service.status import figures, snapshot

HEADLINE = "North Korean troops captured in Kursk region"
CALM = [
    {"title": "Markets calm after rate decision", "link": "https://n.example.com/1"},
    {"title": "Weather fine for the weekend", "link": "https://n.example.com/2"},
]


def project(tmp_path: Path, feed_url: str) -> Path:
    feeds = (
        "allow_private_networks: true\n"
        "defaults: {interval: 1s, backfill: 0, fulltext: never}\n"
        f"feeds:\n  - {{id: local, url: '{feed_url}', tags: [world]}}\n"
    )
    return write_config(
        tmp_path / "config",
        feeds=feeds,
        destinations="terminal:\n  url: console://\n",
        watchlists={"nk": NK_WATCHLIST.format(notify="[terminal]")},
    )


def run_env(config: Path, redis_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ, REDIS_URL=redis_url, NEWSALERT_CONFIG=str(config), **extra)
    env.pop("PORT", None)
    return env


class Terminal:
    """A pseudo-terminal 200 columns wide, read in the background of each wait."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        self.raw = b""

    def read(self) -> str:
        while select.select([self.master], [], [], 0.05)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # the child side closed
                break
            if not chunk:
                break
            self.raw += chunk
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", self.raw.decode("utf-8", "replace"))

    def close(self) -> None:
        os.close(self.master)


def test_a_first_run_on_a_terminal_shows_a_live_line_and_says_what_it_does(
    tmp_path, http_server, redis_client, redis_url
):
    http_server.routes["/feed.xml"] = Route(body=rss(CALM))
    config = project(tmp_path, f"{http_server.base}/feed.xml")
    term = Terminal()
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "run"],
        env=run_env(config, redis_url, TERM="xterm"),
        stdin=term.slave,
        stdout=term.slave,
        stderr=term.slave,
        cwd=tmp_path,
    )
    os.close(term.slave)
    try:
        wait_for(lambda: "1 feeds polled, 0 failing" in term.read(), 60, "the status line")
        out = term.read()
        note = " ".join(out[out.index("First poll:") :].split())
        assert "the 2 stories the feeds already hold are only remembered" in note
        assert "run: newsalert try" in note and "try --config" not in note  # ./config
        assert "poller started" in out  # the children's logs are relayed, readable
        assert out.count("First poll:") == 1

        http_server.routes["/feed.xml"] = Route(body=rss([{"title": HEADLINE}, *CALM]))
        wait_for(lambda: "1 alerts sent" in term.read(), 60, "the alert in the status line")
        out = term.read()
        assert "1 new items · 1 matches · 1 alerts sent · queue" in out
        assert HEADLINE in out  # the console destination's alert, relayed above the line
        assert '"level"' not in out  # no JSON log lines on a terminal
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
        term.read()
        term.close()


def test_off_a_terminal_a_summary_line_every_interval(
    tmp_path, http_server, redis_client, redis_url
):
    http_server.routes["/feed.xml"] = Route(body=rss(CALM))
    config = project(tmp_path, f"{http_server.base}/feed.xml")
    log = tmp_path / "run.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "run"],
            env=run_env(config, redis_url, NEWSALERT_SUMMARY_EVERY="1"),
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=tmp_path,
        )

    def summaries() -> list[str]:
        lines = [json.loads(ln) for ln in log.read_text().splitlines() if ln.startswith("{")]
        return [ln["msg"] for ln in lines if ln["msg"].startswith("status")]

    try:
        wait_for(lambda: any("1 feeds polled" in s for s in summaries()), 60, "a summary")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
    assert summaries()[-1].startswith("status at exit: 1 feeds polled, 0 failing · 0 new items")
    assert "First poll:" not in log.read_text()  # the poller's own log line says it here


def test_figures_count_what_happened_since_the_start(redis_client):
    incr(redis_client, "fetches", "old", "ok", by=5)  # before this run: not counted
    since = snapshot(redis_client)
    incr(redis_client, "fetches", "a", "ok")
    incr(redis_client, "fetches", "a", "ok")
    incr(redis_client, "fetches", "b", "http")
    redis_client.hset(keys.feed_state("b"), "failures", 2)
    redis_client.hset(keys.feed_state("old"), "failures", 9)  # not polled by this run
    incr(redis_client, "items", "a", "new", by=3)
    incr(redis_client, "items", "a", "first_poll", by=40)
    incr(redis_client, "items", "a", "seen", by=7)
    incr(redis_client, "matches", "nk", "r1", by=2)
    incr(redis_client, "deliveries", "slack", "sent")
    incr(redis_client, "deliveries", "slack", "failed")
    enqueue_match(redis_client, ["i1"], "v1")
    got = figures(redis_client, since)
    assert (got.feeds_polled, got.feeds_failing, got.new_items, got.remembered) == (2, 1, 3, 40)
    assert (got.matches, got.alerts_sent, got.queued) == (2, 1, 1)
    assert got.line() == (
        "2 feeds polled, 1 failing · 3 new items · 2 matches · 1 alerts sent · queue 1"
    )
