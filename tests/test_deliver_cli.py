"""The delivery commands as real processes: ``test-destination``, and ``run --once`` through an outbox."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from configs import NK_WATCHLIST, feeds_yaml, write_config
from feedgen import UNRELATED, rss

from worker.core import keys


def newsalert(
    config: Path,
    redis_url: str,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    full = dict(
        os.environ,
        REDIS_URL=redis_url,
        NEWSALERT_CONFIG=str(config),
        NEWSALERT_LOG_LEVEL="INFO",
        **(env or {}),
    )
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=config.parent,
        check=False,
    )


SECRET = "hook-T0KEN-8d1e77"


def _config(
    tmp_path: Path, destinations: str, feed_url: str = "http://127.0.0.1:9/feed.xml"
) -> Path:
    return write_config(
        tmp_path / "config",
        feeds=feeds_yaml({"world": feed_url}),
        destinations=destinations,
        watchlists={"nk": NK_WATCHLIST.format(notify="[hook]")},
    )


@pytest.mark.parametrize(("status", "code", "says"), [
    (200, 0, "accepted the test message"),
    (404, 1, "404"),
    (500, 1, "500"),
])  # fmt: skip
def test_test_destination_reports_the_real_outcome(
    tmp_path, receiver, redis_url, status, code, says
):
    config = _config(
        tmp_path, f"hook:\n  url: json://127.0.0.1:{receiver.port}/h/${{HOOK_TOKEN}}\n"
    )
    receiver.fail_next = [status] if status != 200 else []
    result = newsalert(config, redis_url, "test-destination", "hook", env={"HOOK_TOKEN": SECRET})
    assert result.returncode == code, result.stderr
    assert says in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert len(receiver.received) == (1 if status == 200 else 0)


def test_test_destination_unreachable_is_a_failure(tmp_path, redis_url):
    config = _config(tmp_path, "hook:\n  url: json://127.0.0.1:9/h\n")
    result = newsalert(config, redis_url, "test-destination", "hook")
    assert result.returncode == 1
    assert result.stderr.startswith("newsalert: destination hook:"), result.stderr
    assert "Traceback" not in result.stderr


def test_run_once_collapses_a_burst_through_the_outbox(
    tmp_path, http_server, receiver, redis_client, redis_url
):
    from conftest import Route

    # backfill: 10 in feeds_yaml: 7 matching + 3 unrelated items all go through matching.
    titles = [f"North Korean troops seen near Kursk, report {n}" for n in range(7)]
    items = [
        {"title": t, "link": f"https://news.example.com/nk/{n}", "description": "Army units."}
        for n, t in enumerate(titles)
    ] + UNRELATED
    http_server.routes["/feed.xml"] = Route(
        body=rss(items), headers={"Content-Type": "application/rss+xml"}
    )
    config = _config(
        tmp_path,
        f"hook:\n  url: json://127.0.0.1:{receiver.port}/alerts\n  rate: 1/s\n  digest_after: 2\n",
        f"{http_server.base}/feed.xml",
    )
    result = newsalert(config, redis_url, "run", "--once", "--wait", "30")
    assert result.returncode == 0, result.stderr
    got = [f"{r['body'].get('title')}\n{r['body'].get('message')}" for r in receiver.received]
    assert 1 <= len(got) <= 3, got
    everything = "\n".join(got)
    assert all(t in everything for t in titles), everything
    assert redis_client.zcard(keys.outbox("hook")) == 0
    again = newsalert(config, redis_url, "run", "--once", "--wait", "10")
    assert again.returncode == 0, again.stderr
    assert len(receiver.received) == len(got), "a second run sends nothing new"
