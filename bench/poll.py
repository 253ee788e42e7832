"""Benchmark the poller against the naive baseline: ``python bench/poll.py [--sizes 200,1000]``.

A feed server runs in a separate process (its CPU is not ours) and answers
every request after 50 ms, with ETags. Each poll runs as a fresh
``python bench/poll.py --poll`` process, so wall time includes process
start, and CPU is the process plus its parse workers. Phases per size:

- ``first``: first poll of N new feeds (backfill 0: ids only, nothing parsed)
- ``changed``: every feed has 3 new items (full parse of every feed)
- ``p304``: nothing changed, every answer a 304
- ``unchanged``: only ``<lastBuildDate>`` changed (200, pre-scan, no parse)
- ``mixed``: 10% of the feeds have 3 new items, the rest answer 304

The baseline is what a user writes first: sequential ``feedparser.parse(url)``,
timed on a subset and extrapolated (said so in the output). Every feed is on
127.0.0.1, so the per-host connection limit is raised to the global one to
stand in for many hosts. One JSON line per size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
LATENCY = 0.05
ITEMS = 30
BASELINE_SUBSET = 40
WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
]


def feed_body(i: int, gen: int, build: int) -> bytes:
    """Return feed i's RSS: 30 items, 3 new per generation, ~60 kB."""
    parts = []
    for j in range(gen * 3 + ITEMS - 1, gen * 3 - 1, -1):
        text = " ".join(WORDS[(i + j + k) % len(WORDS)] for k in range(120))
        parts.append(
            f"<item><title>Feed {i} story {j}: {' '.join(WORDS[(j + k) % 20] for k in range(8))}"
            f"</title><link>https://site{i}.example.com/news/{j}?utm_source=rss</link>"
            f"<guid isPermaLink='false'>site{i}-{j}</guid>"
            f"<pubDate>Mon, 0{1 + j % 9} Jun 2026 10:{j % 60:02d}:00 GMT</pubDate>"
            f"<description>{text[:300]}</description>"
            f"<content:encoded><![CDATA[<p>{text}</p><p><b>{text[:400]}</b></p>"
            f"<p><a href='https://x.example.com/{j}'>{text[:300]}</a></p>]]></content:encoded></item>"
        )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
        f'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
        f"<title>Feed {i}</title><link>https://site{i}.example.com/</link>"
        f"<description>bench</description><lastBuildDate>Mon, 01 Jun 2026 10:00:{build % 60:02d} GMT"
        f"</lastBuildDate>{''.join(parts)}</channel></rss>"
    ).encode()


def serve(port_file: str) -> None:
    """Run the feed server (its own process) until killed."""
    from aiohttp import web

    gens: dict[int, int] = {}
    build = [0]
    cache: dict[tuple[int, int, int], tuple[bytes, str]] = {}

    async def feed(request: web.Request) -> web.Response:
        await asyncio.sleep(LATENCY)
        i = int(request.match_info["i"])
        key = (i, gens.get(i, 0), build[0])
        if key not in cache:
            body = feed_body(*key)
            cache[key] = body, f'"{key[0]}-{key[1]}-{key[2]}"'
        body, etag = cache[key]
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(
            body=body, headers={"ETag": etag, "Content-Type": "application/rss+xml"}
        )

    async def control(request: web.Request) -> web.Response:
        doc = await request.json()
        for i in doc.get("advance", []):
            gens[i] = gens.get(i, 0) + 1
        build[0] += int(doc.get("build", 0))
        cache.clear()
        return web.Response(text="ok")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/feed/{i}.xml", feed)
        app.router.add_post("/control", control)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        Path(port_file).write_text(str(runner.addresses[0][1]))
        await asyncio.Event().wait()

    asyncio.run(main())


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def poll(n: int, redis_url: str, base: str) -> None:
    """Poll n feeds once in this process and print what it cost (the measured child)."""
    started = time.perf_counter()
    from worker.config import Config, Feed
    from worker.core.store import connect
    from worker.poll.fetch import FetchLimits
    from worker.poll.parse_pool import ParsePool
    from worker.poll.poller import Poller
    from worker.service.queue import enqueue_match

    class MeasuredPool(ParsePool):
        cpu = 0.0
        maxrss = 0

        def close(self) -> None:
            MeasuredPool.cpu = sum(_proc_cpu(p) for p in self.pids())
            super().close()

    # Items link to siteN.example.com: full text would try to fetch beyond loopback.
    feeds = tuple(Feed(f"bench-{i}", f"{base}/feed/{i}.xml", fulltext="never") for i in range(n))
    conf = Config(
        root="",
        version="bench",
        feeds=feeds,
        watchlists=(),
        destinations={},
        allow_private_networks=True,
    )
    poller = Poller(
        connect(redis_url),
        conf,
        enqueue=enqueue_match,
        limits=FetchLimits(concurrency=100, per_host=100),
    )
    poller.pool = MeasuredPool()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    outs = asyncio.run(poller.poll_all())
    elapsed = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "poll_s": elapsed,
                "in_process_s": time.perf_counter() - started,
                "cpu_poll_s": time.process_time() - cpu0 + MeasuredPool.cpu,
                "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "workers_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                "polled": len(outs),
                "errors": sum(1 for o in outs if o.error),
                "parsed": poller.parses,
                "statuses": sorted({o.status or 0 for o in outs}),
                "new": sum(o.new for o in outs),
                "marked_seen": sum(o.marked_seen for o in outs),
            }
        )
    )


def run_phase(n: int, redis_url: str, base: str) -> dict:
    """Run one measured poll process; return its figures plus wall time and tree CPU."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--poll",
            str(n),
            "--redis",
            redis_url,
            "--base",
            base,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode:
        raise SystemExit(out.stderr)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    figures["wall_s"] = wall
    figures["cpu_total_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return figures


def baseline(base: str, n: int) -> dict:
    """Time sequential feedparser.parse(url) on a subset of n feeds."""
    import feedparser

    k = min(n, BASELINE_SUBSET)
    cpu0, t0 = time.process_time(), time.perf_counter()
    for i in range(k):
        feedparser.parse(f"{base}/feed/{i}.xml")
    per = (time.perf_counter() - t0) / k
    return {
        "subset": k,
        "s_per_feed": per,
        "cpu_per_feed": (time.process_time() - cpu0) / k,
        "extrapolated_s": per * n,
    }


def redis_memory(client, n: int) -> dict:
    """Return bytes per remembered item: our packed seen-sets and the sorted-set alternative."""
    from worker.core import keys

    packed = sum(client.memory_usage(keys.seen_packed(f"bench-{i}")) or 0 for i in range(n))
    # The alternative: a sorted set of 8-byte ids per feed, scored by an integer time.
    ids = [os.urandom(8) for _ in range(1000)]
    client.zadd("bench:zset:small", {m: 1_800_000_000 for m in ids[:ITEMS]})
    client.zadd("bench:zset:big", {m: 1_800_000_000 for m in ids})
    small = client.memory_usage("bench:zset:small") / ITEMS
    big = client.memory_usage("bench:zset:big") / 1000
    encoding = client.object("encoding", "bench:zset:big").decode()
    client.delete("bench:zset:small", "bench:zset:big")
    return {
        "packed_bytes_per_item": packed / (n * ITEMS),
        "zset_30_bytes_per_item": small,
        f"zset_1000_{encoding}_bytes_per_item": big,
    }


def control(base: str, **doc: object) -> None:
    req = urllib.request.Request(
        f"{base}/control",
        data=json.dumps(doc).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(req, timeout=10).read()


def bench_size(n: int, client, redis_url: str, base: str) -> dict:
    client.flushdb()
    control(base, advance=[], build=1)
    base_fig = baseline(base, n)
    first = run_phase(n, redis_url, base)
    mem = redis_memory(client, n)
    control(base, advance=list(range(n)))
    changed = run_phase(n, redis_url, base)
    p304 = run_phase(n, redis_url, base)
    control(base, build=1)
    unchanged = run_phase(n, redis_url, base)
    control(base, advance=list(range(0, n, 10)))
    mixed = run_phase(n, redis_url, base)
    per_feed = mixed["cpu_poll_s"] / n
    return {
        "feeds": n,
        "cores": os.cpu_count(),
        "latency_ms": LATENCY * 1000,
        "baseline": {**base_fig, "note": f"timed on {base_fig['subset']} feeds, extrapolated"},
        "first_poll": {
            "wall_s_incl_start": first["wall_s"],
            "feeds_per_s": n / first["wall_s"],
            "cpu_s": first["cpu_total_s"],
            "cpu_poll_only_s": first["cpu_poll_s"],
            "parsed": first["parsed"],
        },
        "speedup_first_vs_baseline": base_fig["extrapolated_s"] / first["wall_s"],
        "changed_poll": {
            "wall_s_incl_start": changed["wall_s"],
            "feeds_per_s": n / changed["wall_s"],
            "cpu_s": changed["cpu_total_s"],
            "cpu_poll_only_s": changed["cpu_poll_s"],
            "parsed": changed["parsed"],
        },
        "speedup_changed_vs_baseline": base_fig["extrapolated_s"] / changed["wall_s"],
        "poll_304": {
            "wall_s_incl_start": p304["wall_s"],
            "feeds_per_s": n / p304["wall_s"],
            "cpu_s": p304["cpu_total_s"],
            "cpu_poll_only_s": p304["cpu_poll_s"],
            "statuses": p304["statuses"],
        },
        "cpu_ratio_first_vs_304": first["cpu_total_s"] / p304["cpu_total_s"],
        "cpu_ratio_first_vs_304_poll_only": first["cpu_poll_s"] / p304["cpu_poll_s"],
        "cpu_ratio_changed_vs_304": changed["cpu_total_s"] / p304["cpu_total_s"],
        "cpu_ratio_changed_vs_304_poll_only": changed["cpu_poll_s"] / p304["cpu_poll_s"],
        "unchanged_poll": {
            "cpu_poll_only_s": unchanged["cpu_poll_s"],
            "parsed": unchanged["parsed"],
        },
        "mixed_10pct_poll": {"cpu_poll_only_s": mixed["cpu_poll_s"], "parsed": mixed["parsed"]},
        "feeds_per_core_at_5min_10pct_changing": int(300 / per_feed),
        "peak_rss_mb": max(r["rss_mb"] for r in (first, changed, p304, unchanged, mixed)),
        "peak_worker_rss_mb": max(r["workers_rss_mb"] for r in (first, changed, p304, mixed)),
        "redis": mem,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="200,1000")
    ap.add_argument("--serve")
    ap.add_argument("--poll", type=int)
    ap.add_argument("--redis")
    ap.add_argument("--base")
    args = ap.parse_args()
    if args.serve:
        return serve(args.serve)
    if args.poll:
        return poll(args.poll, args.redis, args.base)
    from worker.core.store import EmbeddedRedis, connect

    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file)])
        embedded = None
        try:
            for _ in range(200):
                if port_file.exists() and port_file.read_text():
                    break
                time.sleep(0.05)
            base = f"http://127.0.0.1:{port_file.read_text()}"
            redis_url = os.environ.get("REDIS_URL")
            if not redis_url:
                embedded = EmbeddedRedis(Path(tmp) / "redis")
                redis_url = embedded.start()
            client = connect(redis_url)
            for n in (int(s) for s in args.sizes.split(",")):
                print(json.dumps(bench_size(n, client, redis_url, base)), flush=True)
        finally:
            server.kill()
            server.wait()
            if embedded:
                embedded.stop()


if __name__ == "__main__":
    main()
