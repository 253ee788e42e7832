"""Fetcher against real HTTP servers on 127.0.0.1 / 127.0.0.2 (threaded http.server)."""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import ipaddress
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import brotli
import pytest
import serving

from worker.errors import FeedError
from worker.poll.fetch import (
    Fetcher,
    FetchHTTPError,
    FetchLimits,
    FetchResult,
    fetch_once,
    is_public_address,
)

FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'
BOMB_SIZE = 64 * 1024 * 1024  # decompressed
SMALL = FetchLimits(connect_timeout=1.0, read_timeout=1.0, total_timeout=1.5, max_bytes=1024 * 1024)


def _bomb(wbits: int) -> bytes:
    """Return BOMB_SIZE zero bytes compressed: gzip (16 + 15), zlib deflate (15) or raw (-15)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, wbits)
    block = b"\0" * (1024 * 1024)
    return b"".join(comp.compress(block) for _ in range(BOMB_SIZE // len(block))) + comp.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    bomb = b""
    deflate_bomb = b""
    raw_deflate_bomb = b""
    brotli_bomb = b""
    in_flight = 0
    max_in_flight = 0
    lock = threading.Lock()

    def log_message(self, *args: Any) -> None:
        pass

    def send(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path, other = self.path, self.server.other  # type: ignore[attr-defined]
        if path == "/feed":
            self.send(200, FEED, Content_Type="application/rss+xml")
        elif path == "/etag":
            if self.headers.get("If-None-Match") == '"v1"':
                self.send(304, ETag='"v1"')
            else:
                self.send(200, FEED, ETag='"v1"', Last_Modified="Tue, 17 Feb 2026 18:00:00 GMT")
        elif path == "/lastmod":
            if self.headers.get("If-Modified-Since") == "Tue, 17 Feb 2026 18:00:00 GMT":
                self.send(304)
            else:
                self.send(200, FEED, Last_Modified="Tue, 17 Feb 2026 18:00:00 GMT")
        elif path == "/headers":
            body = "\n".join(f"{k}: {v}" for k, v in self.headers.items()).encode()
            self.send(200, body)
        elif path == "/429":
            self.send(429, b"slow down", Retry_After="7")
        elif path == "/503":
            when = email.utils.formatdate(time.time() + 120, usegmt=True)
            self.send(503, b"", Retry_After=when)
        elif path == "/500":
            self.send(500, b"oops")
        elif path == "/410":
            self.send(410, b"gone")
        elif path.startswith("/chain/"):
            n = int(path.rsplit("/", 1)[1])
            if n:
                self.send(302, Location=f"/chain/{n - 1}")
            else:
                self.send(200, FEED)
        elif path == "/loop-a":
            self.send(302, Location="/loop-b")
        elif path == "/loop-b":
            self.send(302, Location="/loop-a")
        elif path == "/moved":
            self.send(301, Location="/moved-2")
        elif path == "/moved-2":
            self.send(308, Location="/moved-3")
        elif path == "/moved-3":
            self.send(302, Location="/feed")
        elif path == "/to-other":
            self.send(302, Location=f"{other}/feed")
        elif path == "/to-file":
            self.send(302, Location="file:///etc/passwd")
        elif path == "/gzip":
            self.send(200, gzip.compress(FEED), Content_Encoding="gzip")
        elif path == "/deflate":
            self.send(200, zlib.compress(FEED), Content_Encoding="deflate")
        elif path == "/raw-deflate":
            comp = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
            self.send(200, comp.compress(FEED) + comp.flush(), Content_Encoding="deflate")
        elif path == "/br":
            self.send(200, brotli.compress(FEED), Content_Encoding="br")
        elif path == "/corrupt-gzip":
            self.send(200, b"\x1f\x8bnot really gzip", Content_Encoding="gzip")
        elif path == "/bomb":
            self.send(200, Handler.bomb, Content_Encoding="gzip")
        elif path == "/deflate-bomb":
            self.send(200, Handler.deflate_bomb, Content_Encoding="deflate")
        elif path == "/raw-deflate-bomb":
            self.send(200, Handler.raw_deflate_bomb, Content_Encoding="deflate")
        elif path == "/brotli-bomb":
            self.send(200, Handler.brotli_bomb, Content_Encoding="br")
        elif path == "/huge-declared":
            self.send_response(200)
            self.send_header("Content-Length", str(50 * 1024 * 1024))
            self.end_headers()
            self.wfile.write(b"x" * 1024)
        elif path == "/huge-streamed":  # 50 MB, close-delimited, no Content-Length
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.stream(b"x" * 65536, 800, 0.0)
        elif path == "/trickle":
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self.stream(b"x", 100, 0.05)  # bounded: 5 s at most
        elif path == "/slow":
            with Handler.lock:
                Handler.in_flight += 1
                Handler.max_in_flight = max(Handler.max_in_flight, Handler.in_flight)
            time.sleep(0.15)
            with Handler.lock:
                Handler.in_flight -= 1
            self.send(200, FEED)
        else:
            self.send(404, b"not found")

    def stream(self, chunk: bytes, count: int, pause: float) -> None:
        try:
            for _ in range(count):
                self.wfile.write(chunk)
                self.wfile.flush()
                if pause:
                    time.sleep(pause)
        except OSError:
            pass  # the client gave up, as it should
        self.close_connection = True


def _serve(host: str) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    serving.start(server)
    return server


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[str, str]]:
    Handler.bomb = _bomb(16 + zlib.MAX_WBITS)
    Handler.deflate_bomb = _bomb(zlib.MAX_WBITS)
    Handler.raw_deflate_bomb = _bomb(-zlib.MAX_WBITS)
    Handler.brotli_bomb = brotli.compress(b"\0" * BOMB_SIZE, quality=1)
    one, two = _serve("127.0.0.1"), _serve("127.0.0.2")
    base1 = f"http://127.0.0.1:{one.server_address[1]}"
    base2 = f"http://127.0.0.2:{two.server_address[1]}"
    one.other, two.other = base2, base1  # type: ignore[attr-defined]
    yield base1, base2
    for server in (one, two):
        serving.stop(server)


@pytest.fixture
def base(servers: tuple[str, str]) -> str:
    return servers[0]


def only_127_0_0_1(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return str(ip) == "127.0.0.1"


def fetch(url: str, limits: FetchLimits = SMALL, **kw: Any) -> FetchResult:
    """Fetch with the test policy: 127.0.0.1 allowed, everything else refused."""

    async def run() -> FetchResult:
        async with Fetcher(limits, is_allowed=only_127_0_0_1) as fetcher:
            return await fetcher.fetch(url, **kw)

    return asyncio.run(asyncio.wait_for(run(), 10))


def fails(url: str, reason: str, limits: FetchLimits = SMALL) -> FeedError:
    with pytest.raises(FeedError) as info:
        fetch(url, limits)
    assert info.value.reason == reason, str(info.value)
    return info.value


def test_ok_and_headers(base: str) -> None:
    res = fetch(f"{base}/feed")
    assert (res.status, res.body, res.url) == (200, FEED, f"{base}/feed")
    assert res.headers["content-type"] == "application/rss+xml" and res.permanent_redirect is None
    assert 0 <= res.elapsed < 2
    sent = fetch(f"{base}/headers").body.decode().lower()
    assert "user-agent: newsalert/0.1" in sent and "accept-encoding: gzip, deflate, br" in sent


def test_etag_then_304(base: str) -> None:
    first = fetch(f"{base}/etag")
    assert (first.status, first.etag, first.last_modified) == (
        200,
        '"v1"',
        "Tue, 17 Feb 2026 18:00:00 GMT",
    )
    again = fetch(f"{base}/etag", etag=first.etag)
    assert (again.status, again.body) == (304, b"")
    assert fetch(f"{base}/lastmod", last_modified=first.last_modified).status == 304


def test_retry_after_seconds_and_date(base: str) -> None:
    err = fails(f"{base}/429", "http")
    assert isinstance(err, FetchHTTPError) and (err.status, err.retry_after) == (429, 7.0)
    err = fails(f"{base}/503", "http")
    assert isinstance(err, FetchHTTPError) and err.status == 503
    assert err.retry_after is not None and 100 < err.retry_after <= 120
    err = fails(f"{base}/500", "http")
    assert isinstance(err, FetchHTTPError) and (err.status, err.retry_after) == (500, None)
    assert fails(f"{base}/nope", "http").status == 404


def test_gone(base: str) -> None:
    assert fails(f"{base}/410", "gone").status == 410


def test_redirect_chain_within_limit(base: str) -> None:
    res = fetch(f"{base}/chain/5")
    assert (res.status, res.url, res.permanent_redirect) == (200, f"{base}/chain/0", None)
    fails(f"{base}/chain/6", "redirects")


def test_redirect_loop(base: str) -> None:
    assert "loop" in str(fails(f"{base}/loop-a", "redirects"))


def test_permanent_redirect_reported(base: str) -> None:
    res = fetch(f"{base}/moved")  # 301 → 308 → 302 → 200
    assert res.permanent_redirect == f"{base}/moved-3" and res.url == f"{base}/feed"


@pytest.mark.parametrize("path", ["/gzip", "/deflate", "/raw-deflate", "/br"])
def test_content_encodings(base: str, path: str) -> None:
    assert fetch(base + path).body == FEED


def test_corrupt_encoding(base: str) -> None:
    fails(f"{base}/corrupt-gzip", "decode")


@pytest.mark.parametrize("path", ["/bomb", "/deflate-bomb", "/raw-deflate-bomb", "/brotli-bomb"])
def test_compression_bomb_cut_off_with_low_memory(base: str, path: str) -> None:
    tracemalloc.start()
    try:
        fails(base + path, "too_large")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024  # limit is 1 MiB; the bomb inflates to 64 MiB


def test_declared_content_length_too_large(base: str) -> None:
    started = time.monotonic()
    fails(f"{base}/huge-declared", "too_large")
    assert time.monotonic() - started < 1


def test_streamed_50mb_body_too_large(base: str) -> None:
    fails(f"{base}/huge-streamed", "too_large")


def test_trickle_cut_at_total_timeout(base: str) -> None:
    limits = FetchLimits(connect_timeout=1, read_timeout=1, total_timeout=0.8)
    started = time.monotonic()
    fails(f"{base}/trickle", "timeout", limits)
    assert 0.7 < time.monotonic() - started < 2


def test_private_address_refused_by_default(base: str) -> None:
    async def run(url: str) -> None:
        async with Fetcher(SMALL) as fetcher:
            await fetcher.fetch(url)

    for url in (
        f"{base}/feed",
        base.replace("127.0.0.1", "localhost") + "/feed",
        "http://[::1]:1/",
    ):
        with pytest.raises(FeedError) as info:
            asyncio.run(run(url))
        assert info.value.reason == "private_address", url


def test_allow_private(base: str) -> None:
    assert fetch_once(f"{base}/feed", limits=SMALL, allow_private=True).body == FEED


def test_redirect_to_refused_address(base: str) -> None:
    fails(f"{base}/to-other", "private_address")  # the hop to 127.0.0.2 is checked


def test_name_resolving_to_refused_address(servers: tuple[str, str]) -> None:
    # localhost resolves to 127.0.0.1 (allowed) here: the resolver guard lets it through…
    port = servers[0].rsplit(":", 1)[1]
    assert fetch(f"http://localhost:{port}/feed").body == FEED

    # …and refuses it when the policy does not allow that address.
    async def run() -> None:
        async with Fetcher(SMALL, is_allowed=lambda ip: False) as fetcher:
            await fetcher.fetch(f"http://localhost:{port}/feed")

    with pytest.raises(FeedError) as info:
        asyncio.run(run())
    assert info.value.reason == "private_address"


def test_connected_address_checked_per_socket(base: str) -> None:
    # 1st answer: the URL check of the IP literal; 2nd: the socket about to connect.
    answers = iter([True, False])

    async def run() -> None:
        async with Fetcher(SMALL, is_allowed=lambda ip: next(answers, False)) as fetcher:
            await fetcher.fetch(f"{base}/feed")

    with pytest.raises(FeedError) as info:
        asyncio.run(run())
    assert info.value.reason == "private_address"


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/feed", "gopher://x/", "javascript:x"]
)
def test_scheme_refused(url: str) -> None:
    assert fails(url, "scheme")


def test_redirect_to_file_refused(base: str) -> None:
    fails(f"{base}/to-file", "scheme")


def test_connect_refused(base: str) -> None:
    fails("http://127.0.0.1:1/feed", "connect")


def test_malformed_url() -> None:
    fails("http://127.0.0.1:99999999/", "url")


def test_per_host_limit(base: str) -> None:
    Handler.max_in_flight = 0
    limits = FetchLimits(total_timeout=5, per_host=2, concurrency=10)

    async def run() -> list[FetchResult]:
        async with Fetcher(limits, is_allowed=only_127_0_0_1) as fetcher:
            return await asyncio.gather(*(fetcher.fetch(f"{base}/slow") for _ in range(6)))

    assert all(r.status == 200 for r in asyncio.run(asyncio.wait_for(run(), 10)))
    assert Handler.max_in_flight == 2


@pytest.mark.parametrize(
    ("ip", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("192.168.0.1", False),
        ("172.16.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:8.8.8.8", True),
        ("ff02::1", False),
    ],
)
def test_is_public_address(ip: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(ip)) is public
