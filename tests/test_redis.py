"""Redis: the embedded server's durability settings, and warnings about an external one."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import redis
from configs import NK_WATCHLIST, feeds_yaml, write_config

from worker.core.store import EmbeddedRedis, redis_server_binary


def test_embedded_redis_is_durable_and_reused(tmp_path):
    first = EmbeddedRedis(tmp_path / "var")
    url = first.start()
    try:
        client = redis.Redis.from_url(url)
        conf = {
            **client.config_get("appendonly"),
            **client.config_get("appendfsync"),
            **client.config_get("maxmemory-policy"),
        }
        assert conf == {
            "appendonly": "yes",
            "appendfsync": "everysec",
            "maxmemory-policy": "noeviction",
        }
        client.set("newsalert:probe", "kept")
        second = EmbeddedRedis(tmp_path / "var")
        assert second.start() == url and second.process is None  # reused, not started again
    finally:
        first.stop()
    # A new server over the same directory finds the data in its append-only file.
    again = EmbeddedRedis(tmp_path / "var")
    try:
        assert redis.Redis.from_url(again.start()).get("newsalert:probe") == b"kept"
    finally:
        again.stop()


def test_external_redis_that_can_lose_alerts_is_named_at_start(tmp_path):
    sock = tmp_path / "r.sock"
    server = subprocess.Popen(
        [
            redis_server_binary(),
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxmemory-policy",
            "allkeys-lru",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        config = write_config(
            tmp_path / "config",
            feeds=feeds_yaml({}),
            destinations="hook:\n  url: json://127.0.0.1:9/x\n",
            watchlists={"nk": NK_WATCHLIST.format(notify="[hook]")},
        )
        env = dict(os.environ, REDIS_URL=f"unix://{sock}", NEWSALERT_CONFIG=str(config))
        result = subprocess.run(
            [sys.executable, "-m", "worker.cli", "run", "--once", "--wait", "2"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert result.returncode == 0, result.stderr
    assert "appendonly no" in result.stderr
    assert "maxmemory-policy allkeys-lru" in result.stderr
