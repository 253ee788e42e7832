"""robots.txt as RFC 9309 reads it: wildcards, ``$``, the longest match, our agent's group.

A real loopback server serves the file and ``Robots.allowed`` reads it through a real
``Fetcher`` and a real Redis, as the article fetcher does.
"""

from __future__ import annotations

import asyncio

import pytest
from conftest import Route

from worker.poll.fetch import Fetcher, FetchLimits
from worker.poll.robots import Robots

ROBOTS = b"""\
User-agent: *
Disallow: /
Allow: /news/
Disallow: /*.pdf$
Disallow: /news/*/draft
Allow: /news/public/draft

User-agent: otherbot
Allow: /
"""

CASES = [
    ("/about", False),  # only "Disallow: /" matches
    ("/news/kursk", True),  # "Allow: /news/" is longer than "Disallow: /"
    ("/news/report.pdf", False),  # "/*.pdf$" (7) is longer than "/news/" (6)
    ("/news/report.pdf?page=2", True),  # "$" anchors the end: this path goes on
    ("/news/2024/draft", False),  # "*" spans a segment
    ("/news/public/draft", True),  # the longest rule of all is an Allow
]


def _allowed(base: str, client, paths: list[str]) -> list[bool]:
    async def run() -> list[bool]:
        robots = Robots(client)
        async with Fetcher(FetchLimits(), allow_private=True) as fetcher:
            return [(await robots.allowed(fetcher, base + p))[0] for p in paths]

    return asyncio.run(run())


@pytest.mark.parametrize(("path", "allowed"), CASES, ids=[c[0] for c in CASES])
def test_rfc9309_wildcards_and_longest_match(http_server, redis_client, path, allowed) -> None:
    http_server.routes["/robots.txt"] = Route(ROBOTS)
    assert _allowed(http_server.base, redis_client, [path]) == [allowed]


def test_our_own_group_wins_over_the_star_group(http_server, redis_client) -> None:
    http_server.routes["/robots.txt"] = Route(
        b"User-agent: *\nDisallow: /\n\nUser-agent: NewsAlert\nAllow: /news/\nDisallow: /\n"
    )
    assert _allowed(http_server.base, redis_client, ["/news/a", "/other"]) == [True, False]


@pytest.mark.parametrize(("status", "allowed"), [(404, True), (403, True), (503, False)])
def test_unavailable_allows_and_unreachable_disallows(
    http_server, redis_client, status: int, allowed: bool
) -> None:
    http_server.routes["/robots.txt"] = Route(b"nope", status=status)
    assert _allowed(http_server.base, redis_client, ["/news/a"]) == [allowed]
