"""IdlePool: real worker processes, started by the first task and stopped when idle."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from concurrent.futures.process import BrokenProcessPool

import pytest
from faults import alive

from worker.core.pools import IdlePool


async def gone(pids: list[int], within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return not any(alive(p) for p in pids)


def test_workers_start_with_the_first_task_and_stop_when_idle() -> None:
    async def scenario() -> None:
        with IdlePool(2, idle_close=0.5) as pool:
            assert pool.pids() == []  # nothing runs before there is work
            pid = await pool.run(os.getpid)
            assert pid != os.getpid() and pid in pool.pids()
            first = pool.pids()
            deadline = time.monotonic() + 10
            while pool.pids() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert pool.pids() == [], "the idle pool was not stopped"
            assert await gone(first)
            again = await pool.run(os.getpid)  # and starts again when needed
            assert again not in first and again in pool.pids()

    asyncio.run(scenario())


def test_a_busy_pool_is_not_stopped() -> None:
    async def scenario() -> None:
        with IdlePool(1, idle_close=0.3) as pool:
            pid = await pool.run(os.getpid)
            for _ in range(10):  # a task every 0.1 s: never idle for 0.3 s
                await asyncio.sleep(0.1)
                assert await pool.run(os.getpid) == pid

    asyncio.run(scenario())


def test_a_killed_worker_fails_its_task_and_the_next_starts_a_new_pool() -> None:
    async def scenario() -> None:
        with IdlePool(1) as pool:
            pid = await pool.run(os.getpid)
            os.kill(pid, signal.SIGKILL)
            assert await gone([pid])
            await asyncio.sleep(0.2)  # let the pool notice
            with pytest.raises(BrokenProcessPool):
                await pool.run(os.getpid)
            new = await pool.run(os.getpid)
            assert new != pid and alive(new)

    asyncio.run(scenario())


def test_a_slow_task_times_out() -> None:
    async def scenario() -> None:
        with IdlePool(1) as pool, pytest.raises(TimeoutError):
            await pool.run(time.sleep, 2, timeout=0.2)

    asyncio.run(scenario())


def test_without_workers_tasks_run_in_a_thread_of_this_process() -> None:
    async def scenario() -> None:
        with IdlePool(0) as pool:
            assert await pool.run(os.getpid) == os.getpid()
            assert pool.pids() == []

    asyncio.run(scenario())


def test_one_pool_serves_successive_event_loops() -> None:
    pool = IdlePool(1, idle_close=0.5)  # like the poller's extractor, shared across rounds
    try:
        first = asyncio.run(pool.run(os.getpid))

        async def later() -> None:
            assert await pool.run(os.getpid) == first
            deadline = time.monotonic() + 10
            while pool.pids() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert pool.pids() == [], "not stopped when its first event loop had ended"

        asyncio.run(later())
    finally:
        pool.close()


TRACKER_SCRIPT = """
import asyncio, os, subprocess, sys, time
from worker.core.pools import IdlePool

def children():
    ps = ["ps", "-ww", "--ppid", str(os.getpid()), "-o", "args", "--no-headers"]  # -ww: no cut
    return [c for c in subprocess.run(ps, capture_output=True, text=True).stdout.splitlines()
            if not c.startswith("ps ")]

async def main():
    pool = IdlePool(2, idle_close=2.0)  # long enough to see the tracker under load
    for _ in range(2):  # twice: the second pool starts a new tracker
        await pool.run(os.getpid)
        print("busy", any("resource_tracker" in c for c in children()))
        deadline = time.monotonic() + 30
        while children() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        print("idle", children())

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_the_resource_tracker_stops_with_the_last_idle_pool(tmp_path) -> None:
    """An idle poller holds no multiprocessing process at all, and nothing leaks or warns."""
    script = tmp_path / "pools_tracker.py"
    script.write_text(TRACKER_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.splitlines() == ["busy True", "idle []"] * 2
    assert done.stderr == ""  # no "leaked semaphore" warning from the tracker
