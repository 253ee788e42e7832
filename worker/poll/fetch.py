"""Fetch feeds over HTTP(S) with hard limits. The only module that imports aiohttp.

Decisions and limits:

- **Deadline.** ``total_timeout`` bounds a whole fetch, every redirect hop and
  the body included, so a 1 byte/s trickle is cut; ``connect_timeout`` and
  ``read_timeout`` (per socket read) fail faster on dead hosts. Time spent
  waiting for a concurrency slot does not count against the deadline.
- **Size.** ``max_bytes`` bounds the body *after* gzip/deflate/brotli
  decoding, which is done here in bounded steps (aiohttp's own decoding is
  off) so a compression bomb never inflates in memory (``worker.poll.decode``). A declared
  Content-Length above the limit is refused before reading.
- **Redirects** are followed by hand (at most ``max_redirects``, loops
  refused) so each hop's scheme and address is checked. ``permanent_redirect``
  is the target of the last 301/308 in the unbroken run of permanent
  redirects at the start of the chain: the URL the poller should store.
- **SSRF.** Only http/https. Unless ``allow_private``, every address a host
  name resolves to is checked by the connector's resolver (so the address
  connected to is the address checked: no DNS-rebinding window), IP-literal
  hosts are checked before connecting, and every socket is checked again
  against the address it is about to connect to (aiohttp ``socket_factory``). The policy is
  an ``is_allowed(ip)`` predicate, injectable for tests. No proxy variables are read.
- **Errors** are ``FeedError`` with ``reason`` one of ``scheme``, ``url``
  (malformed URL), ``private_address``, ``dns``, ``connect`` (also TLS and a
  connection broken mid-body), ``timeout``, ``too_large``, ``decode``
  (unknown or corrupt Content-Encoding), ``redirects``, ``gone`` (410) and
  ``http`` (other 4xx/5xx). HTTP-status errors are ``FetchHTTPError``, a
  ``FeedError`` that also carries ``retry_after`` (seconds, parsed from
  ``Retry-After`` as delta-seconds or HTTP date; ``None`` when absent).
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from worker.errors import FailureReason, FeedError
from worker.poll.decode import CHUNK, BodyDecoder

__all__ = ["FetchHTTPError", "FetchLimits", "FetchResult", "Fetcher", "fetch_once"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_REDIRECTS = {301, 302, 303, 307, 308}
_NOT_PUBLIC = (
    "is_private",
    "is_loopback",
    "is_link_local",
    "is_multicast",
    "is_reserved",
    "is_unspecified",
)
_HEADERS = {
    "Accept": "application/rss+xml, application/atom+xml, application/feed+json, "
    "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5",
    "Accept-Encoding": "gzip, deflate, br",
}


@dataclass(frozen=True)
class FetchLimits:
    """Per-fetch limits and shared concurrency limits of a ``Fetcher``."""

    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    total_timeout: float = 30.0
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5
    user_agent: str = "newsalert/0.1 (+https://github.com/newsalert/newsalert)"
    concurrency: int = 50
    per_host: int = 4


@dataclass(frozen=True)
class FetchResult:
    """A fetched response: status 2xx, or 304 with an empty body."""

    status: int
    url: str
    body: bytes
    headers: dict[str, str]
    etag: str | None
    last_modified: str | None
    permanent_redirect: str | None
    elapsed: float


class FetchHTTPError(FeedError):
    """Raised when the server answers 4xx/5xx; ``retry_after`` is in seconds or None."""

    def __init__(
        self, message: str, *, reason: FailureReason, status: int, retry_after: float | None
    ) -> None:
        super().__init__(message, reason=reason, status=status)
        self.retry_after = retry_after


class _Refused(OSError):
    """A resolver result refused by the address policy (travels through aiohttp as OSError)."""


def is_public_address(ip: IPAddress) -> bool:
    """Return True when ``ip`` is a globally routable unicast address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not any(getattr(ip, flag) for flag in _NOT_PUBLIC)


class _GuardedResolver(AbstractResolver):
    """Resolve with the default resolver, then drop every address the policy refuses."""

    def __init__(self, is_allowed: Callable[[IPAddress], bool]) -> None:
        self._inner = DefaultResolver()
        self._is_allowed = is_allowed

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if self._is_allowed(ipaddress.ip_address(r["host"]))]
        if not allowed:
            raise _Refused(
                f"{host} resolves only to refused addresses "
                f"({', '.join(sorted({r['host'] for r in results}))})"
            )
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def _retry_after(value: str | None) -> float | None:
    """Return the seconds a ``Retry-After`` value asks to wait, or None if unparseable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Fetcher:
    """Fetch many feeds concurrently under shared limits; use as ``async with Fetcher() as f``."""

    def __init__(
        self,
        limits: FetchLimits = FetchLimits(),
        allow_private: bool = False,
        *,
        is_allowed: Callable[[IPAddress], bool] | None = None,
    ) -> None:
        self.limits = limits
        self._is_allowed = is_allowed or ((lambda ip: True) if allow_private else is_public_address)
        self._global = asyncio.Semaphore(limits.concurrency)
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        connector = aiohttp.TCPConnector(
            resolver=_GuardedResolver(self._is_allowed),
            socket_factory=self._socket,
            limit=self.limits.concurrency,
            limit_per_host=self.limits.per_host,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            trust_env=False,
            timeout=aiohttp.ClientTimeout(
                total=None,
                sock_connect=self.limits.connect_timeout,
                sock_read=self.limits.read_timeout,
            ),
            headers={"User-Agent": self.limits.user_agent, **_HEADERS},
        )
        return self

    def _socket(self, addr_info: tuple[Any, ...]) -> socket.socket:
        """Create the socket for one connection attempt, refusing addresses the policy refuses."""
        family, type_, proto, _, sockaddr = addr_info
        if not self._is_allowed(ipaddress.ip_address(sockaddr[0])):
            raise _Refused(f"refused address {sockaddr[0]}")
        return socket.socket(family=family, type=type_, proto=proto)

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        form: dict[str, str] | None = None,
    ) -> FetchResult:
        """Fetch ``url`` (conditional with ``etag``/``last_modified``; ``form``: POST it instead)."""
        if self._session is None:
            raise RuntimeError("Fetcher used outside 'async with'")
        conditions = {"If-None-Match": etag, "If-Modified-Since": last_modified}
        headers = {k: v for k, v in conditions.items() if v}
        async with self._global:
            started = time.monotonic()
            try:
                return await self._follow(url, headers, started, form)
            except TimeoutError:
                raise FeedError(f"{url}: timed out", reason=FailureReason.TIMEOUT) from None

    async def _follow(
        self, url: str, headers: dict[str, str], started: float, form: dict[str, str] | None
    ) -> FetchResult:
        """Fetch ``url`` following redirects by hand, checking every hop."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.total_timeout
        visited: set[str] = set()
        permanent: str | None = None
        in_permanent_run = True
        for _ in range(self.limits.max_redirects + 1):
            host = self._check_url(url)
            if url in visited:
                raise FeedError(f"redirect loop at {url}", reason=FailureReason.REDIRECTS)
            visited.add(url)
            sem = self._hosts.setdefault(host, asyncio.Semaphore(self.limits.per_host))
            waited = loop.time()
            async with sem:
                deadline += loop.time() - waited  # queueing for a slot is not the server's fault
                async with asyncio.timeout_at(deadline):
                    result = await self._request(url, headers, started, form)
            if isinstance(result, FetchResult):
                return FetchResult(**{**result.__dict__, "permanent_redirect": permanent})
            status, location = result
            if status in (301, 308) and in_permanent_run:
                permanent = location
            else:
                in_permanent_run = False
            url = location
        raise FeedError(
            f"more than {self.limits.max_redirects} redirects", reason=FailureReason.REDIRECTS
        )

    def _check_url(self, url: str) -> str:
        """Return the host:port key of ``url``; raise for bad schemes and refused IP literals."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise FeedError(f"invalid URL {url!r}: {exc}", reason=FailureReason.URL) from None
        if parts.scheme.lower() not in ("http", "https"):
            raise FeedError(
                f"refusing URL scheme {parts.scheme!r} in {url!r}", reason=FailureReason.SCHEME
            )
        if not parts.hostname:
            raise FeedError(f"URL without host: {url!r}", reason=FailureReason.URL)
        try:
            ip = ipaddress.ip_address(parts.hostname)
        except ValueError:
            ip = None
        if ip is not None and not self._is_allowed(ip):
            raise FeedError(
                f"refusing address {ip} in {url!r}", reason=FailureReason.PRIVATE_ADDRESS
            )
        return f"{parts.hostname}:{port or ''}"

    async def _request(
        self, url: str, headers: dict[str, str], started: float, form: dict[str, str] | None
    ) -> FetchResult | tuple[int, str]:
        """Make one request; return the result, or (status, absolute Location) for a redirect."""
        assert self._session is not None
        send = self._session.get if form is None else self._session.post  # a redirect re-posts
        try:
            async with send(url, headers=headers, data=form, allow_redirects=False) as resp:
                status = resp.status
                hdrs = {k.lower(): v for k, v in resp.headers.items()}
                if status in _REDIRECTS and "location" in hdrs:
                    return status, urljoin(url, hdrs["location"].strip())
                if status >= 300 and status != 304:
                    reason = FailureReason.GONE if status == 410 else FailureReason.HTTP
                    raise FetchHTTPError(
                        f"{url}: HTTP {status} {resp.reason or ''}".rstrip(),
                        reason=reason,
                        status=status,
                        retry_after=_retry_after(hdrs.get("retry-after")),
                    )
                body = b"" if status == 304 else await self._read(resp, hdrs)
                validators = hdrs.get("etag"), hdrs.get("last-modified")
                elapsed = time.monotonic() - started
                return FetchResult(status, str(resp.url), body, hdrs, *validators, None, elapsed)
        except aiohttp.ClientConnectorError as exc:  # ClientConnectorDNSError included
            dns = isinstance(exc, aiohttp.ClientConnectorDNSError)
            refused = not dns and "refused address" in str(exc.os_error)
            if isinstance(exc.os_error, _Refused) or refused:
                reason = FailureReason.PRIVATE_ADDRESS
                raise FeedError(f"{url}: {exc.os_error}", reason=reason) from None
            what, reason = (
                ("DNS lookup failed", FailureReason.DNS)
                if dns
                else ("cannot connect", FailureReason.CONNECT)
            )
            raise FeedError(f"{url}: {what}: {exc.os_error}", reason=reason) from None
        except aiohttp.InvalidURL as exc:
            raise FeedError(f"invalid URL {url!r}: {exc}", reason=FailureReason.URL) from None
        except (aiohttp.ServerTimeoutError, aiohttp.ConnectionTimeoutError):
            raise TimeoutError from None
        except aiohttp.ClientError as exc:
            raise FeedError(
                f"{url}: {type(exc).__name__}: {exc}", reason=FailureReason.CONNECT
            ) from None

    async def _read(self, resp: aiohttp.ClientResponse, hdrs: dict[str, str]) -> bytes:
        """Read and decode the body within ``max_bytes``."""
        limit = self.limits.max_bytes
        declared = hdrs.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            resp.close()
            raise FeedError(
                f"Content-Length {declared} exceeds {limit} bytes", reason=FailureReason.TOO_LARGE
            )
        encoding = hdrs.get("content-encoding", "").strip().lower()
        decoder = BodyDecoder(encoding, limit)
        try:
            async for chunk in resp.content.iter_chunked(CHUNK):
                decoder.feed(chunk)
            return decoder.finish()
        except FeedError:
            resp.close()  # drop the connection instead of draining a hostile body
            raise


def fetch_once(
    url: str,
    *,
    limits: FetchLimits = FetchLimits(),
    allow_private: bool = False,
) -> FetchResult:
    """Fetch one URL synchronously (for one-shot commands); raise ``FeedError`` on failure."""

    async def run() -> FetchResult:
        async with Fetcher(limits, allow_private) as fetcher:
            return await fetcher.fetch(url)

    return asyncio.run(run())
