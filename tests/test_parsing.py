"""The parse pool: real worker processes, started on demand and stopped when idle."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from feedgen import rss

from worker.errors import FeedError
from worker.parsing import POOL_MIN_FEEDS, ParsePool, pool_size

BODY = rss([{"title": f"Story {i}", "link": f"https://n.example.com/{i}"} for i in range(5)])


async def parse(pool: ParsePool) -> int:
    parsed = await pool.parse(BODY, feed_id="f", url="https://n.example.com/feed", headers={})
    return len(parsed.items)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_pool_starts_with_the_first_parse_and_stops_when_idle() -> None:
    async def scenario() -> None:
        with ParsePool(2, idle_close=0.5) as pool:
            assert pool.pids() == []  # nothing runs before there is something to parse
            assert await parse(pool) == 5
            first = pool.pids()
            assert first and all(alive(p) for p in first)
            deadline = time.monotonic() + 10
            while pool.pids() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert pool.pids() == [], "the idle pool was not stopped"
            deadline = time.monotonic() + 10
            while any(alive(p) for p in first) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert not any(alive(p) for p in first)
            assert await parse(pool) == 5  # and starts again when needed
            assert pool.pids() and set(pool.pids()).isdisjoint(first)

    asyncio.run(scenario())


def test_a_killed_parse_worker_fails_one_feed_and_the_pool_comes_back() -> None:
    async def scenario() -> None:
        with ParsePool(1) as pool:
            assert await parse(pool) == 5
            (pid,) = pool.pids()
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while alive(pid) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)  # let the pool notice
            with pytest.raises(FeedError, match="parse worker died"):
                await parse(pool)
            assert await parse(pool) == 5
            assert pool.pids() and pid not in pool.pids()

    asyncio.run(scenario())


def test_without_workers_parsing_runs_in_a_thread() -> None:
    async def scenario() -> None:
        with ParsePool(0) as pool:
            assert await parse(pool) == 5
            assert pool.pids() == []

    asyncio.run(scenario())


def test_pool_size_follows_the_number_of_feeds() -> None:
    assert pool_size(POOL_MIN_FEEDS - 1) == 0
    assert pool_size(POOL_MIN_FEEDS) == (os.cpu_count() or 1)
