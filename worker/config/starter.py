"""``newsalert init``: write the commented starter config that ships inside the package.

Decisions:

- The starter files are package data (``skeleton/``), so someone who installed
  newsalert from PyPI, without this repository, gets them. A test runs
  ``check`` on what ``init`` writes, and on its commented destinations
  uncommented, so the starter cannot drift from what ``check`` accepts.
- ``init`` never overwrites: when the directory already holds a config file
  it would write (``feeds.yaml``, ``destinations.yaml`` or any watchlist),
  it writes nothing and says which file is in the way.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from worker.errors import NewsAlertError

__all__ = ["next_commands", "starter_files", "write_starter"]


def starter_files() -> dict[str, str]:
    """Return the starter config as {path relative to the config directory: text}."""
    root = files("worker.config").joinpath("skeleton")
    out: dict[str, str] = {}

    def walk(node: Traversable, prefix: str) -> None:
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            elif child.name.endswith(".yaml"):
                out[prefix + child.name] = child.read_text(encoding="utf-8")

    walk(root, "")
    return out


def write_starter(target: Path) -> list[Path]:
    """Write the starter config into ``target``; raise ``NewsAlertError`` if one is there."""
    starter = starter_files()
    in_the_way = [target / name for name in ("feeds.yaml", "destinations.yaml")]
    in_the_way += sorted((target / "watchlists").glob("*.yaml"))
    present = [p for p in in_the_way if p.exists()]
    if present:
        raise NewsAlertError(
            f"{present[0]} already exists: init never overwrites a config "
            "(pick another directory, or edit this one)"
        )
    written = []
    for name, text in starter.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as fh:  # "x": a file that appeared meanwhile stays
            fh.write(text)
        written.append(path)
    return written


def next_commands(target: Path, default: Path) -> list[str]:
    """Return the three commands to run next on the config in ``target``."""
    flag = "" if target.resolve() == default.resolve() else f" --config {target}"
    return [
        f"newsalert check{flag}      # validate it and run the watchlist's examples",
        f"newsalert try{flag}        # what the watchlist matches in the feeds right now",
        f"newsalert run{flag}        # poll and alert (first poll: remembers what is there)",
    ]
