"""The ``archive`` settings of ``feeds.yaml``: how long accepted items are kept for ``backtest``."""

from __future__ import annotations

from pathlib import Path

from worker.config.schema import Checker, parse_duration, parse_size
from worker.config.yamlfile import Map

#: Top-level keys of feeds.yaml read here.
ARCHIVE_KEYS = frozenset({"archive", "archive_max"})
#: ``archive: 7d`` unless set; ``archive: 0`` turns the archive off.
ARCHIVE_DEFAULT = 7 * 86400.0
#: ``archive_max: 200MiB`` unless set: the bound on the compressed records.
ARCHIVE_MAX_DEFAULT = 200 * 1024**2


def archive_settings(ld: Checker, path: Path, top: Map | None) -> tuple[float, int]:
    """Return feeds.yaml's ``archive`` (seconds, 0 = off) and ``archive_max`` (bytes)."""
    if top is None:
        return ARCHIVE_DEFAULT, ARCHIVE_MAX_DEFAULT
    keep = ld.convert(path, top, "archive", parse_duration, ARCHIVE_DEFAULT)
    cap = ld.convert(path, top, "archive_max", parse_size, ARCHIVE_MAX_DEFAULT)
    if keep and cap < 1024**2:
        ld.error(path, ld.value_pos(top, "archive_max"), "archive_max must be at least 1MiB")
    return keep, cap
