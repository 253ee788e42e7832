"""Loopback HTTP for fault tests: many feeds (some hostile) and a webhook receiver.

Both record what happened with timestamps, so tests can measure freshness and
latency, and count alerts per story.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import serving
from feedgen import rss

STORY = re.compile(r"https://n\.example\.com/story/([A-Za-z0-9_-]+)")


# -- HTTP: feeds and receiver -------------------------------------------------


def story_items(feed: str, n: int, start: int = 0, term: str = "Kursk") -> list[dict[str, str]]:
    """Return ``n`` items whose title matches the test watchlist, with countable links."""
    return [
        {
            "title": f"Troops near {term}, report {feed} {i}",
            "link": f"https://n.example.com/story/{feed}-{i}",
        }
        for i in range(start, start + n)
    ]


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass


class FeedServer:
    """Serves many RSS feeds on 127.0.0.1 with ETag/304, and misbehaving ones on request.

    Records every GET's time per path and when each story was first served
    (the "published on the server" clock that fetches can see).
    """

    BOMB = gzip.compress(b"\0" * (200 * 1024 * 1024), 9)  # ~200 kB that inflates to 200 MB

    def __init__(self) -> None:
        self.feeds: dict[str, list[dict[str, str]]] = {}
        self.bodies: dict[str, tuple[bytes, str]] = {}
        self.modes: dict[str, str] = {}  # path → slow | huge | bomb | loop | invalid | hang
        self.hits: dict[str, list[float]] = {}
        self.first_served: dict[str, float] = {}
        self.delay = 0.0  # seconds every normal feed takes to answer
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        server = self

        class Handler(_Quiet):
            def do_GET(self) -> None:
                server._get(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda *a: None  # type: ignore[method-assign]  # resets are expected
        serving.start(self.httpd)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}.xml"

    def publish(self, name: str, items: list[dict[str, str]]) -> None:
        """Put ``items`` first in feed ``name`` (newest first, as feeds list them)."""
        with self.lock:
            self.feeds[name] = items + self.feeds.get(name, [])
            body = rss(self.feeds[name][:2000])
            self.bodies[name] = (body, hashlib.sha1(body).hexdigest()[:16])

    def _get(self, h: BaseHTTPRequestHandler) -> None:
        name = h.path.lstrip("/").removesuffix(".xml")
        now = time.time()
        with self.lock:
            self.hits.setdefault(name, []).append(now)
            mode, entry = self.modes.get(name), self.bodies.get(name)
            items = list(self.feeds.get(name, ()))
        if mode:
            return self._misbehave(h, mode)
        if self.delay:
            time.sleep(self.delay)
        if entry is None:
            return self._reply(h, 404, b"")
        body, etag = entry
        if h.headers.get("If-None-Match") == f'"{etag}"':
            return self._reply(h, 304, b"", {"ETag": f'"{etag}"'})
        with self.lock:
            for it in items:
                m = STORY.search(it["link"])
                if m:
                    self.first_served.setdefault(m.group(1), now)
        self._reply(h, 200, body, {"ETag": f'"{etag}"', "Content-Type": "application/rss+xml"})

    @staticmethod
    def _reply(
        h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _misbehave(self, h: BaseHTTPRequestHandler, mode: str) -> None:
        try:
            if mode == "loop":  # a redirect to itself, forever
                return self._reply(h, 302, b"", {"Location": h.path})
            if mode == "invalid":
                return self._reply(h, 200, b"<rss><channel><item><title>\xff\xfe<<</rss" * 100)
            if mode == "bomb":
                return self._reply(
                    h,
                    200,
                    self.BOMB,
                    {"Content-Encoding": "gzip", "Content-Type": "application/rss+xml"},
                )
            h.send_response(200)
            h.send_header("Content-Length", str(60 * 1024 * 1024))
            h.end_headers()
            if mode == "huge":  # 60 MB of well-formed-looking XML, as fast as it goes
                h.wfile.write(b"<rss><channel>")
                chunk = b"<item><title>x</title></item>" * 2000
                for _ in range(60 * 1024 * 1024 // len(chunk)):
                    if self.stopping.is_set():
                        return
                    h.wfile.write(chunk)
            else:  # slow: one byte a second, for at most a minute
                for _ in range(60):
                    if self.stopping.is_set():
                        return
                    h.wfile.write(b" ")
                    h.wfile.flush()
                    time.sleep(1)
        except OSError:
            pass  # the fetcher gave up, as it should

    def close(self) -> None:
        self.stopping.set()
        serving.stop(self.httpd)


@dataclass
class Receipt:
    at: float
    stories: set[str]
    committed: bool  # False: the sender was gone before we answered (killed mid-request)


@dataclass
class Receiver:
    """A json:// webhook receiver: optional delay before answering, or "down" with a status."""

    delay: float = 0.0
    down_status: int = 0  # answer every POST with this status while non-zero
    receipts: list[Receipt] = field(default_factory=list)
    in_flight: int = 0
    refused: int = 0

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        rec = self

        class Handler(_Quiet):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if rec.down_status:
                    with rec.lock:
                        rec.refused += 1
                    return FeedServer._reply(self, rec.down_status, b"down")
                with rec.lock:
                    rec.in_flight += 1
                try:
                    if rec.delay:
                        time.sleep(rec.delay)
                    # A closed peer reads as EOF: the sender died while we "processed" it.
                    gone = (
                        bool(select.select([self.connection], [], [], 0)[0])
                        and self.connection.recv(1, socket.MSG_PEEK) == b""
                    )
                    with rec.lock:
                        rec.receipts.append(
                            Receipt(
                                time.time(),
                                set(STORY.findall(raw.decode(errors="replace"))),
                                not gone,
                            )
                        )
                    FeedServer._reply(self, 200, b"ok")
                except OSError:
                    pass
                finally:
                    with rec.lock:
                        rec.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda *a: None  # type: ignore[method-assign]  # resets are expected
        serving.start(self.httpd)

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.httpd.server_address[1]}/alerts"

    def stories(self, committed_only: bool = True) -> list[str]:
        with self.lock:
            return [
                s for r in self.receipts if r.committed or not committed_only for s in r.stories
            ]

    def close(self) -> None:
        serving.stop(self.httpd)
