"""Benchmark ``newsalert backtest`` and the archive it reads, against the naive way.

    python bench/backtest.py [--items 30000] [--rules 1000] [--seed S]

Archive: ``--items`` news-like items (~2.6 kB, the corpus of ``bench/match.py``)
are archived; the first 5,000 are written the way the poller writes them:
batches of 50, each item's body ``SET`` plus the archive step in one pipeline.
Reported: the time per item of that pipeline with and without the archive step
(the poller's cost), and the bytes per item: raw (the item as JSON), the
compressed record, and what Redis holds (``MEMORY USAGE`` of the stream).

Backtest: ``run_backtest`` as ``newsalert backtest --json`` runs it, with
``--rules`` rules in 50 watchlists, over the whole archive, with a sent log of
alerts for half the hits. Baseline: the naive backtest a user writes first: items kept
as plain JSON strings, one ``GET`` each, every rule a loop of ``\\b`` regexes
(``bench/match.py``'s ``Baseline``), timed on a subset (``--baseline-seconds``).
Both must find the same (item, rule) hits on the items both ran. For context it
also times the rule engine alone on the same items in memory (the ceiling) and
reports the machine's load average.

Prints one JSON line. Uses a redis-server of its own (or ``REDIS_URL``; it
flushes that database).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import redis
from match import Baseline, Corpus, make_rules, make_vocab

from worker.config import Config, load_config
from worker.core import keys
from worker.core.archive import Archive, pack, record_sent
from worker.core.store import EmbeddedRedis, connect
from worker.model import Item
from worker.rules import Engine
from worker.service.backtest import run_backtest

BATCH = 50
#: Items whose write cost, record size and engine-only speed are timed.
WRITE_SAMPLE = 5000


def make_items(corpus: Corpus, n: int) -> list[Item]:
    out = []
    for i in range(n):
        texts = corpus.item()
        out.append(
            Item(
                id=f"{i:016x}",
                feed=f"f{i % 100}",
                link=f"https://news.example.com/{i}",
                published=1_760_000_000.0 + i,
                story=f"{i:016x}",
                **texts,
            )
        )
    return out


def make_config(root: Path, specs: list) -> Config:
    """Write the rules as a config directory and load it, as ``backtest --config`` does."""
    (root / "watchlists").mkdir(parents=True, exist_ok=True)
    (root / "feeds.yaml").write_text("feeds: []\n")
    (root / "destinations.yaml").write_text("hook:\n  url: json://127.0.0.1:9/\n")
    by: dict[str, list[str]] = {}
    for s in specs:
        rule = [f"  - id: {s.id}"] + [
            f"    {key}: {json.dumps(list(terms))}"
            for key, terms in (("all", s.all), ("any", s.any), ("none", s.none))
            if terms
        ]
        by.setdefault(s.watchlist, ["notify: [hook]", "rules:"]).extend(rule)
    for wid, lines in by.items():
        (root / "watchlists" / f"{wid}.yaml").write_text("\n".join(lines) + "\n")
    return load_config(root)


def write(client: redis.Redis, items: list[Item], archive: Archive | None) -> float:
    """Store items as the poller does; return seconds per item."""
    t0 = time.perf_counter()
    for start in range(0, len(items), BATCH):
        batch = items[start : start + BATCH]
        with client.pipeline(transaction=False) as pipe:
            for it in batch:
                pipe.set(keys.item(it.id), json.dumps(it.to_dict()), ex=keys.ITEM_TTL)
            if archive is not None:
                archive.write(pipe, batch)
            pipe.execute()
    return (time.perf_counter() - t0) / len(items)


def naive(client: redis.Redis, items: list[Item], specs: list, seconds: float) -> tuple:
    """The naive backtest: one GET of a JSON item and every rule's regexes, per item."""
    with client.pipeline(transaction=False) as pipe:
        for it in items:
            pipe.set(f"bench:naive:{it.id}", json.dumps(it.to_dict()))
        pipe.execute()
    baseline = Baseline(specs)
    hits: set[tuple[str, str]] = set()
    done: list[str] = []
    t0 = time.perf_counter()
    for it in items:
        item = Item.from_dict(json.loads(client.get(f"bench:naive:{it.id}") or b"{}"))
        hits |= {(item.id, rule) for _, rule in baseline.match(item.texts())}
        done.append(item.id)
        if time.perf_counter() - t0 > seconds and len(done) >= 20:
            break
    return len(done) / (time.perf_counter() - t0), hits, set(done)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=30_000)
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=20261130)
    ap.add_argument("--baseline-seconds", type=float, default=8.0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    vocab = make_vocab(rng)
    items = make_items(Corpus(rng, vocab), args.items)
    specs = make_rules(random.Random(args.seed + 1), vocab, args.rules)
    embedded = None
    url = os.environ.get("REDIS_URL")
    if not url:
        embedded = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="newsalert-bench-")))
        url = embedded.start()
    client = connect(url)
    client.flushdb()
    try:
        out = measure(client, items, specs, args.baseline_seconds)
    finally:
        client.flushdb()
        if embedded is not None:
            embedded.stop()
    print(json.dumps(out))


def timed_backtest(client: redis.Redis, config: Config) -> tuple[float, list]:
    """Run a backtest over the whole archive as ``--json`` would; return (items/s, lines)."""
    t0 = time.perf_counter()
    window, lines = run_backtest(client, config, 86400)
    got = [json.dumps(ln.to_json()) and ln for ln in lines]
    return window.items / (time.perf_counter() - t0), got


def measure(client: redis.Redis, items: list[Item], specs: list, budget: float):
    config = make_config(Path(tempfile.mkdtemp(prefix="newsalert-bench-config-")), specs)
    timed = items[:WRITE_SAMPLE]
    plain = write(client, timed, None)
    client.flushdb()
    archive = Archive(client, 7 * 86400, 1024**3)
    archived = write(client, timed, archive)
    client.delete(*(keys.item(i.id) for i in timed))  # only the archive from here on
    for start in range(WRITE_SAMPLE, len(items), BATCH):
        with client.pipeline(transaction=False) as pipe:
            archive.write(pipe, items[start : start + BATCH])
            pipe.execute()
    n = client.xlen(keys.ARCHIVE)
    raw = sum(len(json.dumps(i.to_dict(), ensure_ascii=False).encode()) for i in items) / n
    t0 = time.perf_counter()
    records = [pack(i) for i in timed]
    pack_s = (time.perf_counter() - t0) / len(timed)
    # A sent log: every other hit "was alerted" (so half are same, half new).
    _, got = timed_backtest(client, config)
    with client.pipeline(transaction=False) as pipe:
        for ln in got[::2]:
            alert = {"watchlist": ln.watchlist, "rule": ln.rule, "item": ln.item.to_dict()}
            record_sent(pipe, [{"destination": "hook", "alert": alert}], 86400, time.time())
        pipe.execute()
    rate, got = timed_backtest(client, config)
    engine = Engine(specs)
    t0 = time.perf_counter()
    for it in timed:
        engine.match(it.texts(), highlights=False)
    engine_rate = len(timed) / (time.perf_counter() - t0)
    base_rate, base_hits, base_items = naive(client, items, specs, budget)
    ours = {(ln.item.id, ln.rule) for ln in got if ln.change != "gone" and ln.item.id in base_items}
    return {
        "bench": "backtest",
        "machine": f"{os.cpu_count()} cores, {os.uname().machine}",
        "load_average_1m": os.getloadavg()[0],
        "items": n,
        "rules": len(specs),
        "backtest_items_per_s": round(rate, 1),
        "baseline_items_per_s": round(base_rate, 2),
        "ratio": round(rate / base_rate, 1),
        # The rule engine alone on items already in memory: the ceiling.
        "engine_only_items_per_s": round(engine_rate, 1),
        "lines": {c: sum(ln.change == c for ln in got) for c in ("new", "gone", "same")},
        "agree": ours == base_hits,
        "baseline_items": len(base_items),
        "archive": {
            "raw_bytes_per_item": round(raw, 1),
            "record_bytes_per_item": round(sum(map(len, records)) / len(records), 1),
            "redis_bytes_per_item": round(int(client.memory_usage(keys.ARCHIVE, 0)) / n, 1),
            "pack_us_per_item": round(pack_s * 1e6, 1),
            "poller_write_us_per_item": round(archived * 1e6, 1),
            "poller_write_us_per_item_without_archive": round(plain * 1e6, 1),
        },
    }


if __name__ == "__main__":
    main()
