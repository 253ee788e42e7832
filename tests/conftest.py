"""Real parts for tests: Redis, a loopback feed server, an HTTP receiver, an SMTP server.

Redis: ``REDIS_URL`` when set (CI points it at the system Redis), else an
embedded redis-server started once per session. Under pytest-xdist every
worker has a Redis of its own: its own embedded server, or with ``REDIS_URL``
the database ``base + worker index`` (``.../10`` gives gw0 db 10, gw1 db 11…).
Every test that asks for ``redis_client`` gets it flushed before and after.
Tests that use ``redis_url`` are marked ``redis``: the second CI pass, against
the system Redis, runs only those (``-m "redis and not slow"``).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import redis
import serving

from worker.core.store import EmbeddedRedis, connect


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "redis_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.redis)


def worker_database(url: str, worker: str) -> str:
    """Return ``url`` moved to database ``its own + the xdist worker's index`` (gw3 → +3)."""
    index = int(worker[2:]) if worker.startswith("gw") else 0
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = dict(parse_qsl(parts.query))
        query["db"] = str(int(query.get("db", 0)) + index)
        return f"unix://{parts.netloc}{parts.path}?{urlencode(query)}"
    db = int(parts.path.strip("/") or 0) + index
    return urlunsplit(parts._replace(path=f"/{db}"))


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        url = worker_database(url, os.environ.get("PYTEST_XDIST_WORKER", ""))
        connect(url).ping()  # a database the server lacks fails here, once, with Redis's words
        yield url
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    yield server.start()
    server.stop()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = connect(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


# -- HTTP ------------------------------------------------------------------


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


class _Server:
    """A threaded HTTP server on 127.0.0.1 that records what it receives."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: dict[str, int] = {}
        self.received: list[dict[str, Any]] = []
        self.fail_next: list[int] = []  # statuses to answer POSTs with before succeeding
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with server.lock:
                    server.hits[self.path] = server.hits.get(self.path, 0) + 1
                    route = server.routes.get(self.path)
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(route.status)
                for k, v in route.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                self.wfile.write(route.body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with server.lock:
                    status = server.fail_next.pop(0) if server.fail_next else 200
                    if status == 200:
                        try:
                            doc = json.loads(raw)
                        except ValueError:
                            doc = {"raw": raw.decode(errors="replace")}
                        server.received.append(
                            {"path": self.path, "body": doc, "headers": dict(self.headers)}
                        )
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = serving.start(self.httpd)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def close(self) -> None:
        serving.stop(self.httpd)


@pytest.fixture
def http_server() -> Iterator[_Server]:
    server = _Server()
    yield server
    server.close()


@pytest.fixture
def receiver() -> Iterator[_Server]:
    """An HTTP receiver for apprise ``json://`` notifications."""
    server = _Server()
    yield server
    server.close()


# -- SMTP ------------------------------------------------------------------


@dataclass
class Mailbox:
    messages: list[Any] = field(default_factory=list)
    port: int = 0


@pytest.fixture
def smtp_server() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message."""
    from email import message_from_bytes, policy

    from aiosmtpd.controller import Controller

    box = Mailbox()

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            box.messages.append(message_from_bytes(envelope.content, policy=policy.default))
            return "250 OK"

    import socket

    with socket.socket() as probe:  # aiosmtpd needs a concrete port to self-test
        probe.bind(("127.0.0.1", 0))
        box.port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()
