"""A loopback feed server for poller tests: dynamic bodies, ETags, delays, hit times."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import serving

from worker.config import Feed


@dataclass
class Answer:
    """What a path answers: body, status, headers; ``etag`` turns on conditional GET."""

    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: bool = False
    delay: float = 0.0  # seconds before answering (the first request only, when once=True)
    delay_once: bool = False


class FeedServer:
    """A threaded HTTP server on 127.0.0.1 that records when each path was fetched."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer | Callable[[], Answer]] = {}
        self.hits: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with server.lock:
                    server.hits.setdefault(self.path, []).append(time.monotonic())
                    answer = server.answers.get(self.path)
                    if callable(answer):
                        answer = answer()
                    first = len(server.hits[self.path]) == 1
                if answer is None:
                    answer = Answer(status=404)
                if answer.delay and (first or not answer.delay_once):
                    time.sleep(answer.delay)
                headers = dict(answer.headers)
                status, body = answer.status, answer.body
                if answer.etag and status == 200:
                    tag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
                    headers["ETag"] = tag
                    if self.headers.get("If-None-Match") == tag:
                        status, body = 304, b""
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = serving.start(self.httpd)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def count(self, path: str) -> int:
        with self.lock:
            return len(self.hits.get(path, []))

    def close(self) -> None:
        serving.stop(self.httpd)


def local_feed(*args: Any, **kwargs: Any) -> Feed:
    """Return a ``Feed`` that never fetches articles (test items link off loopback)."""
    kwargs.setdefault("fulltext", "never")
    return Feed(*args, **kwargs)
