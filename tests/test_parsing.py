"""The parse pool: feeds parsed in real worker processes, errors as FeedErrors."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest
from faults import alive
from feedgen import rss

from worker.errors import FeedError
from worker.poll.parse_pool import POOL_MIN_FEEDS, ParsePool, pool_size

BODY = rss([{"title": f"Story {i}", "link": f"https://n.example.com/{i}"} for i in range(5)])


async def parse(pool: ParsePool, body: bytes = BODY) -> int:
    parsed = await pool.parse(body, feed_id="f", url="https://n.example.com/feed", headers={})
    return len(parsed.items)


@pytest.mark.parametrize("workers", [0, 2])
def test_feeds_parse_in_workers_or_in_a_thread(workers: int) -> None:
    async def scenario() -> None:
        with ParsePool(workers) as pool:
            assert await parse(pool) == 5
            assert (len(pool.pids()) > 0) == (workers > 0)  # processes start as work comes
            with pytest.raises(FeedError) as err:
                await parse(pool, b"\x00\x01 not a feed")
            assert err.value.reason  # the reason travels back from the worker

    asyncio.run(scenario())


def test_a_killed_parse_worker_fails_one_feed_and_parsing_goes_on() -> None:
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


def test_pool_size_follows_the_number_of_feeds() -> None:
    assert pool_size(POOL_MIN_FEEDS - 1) == 0
    assert pool_size(POOL_MIN_FEEDS) == (os.cpu_count() or 1)
