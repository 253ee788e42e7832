"""``worker.core.locks.hold``: one holder at a time, released only by its holder, a TTL on crash."""

from __future__ import annotations

import multiprocessing
import os
import time

from worker.core.locks import hold
from worker.core.store import connect


def test_one_holder_at_a_time(redis_client) -> None:
    with hold(redis_client, "newsalert:test:lock", 5) as first:
        with hold(redis_client, "newsalert:test:lock", 5) as second:
            assert (first, second) == (True, False)
        assert redis_client.exists("newsalert:test:lock")  # the loser did not release it
    assert not redis_client.exists("newsalert:test:lock")
    with hold(redis_client, "newsalert:test:lock", 5) as again:
        assert again


def test_a_holder_that_overran_leaves_the_next_holders_lock(redis_client) -> None:
    with hold(redis_client, "newsalert:test:lock", 0.2) as slow:
        assert slow
        time.sleep(0.4)  # the lock expired while we worked
        with hold(redis_client, "newsalert:test:lock", 5) as other:
            assert other
            # A GET-then-DEL release here could delete ``other``'s lock; ours must not.
    assert not redis_client.exists("newsalert:test:lock")  # ``other`` released its own


def _take_and_die(url: str) -> None:
    with hold(connect(url), "newsalert:test:lease", 30):
        os._exit(0)  # a crash: no release


def test_a_crashed_holder_keeps_the_lock_until_its_ttl(redis_client, redis_url) -> None:
    child = multiprocessing.get_context("spawn").Process(target=_take_and_die, args=(redis_url,))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert 25 < redis_client.ttl("newsalert:test:lease") <= 30
    with hold(redis_client, "newsalert:test:lease", 30) as mine:
        assert not mine
