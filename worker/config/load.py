"""Load and validate ``config/`` into one immutable, versioned ``Config``.

Layout (README "Feeds", "Watchlists and rules", "Destinations"): ``feeds.yaml``,
``destinations.yaml``, optional ``aliases.yaml`` and ``watchlists/*.yaml`` (a
watchlist's id is its file name), each read by its own module here. Every
problem found is reported at once as ``path:line:col: message`` through one
``ConfigError``; nothing is read from the environment except the ``${VAR}``
references in ``destinations.yaml``, and a missing variable is named, never
its value.

The version is a hash of the files' bytes, so every process that reads the
same files agrees on it; environment values do not change it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from worker.config.destinations import load_destinations
from worker.config.feeds import load_feeds
from worker.config.schema import (
    Checker,
)
from worker.config.settings import (
    ID_PATTERN,
    Config,
)
from worker.config.watchlists import load_aliases, load_watchlist
from worker.errors import ConfigError


def config_files(root: Path) -> list[Path]:
    """Return the files that make up a config directory, in a stable order."""
    files = [root / name for name in ("feeds.yaml", "destinations.yaml", "aliases.yaml")]
    files += sorted((root / "watchlists").glob("*.yaml"))
    return [f for f in files if f.is_file()]


def config_version(root: Path) -> str:
    """Return the content hash of a config directory (12 hex digits)."""
    digest = hashlib.sha256()
    for path in config_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def load_config(root: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Load and validate a config directory; raise ``ConfigError`` listing every problem."""
    root_path = Path(root).resolve()
    ld = Checker(root_path, os.environ if env is None else env)
    if not root_path.is_dir():
        raise ConfigError([(str(root), 1, 1, "config directory not found")])
    loaded = load_feeds(ld)
    feeds = loaded.feeds
    destinations = load_destinations(ld)
    aliases_path = root_path / "aliases.yaml"
    shared_aliases = load_aliases(ld, aliases_path, ld.load(aliases_path, required=False))
    feed_ids = {f.id for f in feeds}
    watchlists = []
    for path in sorted((root_path / "watchlists").glob("*.yaml")):
        if not ID_PATTERN.match(path.stem):
            ld.error(
                path, (0, 0), f"watchlist file name {path.name!r}: use letters, digits, '-', '_'"
            )
            continue
        wl = load_watchlist(
            ld, path, shared_aliases, destinations, feed_ids, loaded.languages, loaded.stories
        )
        if wl is not None:
            watchlists.append(wl)
    if ld.problems:
        raise ConfigError(ld.problems)
    return Config(
        root=str(root_path),
        version=config_version(root_path),
        feeds=feeds,
        watchlists=tuple(watchlists),
        destinations=destinations,
        allow_private_networks=loaded.allow_private,
        fetch=loaded.fetch,
        websub_callback=loaded.websub_callback,
        archive=loaded.archive[0],
        archive_max=loaded.archive[1],
        stories=loaded.stories,
    )
