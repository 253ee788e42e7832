"""Benchmark story grouping: cost per matching item with many open stories, Redis per story.

Prints one JSON line per case, comparing newsalert's grouping (``worker.stories``)
with "one alert per link", what the match job did before (a set of feeds per
canonical link), measured in the same run on the same Redis:

- ``open``: 50,000 open stories (seeded headlines + leads), then 2,000 matching
  items (half rewritten copies of open stories, half new stories) in batches
  of 100, as match jobs assign them: items/s, ms per item (wall clock, and CPU
  of this process plus Redis, which a busy machine does not inflate), Redis
  bytes per open story (``used_memory`` growth over the seeding, shared term
  counts included).
- ``labelled``: the hand-labelled clusters in tests/fixtures/stories: messages
  per story and stories that never alert, grouped against one alert per link.

``REDIS_URL`` selects a Redis (its database is flushed); else an embedded one runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.core import keys
from worker.model import Item
from worker.stories.grouping import MemoryStories
from worker.stories.store import assign

COMMON = [
    "says",
    "report",
    "new",
    "after",
    "over",
    "talks",
    "police",
    "government",
    "minister",
    "president",
    "city",
    "state",
    "year",
    "first",
    "people",
    "killed",
    "attack",
    "deal",
    "plan",
    "court",
    "election",
    "power",
    "week",
    "officials",
    "country",
    "border",
    "military",
    "workers",
    "storm",
    "fire",
    "crash",
    "vote",
    "market",
    "shares",
    "prices",
    "leader",
    "home",
    "back",
]
FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "stories" / "clusters.jsonl"


def _word(rng: random.Random) -> str:
    syll = ["ka", "ro", "mi", "tan", "vel", "dor", "si", "bra", "ul", "zen", "ko", "ria", "lo"]
    return "".join(rng.choice(syll) for _ in range(rng.randint(2, 4))).capitalize()


class Stories:
    """Seeded synthetic stories: each has rare names and numbers, told in common words."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.names = [_word(self.rng) for _ in range(40_000)]

    def story(self, n: int) -> dict[str, list[str]]:
        r = random.Random(n)
        return {
            "names": [*r.sample(self.names, 4), str(r.randint(2, 999))],
            "words": r.sample(COMMON, 6),
        }

    def item(self, n: int, copy: int, feed: str) -> Item:
        s = self.story(n)
        r = random.Random(n * 1000 + copy)
        names, words = s["names"], s["words"]
        head = [*r.sample(names[:3], 2), names[4], *r.sample(words, 3)]
        r.shuffle(head)
        lead = " ".join(names + words + r.sample(COMMON, 10)) if copy % 2 == 0 else ""
        link = f"https://{feed}.example.com/{n}/{copy}"
        return Item(id=f"{feed}-{n}-{copy}", feed=feed, title=" ".join(head), summary=lead,
                    link=link, story=f"{n}-{copy}")  # fmt: skip


def used_memory(client) -> int:
    return int(client.info("memory")["used_memory"])


def cpu(client) -> float:
    """Return CPU seconds used so far by this process and the Redis server together."""
    info = client.info("cpu")
    return time.process_time() + float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def bench_open(client, open_stories: int, new_items: int) -> dict[str, object]:
    gen = Stories()
    client.flushdb()
    now = time.time()
    before = used_memory(client)
    t0 = time.perf_counter()
    for start in range(0, open_stories, 500):
        batch = [
            gen.item(n, 0, f"feed{n % 50}") for n in range(start, min(open_stories, start + 500))
        ]
        assign(client, batch, keys.STORY_WINDOW, now)
    seed_s = time.perf_counter() - t0
    per_story = (used_memory(client) - before) / open_stories
    items = []
    for k in range(new_items):
        if k % 2 == 0:  # a copy of an open story from another outlet
            n = random.Random(k).randrange(open_stories)
            items.append(gen.item(n, 1 + k % 7, f"other{k % 30}"))
        else:  # a new story
            items.append(gen.item(open_stories + k, 0, f"feed{k % 50}"))
    t0, c0, m0 = time.perf_counter(), cpu(client), used_memory(client)
    opened = folded = wrong = 0
    for start in range(0, len(items), 100):
        batch = items[start : start + 100]
        out = assign(client, batch, keys.STORY_WINDOW, now + 1)
        for item in batch:
            a = out[item.id]
            same = a.story.split("-")[0] == item.story.split("-")[0]  # story keys are "n-copy"
            opened += a.opened
            folded += not a.opened and same
            wrong += not a.opened and not same
    grouped_s, grouped_cpu = time.perf_counter() - t0, cpu(client) - c0
    per_item = (used_memory(client) - m0) / new_items
    # Baseline: one alert per link, the match job's old per-item story bookkeeping.
    t0, c0 = time.perf_counter(), cpu(client)
    for item in items:
        client.sadd(keys.story_feeds(item.story), item.feed)
        client.expire(keys.story_feeds(item.story), keys.STORY_FEEDS_TTL)
    link_s, link_cpu = time.perf_counter() - t0, cpu(client) - c0
    return {
        "case": "open",
        "open_stories": open_stories,
        "items": new_items,
        "grouping_items_per_s": round(new_items / grouped_s),
        "grouping_ms_per_item": round(1000 * grouped_s / new_items, 3),
        "grouping_cpu_ms_per_item": round(1000 * grouped_cpu / new_items, 3),
        "per_link_items_per_s": round(new_items / link_s),
        "per_link_cpu_ms_per_item": round(1000 * link_cpu / new_items, 3),
        "cost_ratio_vs_per_link": round(grouped_s / link_s, 2),
        "bytes_per_open_story": round(per_story),
        "bytes_per_later_item": round(per_item),
        "seed_items_per_s": round(open_stories / seed_s),
        "copies": new_items // 2,
        "copies_folded": folded,
        "new_stories": new_items - new_items // 2,
        "wrong_merges": wrong,
        "opened": opened,
    }


def bench_labelled() -> dict[str, object]:
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    m = MemoryStories()
    opened: Counter[str] = Counter()
    label_of: dict[str, str] = {}
    wrong = 0
    for n, r in enumerate(rows):
        it = Item(
            id=f"i{n}",
            feed=r["feed"],
            title=r["title"],
            summary=r.get("summary", ""),
            story=f"s{n}",
        )
        a = m.assign(it, float(n))
        if a.opened:
            opened[r["story"]] += 1
            label_of[a.story] = r["story"]
        wrong += not a.opened and label_of[a.story] != r["story"]
    labels = {r["story"] for r in rows}
    multi = [s for s in labels if sum(r["story"] == s for r in rows) > 1]
    return {
        "case": "labelled",
        "items": len(rows),
        "stories": len(labels),
        "messages_per_story": round(sum(opened.values()) / len(labels), 2),
        "messages_per_multi_outlet_story": round(sum(opened[s] for s in multi) / len(multi), 2),
        "per_link_messages_per_story": round(len(rows) / len(labels), 2),
        "stories_never_alerted_pct": round(
            100 * sum(opened[s] == 0 for s in labels) / len(labels), 1
        ),
        "wrong_merges": wrong,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--open", type=int, default=50_000)
    ap.add_argument("--items", type=int, default=2_000)
    args = ap.parse_args()
    print(json.dumps(bench_labelled()), flush=True)
    with bench_redis() as client:
        print(json.dumps(bench_open(client, args.open, args.items)), flush=True)


@contextmanager
def bench_redis() -> Iterator[Any]:
    """Yield a client of ``REDIS_URL``'s Redis, else of an embedded one; flush it after."""
    from worker.core.store import EmbeddedRedis, connect

    with tempfile.TemporaryDirectory() as tmp:
        url = os.environ.get("REDIS_URL")
        embedded = None if url else EmbeddedRedis(Path(tmp) / "redis")
        try:
            client = connect(url or embedded.start())  # type: ignore[union-attr]
            yield client
            client.flushdb()
        finally:
            if embedded:
                embedded.stop()


if __name__ == "__main__":
    main()
