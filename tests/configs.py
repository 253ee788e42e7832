"""Write config directories for tests."""

from __future__ import annotations

from pathlib import Path

NK_WATCHLIST = """\
name: North Korean troops in Kursk
notify: {notify}
aliases:
  North Korean: [DPRK, Pyongyang's, North Korea's]
rules:
  - id: nk-in-kursk
    all: ["North Korean", Kursk]
    any: [soldier*, troops, army]
    none: [football]
examples:
  should_match: ["North Korean soldier captured in Kursk region"]
  should_not_match: ["South Korean team wins in Kursk"]
"""


def write_config(
    root: Path, *, feeds: str, destinations: str, watchlists: dict[str, str] | None = None
) -> Path:
    """Create ``root`` with feeds.yaml, destinations.yaml and watchlists/<id>.yaml."""
    (root / "watchlists").mkdir(parents=True, exist_ok=True)
    (root / "feeds.yaml").write_text(feeds)
    (root / "destinations.yaml").write_text(destinations)
    for wid, text in (watchlists or {}).items():
        (root / "watchlists" / f"{wid}.yaml").write_text(text)
    return root


def feeds_yaml(urls: dict[str, str], backfill: int = 10) -> str:
    # Test items link to news.example.com: fetching their "articles" would leave loopback.
    lines = [
        "allow_private_networks: true",
        f"defaults: {{interval: 1m, backfill: {backfill}, fulltext: never}}",
        "feeds:",
    ]
    for fid, url in urls.items():
        lines += [f"  - id: {fid}", f"    url: {url}", "    tags: [world]"]
    return "\n".join(lines) + "\n"
