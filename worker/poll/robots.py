"""Honour ``robots.txt`` for article fetches: one read per host per ``ROBOTS_TTL``, shared by all pollers.

Decisions (RFC 9309 where it speaks):

- robots.txt goes through the caller's ``Fetcher``, like the article itself:
  the same size/time/redirect limits, SSRF guard and per-host slots. Groups
  are matched on the product token of the fetcher's user agent
  (``newsalert`` from ``newsalert/0.1 (+…)``), case-insensitively.
- 2xx: the first ``MAX_ROBOTS_BYTES`` are parsed (the RFC asks parsers to read
  at least 500 KiB) by protego, which follows RFC 9309: ``*`` and ``$`` in
  paths, and the longest matching rule wins (an Allow on a tie). Any 4xx,
  401/403 included, means "unavailable": no rules, everything allowed
  (RFC 9309 §2.3.1.3). 5xx, a timeout or a broken connection means
  "unreachable": everything is disallowed, but only for ``ROBOTS_ERROR_TTL``
  so a short outage does not hide a host for a day.
- The text is cached in Redis per origin (``scheme://host:port``), so every
  poller reads it once per TTL; ``DISALLOW_ALL`` stands for "unreachable".
  Parsed rules are also kept in memory for a minute, so a burst of items from
  one host parses robots.txt once, and concurrent asks for one origin wait
  for one fetch.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import redis
from protego import Protego

from worker.core import keys
from worker.errors import FeedError
from worker.poll.fetch import Fetcher

__all__ = ["DISALLOW_ALL", "Robots", "origin_of"]

MAX_ROBOTS_BYTES = 512 * 1024
DISALLOW_ALL = "\0disallow-all"
_MEMORY_TTL = 60.0


def origin_of(url: str) -> str:
    """Return ``scheme://host[:port]`` of an http(s) URL (host lower-case), or "" if it has none."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def _parser(text: str) -> Protego:
    return Protego.parse("User-agent: *\nDisallow: /\n" if text == DISALLOW_ALL else text)


class Robots:
    """Answer "may we fetch this URL?" from a host's robots.txt, cached in Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._memory: dict[str, tuple[float, Protego]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def rules(self, fetcher: Fetcher, origin: str) -> Protego:
        """Return the parsed robots.txt of ``origin``, reading it at most once per TTL."""
        # One lock per origin: a burst of items from one host reads robots.txt once.
        async with self._locks.setdefault(origin, asyncio.Lock()):
            cached = self._memory.get(origin)
            if cached and cached[0] > time.monotonic():
                return cached[1]
            parser = _parser(await self._text(fetcher, origin))
            self._memory[origin] = (time.monotonic() + _MEMORY_TTL, parser)
            return parser

    async def _text(self, fetcher: Fetcher, origin: str) -> str:
        key = keys.robots(origin)
        raw = self.redis.get(key)
        if raw is not None:
            cached: str = raw.decode("utf-8", errors="replace")
            return cached
        ttl = keys.ROBOTS_TTL
        try:
            res = await fetcher.fetch(origin + "/robots.txt")
            text = res.body[:MAX_ROBOTS_BYTES].decode("utf-8", errors="replace")
        except FeedError as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                text = ""  # "unavailable": no rules apply
            else:
                text, ttl = DISALLOW_ALL, keys.ROBOTS_ERROR_TTL
        self.redis.set(key, text.encode(), ex=ttl)
        return text

    async def allowed(self, fetcher: Fetcher, url: str) -> tuple[bool, bool]:
        """Return (may fetch ``url``, may fetch anything from its host) for the fetcher's agent."""
        origin = origin_of(url)
        parser = await self.rules(fetcher, origin)
        agent = fetcher.limits.user_agent.split("/", 1)[0].strip()  # the product token
        return parser.can_fetch(url, agent), parser.can_fetch(origin + "/", agent)
