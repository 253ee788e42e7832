"""Benchmark story grouping on real multi-outlet clusters: messages per story, swallowed stories.

The Google News feeds of ``../shared/corpus/feeds`` list, for each story, several
outlets' headlines of it (``tests/storyclusters.py``). Every headline becomes an item
of its own (its outlet as feed, its own URL) and goes, interleaved with the other
stories and with the rest of the corpus as background traffic, through the Redis
grouping the match job uses, for a watchlist that matches everything. Prints one
JSON line per cluster file and seed set, with "one alert per link" (what a
watchlist got before: every copy has its own URL, so every copy is a message).

``REDIS_URL`` selects a Redis (its database is flushed); else an embedded one runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE.parent)]

from stories import bench_redis
from storyclusters import CLUSTER_FILES, background, clusters, stream

FEEDS = HERE.parents[1] / "shared" / "corpus" / "feeds"


def measure(client, name: str, groups, extra, seeds: range) -> dict[str, object]:
    """Return the figures of one cluster set, averaged over arrival orders (worst one too)."""
    sizes = {g[0].story: len(g) for g in groups}
    runs, t0 = [], time.perf_counter()
    for seed in seeds:
        runs.append(stream(client, groups, extra, seed).report(sizes))
    mean = {k: round(sum(r[k] for r in runs) / len(runs), 2) for k in runs[0]}
    return {
        "case": "real-clusters",
        "file": name,
        "background_items": len(extra),
        "stories": len(groups),
        "copies": sum(sizes.values()),
        "orders": len(runs),
        **mean,
        "worst_messages_per_story": max(r["messages_per_story"] for r in runs),
        "worst_never_alerted_pct": max(r["never_alerted_pct"] for r in runs),
        "per_link_messages_per_story": round(sum(sizes.values()) / len(sizes), 2),
        "messages_ratio_vs_per_link": round(
            mean["messages_per_story"] / (sum(sizes.values()) / len(sizes)), 3
        ),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5, help="arrival orders per file")
    ap.add_argument("--no-background", action="store_true", help="only the labelled headlines")
    args = ap.parse_args()
    if not FEEDS.exists():
        sys.exit(f"shared corpus not found: {FEEDS}")
    extra = [] if args.no_background else background(FEEDS)
    with bench_redis() as client:
        for name in CLUSTER_FILES:
            row = measure(client, name, clusters(FEEDS / name), extra, range(1, args.seeds + 1))
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
