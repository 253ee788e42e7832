"""Redis replies as Python text: our clients return bytes."""

from __future__ import annotations


def text(value: bytes | str) -> str:
    """Return a Redis reply (bytes, or text already) as text."""
    return value.decode() if isinstance(value, bytes) else value
