"""``worker.core.retry.backoff``: doubling from the base, jitter inside the cap, no overflow."""

from __future__ import annotations

import pytest

from worker.core.retry import backoff


def test_doubles_from_the_base_up_to_the_cap() -> None:
    assert [backoff(1, n, 60) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff(0.05, 0, 0.25) == 0.05  # no failure yet still waits the base


@pytest.mark.parametrize("failures", [1, 5, 8, 20, 10_000])
def test_jitter_stays_within_its_share_and_under_the_cap(failures: int) -> None:
    plain = backoff(600, failures, 21600)
    waits = [backoff(600, failures, 21600, jitter=0.1) for _ in range(200)]
    assert all(0.9 * plain <= w <= min(1.1 * plain, 21600) for w in waits)
    assert len(set(waits)) > 1 or plain == 21600
