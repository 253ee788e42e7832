"""Helpers for tests that run real ``newsalert`` processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def newsalert(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``newsalert ARGS`` in ``cwd`` without the caller's REDIS_URL or NEWSALERT_CONFIG."""
    base = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "NEWSALERT_CONFIG")}
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**base, **env},
        cwd=cwd,
    )


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Return once ``predicate()`` is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
