"""Find the shared data directory (seed article, real feeds) next to the repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def shared_dir(*parts: str) -> Path:
    """Return ``../shared/<parts>``; skip the test if it is missing, fail instead under CI=true."""
    path = Path(__file__).resolve().parents[2].joinpath("shared", *parts)
    if not path.exists():
        message = f"shared data not found: {path}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path
