"""``newsalert run`` as a service: metrics and health over HTTP, hot reload, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from configs import feeds_yaml, write_config
from conftest import Route
from feedgen import rss
from procs import wait_for
from serving import get

WATCHLIST = """\
notify: [hook]
rules:
  - id: {rule}
    all: [{term}]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """A running ``newsalert run`` with its log in a file."""

    def __init__(self, config: Path, redis_url: str, port: int) -> None:
        self.log = config.parent / "run.log"
        env = dict(os.environ, REDIS_URL=redis_url, PORT=str(port), NEWSALERT_CONFIG=str(config))
        with self.log.open("w") as stderr:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "worker.cli", "run", "--workers", "1"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                cwd=config.parent,
            )
        self.port = port
        self.redis_url = redis_url

    def text(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=40)


@pytest.fixture
def service_env(tmp_path, http_server, receiver, redis_client, redis_url) -> Iterator[dict]:
    items = [{"title": "Markets calm after rate decision", "link": "https://n.example.com/1"}]
    http_server.routes["/feed.xml"] = Route(body=rss(items))
    feeds = feeds_yaml({"world": f"{http_server.base}/feed.xml"}, backfill=0).replace(
        "interval: 1m", "interval: 1s"
    )
    config = write_config(
        tmp_path / "config",
        feeds=feeds,
        destinations=f"hook:\n  url: json://127.0.0.1:{receiver.port}/alerts\n",
        watchlists={"kursk": WATCHLIST.format(rule="kursk-rule", term="Kursk")},
    )
    service = Service(config, redis_url, free_port())
    env = {"config": config, "service": service, "server": http_server, "items": items}
    try:
        yield env
    finally:
        service.stop()


def publish(env: dict, title: str) -> None:
    env["items"].insert(
        0, {"title": title, "link": f"https://n.example.com/{len(env['items']) + 1}"}
    )
    env["server"].routes["/feed.xml"] = Route(body=rss(env["items"]))


def test_metrics_health_and_graceful_stop(service_env, receiver):
    service: Service = service_env["service"]
    base = f"http://127.0.0.1:{service.port}"
    wait_for(lambda: get(base + "/healthz")[0] == 200, 30, "/healthz to answer 200")
    wait_for(lambda: "existing items marked seen" in service.text(), 20, "the first poll")
    publish(service_env, "Fighting continues near Kursk")
    wait_for(lambda: len(receiver.received) == 1, 30, "the alert")
    status, body = get(base + "/metrics")
    assert status == 200
    assert 'newsalert_matches_total{rule="kursk-rule",watchlist="kursk"} 1.0' in body
    assert 'newsalert_fetches_total{feed="world",outcome="ok"}' in body
    assert 'newsalert_items_total{feed="world",state="new"} 1.0' in body
    assert "newsalert_config_info{version=" in body
    assert 'newsalert_deliveries_total{destination="hook",outcome="sent"} 1.0' in body
    assert "newsalert_alert_latency_seconds_count 1.0" in body
    assert json.loads(get(base + "/healthz")[1]) == {"ok": True, "reason": "ok"}
    env = dict(os.environ, REDIS_URL=service.redis_url, NEWSALERT_CONFIG=str(service_env["config"]))
    stats = subprocess.run(
        [sys.executable, "-m", "worker.cli", "stats", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert stats.returncode == 0, stats.stderr
    figures = json.loads(stats.stdout)
    assert figures["rules_24h"] == [{"watchlist": "kursk", "rule": "kursk-rule", "matches": 1}]
    assert {name.split(":")[0] for name in figures["processes"]} == {"poller", "worker"}
    assert figures["destinations"]["hook"]["sent"] == 1
    assert figures["feeds"][0]["id"] == "world" and figures["feeds"][0]["failures"] == 0
    started = time.monotonic()
    assert service.stop() == 0
    assert time.monotonic() - started < 30
    assert len(receiver.received) == 1


def test_reload_keeps_last_good_config_and_applies_valid_edits(service_env, receiver):
    service: Service = service_env["service"]
    config: Path = service_env["config"]
    wait_for(lambda: "existing items marked seen" in service.text(), 30, "the first poll")
    path = config / "watchlists" / "kursk.yaml"

    # An invalid edit is rejected with file:line and the old rules stay live.
    path.write_text("notify: [hook]\nrules:\n  - id: broken\n    query: '(Kursk'\n")
    wait_for(lambda: "config rejected" in service.text(), 15, "the rejection")
    rejected = [
        json.loads(ln)["msg"] for ln in service.text().splitlines() if "config rejected" in ln
    ]
    assert any("kursk.yaml:4:" in msg for msg in rejected), rejected
    publish(service_env, "Shelling reported in Kursk")
    wait_for(lambda: len(receiver.received) == 1, 30, "an alert under the old rules")

    # A valid edit takes effect without a restart.
    path.write_text(WATCHLIST.format(rule="pyongyang-rule", term="Pyongyang"))
    wait_for(lambda: "config switched" in service.text(), 15, "the switch")
    publish(service_env, "Pyongyang sends more troops")
    wait_for(lambda: len(receiver.received) == 2, 30, "an alert under the new rules")
    assert "pyongyang-rule" in json.dumps(receiver.received[-1]["body"])

    # Removing the watchlist stops its alerts. The poller and the worker each switched
    # once so far; the poller notices by itself, the worker before its next job.
    switches = service.text().count("config switched")
    path.unlink()
    wait_for(lambda: service.text().count("config switched") > switches, 15, "the second switch")
    publish(service_env, "Pyongyang and Kursk in the news again")
    time.sleep(5)
    assert len(receiver.received) == 2


def test_sigterm_during_a_burst_loses_and_repeats_nothing(
    tmp_path, http_server, receiver, redis_client, redis_url
):
    n = 300
    items = [
        {
            "title": f"North Korean troops near Kursk, report {i}",
            "link": f"https://n.example.com/story/{i}",
        }
        for i in range(n)
    ]
    http_server.routes["/feed.xml"] = Route(body=rss(items))
    config = write_config(
        tmp_path / "config",
        feeds=feeds_yaml({"world": f"{http_server.base}/feed.xml"}, backfill=n),
        destinations=f"hook:\n  url: json://127.0.0.1:{receiver.port}/alerts\n",
        watchlists={"kursk": WATCHLIST.format(rule="kursk-rule", term="Kursk")},
    )
    service = Service(config, redis_url, free_port())
    try:
        wait_for(lambda: len(receiver.received) >= 20, 60, "the burst to start arriving")
    finally:
        started = time.monotonic()
        assert service.stop() == 0
    assert time.monotonic() - started < 30
    assert len(receiver.received) < n, "the burst ended before SIGTERM: nothing was tested"
    env = dict(os.environ, REDIS_URL=redis_url, NEWSALERT_CONFIG=str(config))
    rest = subprocess.run(
        [sys.executable, "-m", "worker.cli", "run", "--once", "--wait", "120"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert rest.returncode == 0, rest.stderr
    links = [
        json.dumps(r["body"]).split("https://n.example.com/story/")[1].split("\\")[0].split('"')[0]
        for r in receiver.received
    ]
    assert len(set(links)) == n, f"lost {n - len(set(links))}"
    assert len(links) == n, f"duplicated {len(links) - len(set(links))}"


def test_run_refuses_to_start_on_an_invalid_config(tmp_path, redis_url):
    config = write_config(
        tmp_path / "config",
        feeds=feeds_yaml({"world": "http://127.0.0.1:9/feed.xml"}),
        destinations="hook:\n  url: json://127.0.0.1:9/alerts\n",
        watchlists={"kursk": "notify: [hook]\nrules:\n  - id: r\n    alll: [Kursk]\n"},
    )
    env = dict(os.environ, REDIS_URL=redis_url, NEWSALERT_CONFIG=str(config))
    env.pop("PORT", None)
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "kursk.yaml:4:" in done.stderr and "alll" in done.stderr, done.stderr
    assert "poller" not in done.stderr  # no child was started
