"""The pipeline through a TLS Redis (``rediss://``) with a self-signed certificate."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from configs import NK_WATCHLIST, feeds_yaml, write_config
from conftest import Route
from feedgen import UNRELATED, article_item, rss

FIXTURES = Path(__file__).parent / "fixtures"


def _needs(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        message = f"{binary} is not installed (Debian: apt-get install redis-server openssl)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def tls_redis(tmp_path):
    server, openssl = _needs("redis-server"), _needs("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            server,
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--tls-cert-file",
            str(cert),
            "--tls-key-file",
            str(key),
            "--tls-ca-cert-file",
            str(cert),
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"rediss://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, ssl_cert_reqs="none")
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.RedisError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_pipeline_over_tls_redis(tls_redis, tmp_path, http_server, receiver):
    text = (FIXTURES / "articles" / "nk-prisoner.txt").read_text()
    http_server.routes["/feed.xml"] = Route(
        body=rss([article_item(text, "https://n.example.com/a"), *UNRELATED])
    )
    config = write_config(
        tmp_path / "config",
        feeds=feeds_yaml({"world": f"{http_server.base}/feed.xml"}),
        destinations=f"hook:\n  url: json://127.0.0.1:{receiver.port}/alerts\n",
        watchlists={"nk": NK_WATCHLIST.format(notify="[hook]")},
    )
    env = dict(os.environ, REDIS_URL=tls_redis, NEWSALERT_CONFIG=str(config))

    # A self-signed chain fails certificate checking, with one clear line.
    refused = subprocess.run(
        [sys.executable, "-m", "worker.cli", "run", "--once", "--wait", "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 3, refused.stderr
    assert "certificate" in refused.stderr.lower() and "Traceback" not in refused.stderr

    env["NEWSALERT_REDIS_SSL_CERT_REQS"] = "none"
    result = subprocess.run(
        [sys.executable, "-m", "worker.cli", "run", "--once", "--wait", "30"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert len(receiver.received) == 1
