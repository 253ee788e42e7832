"""Benchmark full-text extraction and the latency it adds to an alert.

Run: ``python bench/fulltext.py [--pages N] [--items N] [--seed S]``. Prints one
JSON line. Everything is seeded, so runs repeat.

Pages are generated to look like real news pages: ~0.5–1.5 k words of story in
``<p>`` tags, a navigation bar of 40 links, a cookie banner, a "related
stories" block, PREV/NEXT teasers, 3–15 comments, a footer, and the inline
scripts, JSON-LD and CSS that make real pages 100–250 kB. Boilerplate uses
words of its own ("zzboiler…"), so leaking it into the text is measurable.

Measured:

- **extraction**: pages/s and CPU ms per page of ``worker.poll.fulltext.extract_text``
  (trafilatura), against the naive baseline of stripping the whole page with
  the rule engine's ``html_to_text``, with the share of boilerplate words and
  of story words each keeps;
- **added latency per alert**: ``Articles.add`` on one new item at a time over
  loopback, once with an instant server and once with a server that takes
  ``--server-latency`` (50 ms) per answer, as a real one does (robots.txt cached after the first; fetch + extract + Redis), p50
  and p95; and the wall time for a batch of ``--items`` new items (extraction
  in the default single extraction process, then with one per core), against the
  naive baseline of fetching and extracting them one after the other.

Redis: ``REDIS_URL`` when set, else an embedded redis-server in a temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.config import Config, Feed
from worker.core.pools import IdlePool
from worker.core.store import EmbeddedRedis, connect
from worker.model import Item
from worker.poll.fetch import Fetcher
from worker.poll.fulltext import Articles, extract_text
from worker.rules import html_to_text

WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "on",
    "was",
    "with",
    "as",
    "by",
    "at",
    "from",
    "his",
    "it",
    "said",
    "he",
    "be",
    "has",
    "have",
    "are",
    "were",
    "its",
    "an",
    "which",
    "not",
    "but",
    "their",
    "they",
    "had",
    "this",
    "been",
    "after",
    "who",
    "will",
    "also",
    "more",
    "would",
    "than",
    "one",
    "government",
    "minister",
    "president",
    "troops",
    "army",
    "soldier",
    "military",
    "attack",
    "police",
    "court",
    "election",
    "ceasefire",
    "talks",
    "summit",
    "sanctions",
    "missile",
    "drone",
    "region",
    "city",
    "officials",
    "spokesman",
    "report",
    "killed",
    "wounded",
    "captured",
    "prisoner",
    "korean",
    "north",
    "south",
    "seoul",
    "pyongyang",
    "kursk",
    "ukraine",
    "russia",
]


def _sentence(rng: random.Random, words: list[str], n: int) -> str:
    return " ".join(rng.choice(words) for _ in range(n)).capitalize() + "."


def make_page(rng: random.Random, n: int) -> tuple[bytes, set[str]]:
    """Return one realistic article page and the set of its story words."""
    boiler = [f"zzboiler{i}" for i in range(60)]
    paras = [
        " ".join(_sentence(rng, WORDS, rng.randint(12, 28)) for _ in range(rng.randint(2, 5)))
        for _ in range(rng.randint(8, 20))
    ]
    story = "\n".join(f"<p>{html.escape(p)}</p>" for p in paras)
    nav = "".join(f'<li><a href="/s{i}">{_sentence(rng, boiler, 2)}</a></li>' for i in range(40))
    related = "".join(f'<li><a href="/r{i}">{_sentence(rng, boiler, 8)}</a></li>' for i in range(8))
    comments = "".join(
        f'<div class="comment"><p>{_sentence(rng, boiler, rng.randint(8, 40))}</p></div>'
        for _ in range(rng.randint(3, 15))
    )
    script = (
        "var cfg=" + json.dumps({f"k{i}": "x" * rng.randint(20, 200) for i in range(400)}) + ";"
    )
    css = "".join(f".c{i}{{margin:{i}px;color:#{i:06x}}}" for i in range(800))
    ld = json.dumps(
        {"@type": "NewsArticle", "headline": paras[0][:80], "isAccessibleForFree": True}
    )
    page = f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>Story {n} | Daily</title><style>{css}</style>
<script type="application/ld+json">{ld}</script><script>{script}</script></head><body>
<div class="cookie-consent"><p>{_sentence(rng, boiler, 25)}</p><button>Accept</button></div>
<header><nav class="main-nav"><ul>{nav}</ul></nav></header>
<main><article><h1>Story {n}</h1><div class="byline">By Reporter</div>
<div class="entry-content">{story}</div></article>
<aside class="related-stories"><h3>Related stories</h3><ul>{related}</ul></aside>
<nav class="post-navigation"><a href="/p">PREV {_sentence(rng, boiler, 9)}</a>
<a href="/n">NEXT {_sentence(rng, boiler, 9)}</a></nav>
<section class="comments">{comments}</section></main>
<footer><p>{_sentence(rng, boiler, 30)}</p></footer><script>{script}</script></body></html>"""
    return page.encode(), {w for p in paras for w in p.lower().replace(".", "").split()}


def _quality(text: str, story: set[str]) -> tuple[float, float]:
    """Return (share of output words that are boilerplate, share of story words kept)."""
    words = text.lower().replace(".", " ").split()
    boiler = sum(w.startswith("zzboiler") for w in words)
    return boiler / max(1, len(words)), len(story & set(words)) / max(1, len(story))


def bench_extraction(pages: list[tuple[bytes, set[str]]]) -> dict[str, Any]:
    """Time trafilatura against whole-page stripping on the same pages."""
    out: dict[str, Any] = {}
    extract_text(pages[0][0], "https://news.example.com/0")  # import and warm up
    for name, fn in (
        ("trafilatura", lambda b: extract_text(b, "https://news.example.com/a")),
        ("naive_html_to_text", lambda b: html_to_text(b.decode())),
    ):
        cpu, wall = time.process_time(), time.perf_counter()
        texts = [fn(body) for body, _ in pages]
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        leak, kept = zip(
            *(_quality(t, story) for t, (_, story) in zip(texts, pages, strict=False)), strict=False
        )
        out[name] = {
            "pages_per_s": round(len(pages) / wall, 1),
            "cpu_ms_per_page": round(cpu * 1000 / len(pages), 2),
            "boilerplate_share": round(statistics.mean(leak), 4),
            "story_words_kept": round(statistics.mean(kept), 4),
        }
    return out


class _Site:
    """A threaded loopback server for the generated pages."""

    def __init__(self, pages: list[bytes], delay: float = 0.0) -> None:
        self.delay = delay
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                n = self.path.rsplit("/", 1)[-1]
                body = pages[int(n) % len(pages)] if n.isdigit() else b""
                time.sleep(site.delay)  # a real server's think time and distance
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"


async def bench_latency(client: Any, base: str, items: int) -> dict[str, Any]:
    """Time ``Articles.add`` per alert, in a batch, and fetched one after the other."""
    config = Config(
        root=".",
        version="bench",
        feeds=(Feed(id="bench", url=base),),
        watchlists=(),
        destinations={},
        allow_private_networks=True,
    )

    def item(tag: str, n: int) -> Item:
        return Item(id=f"{tag}{n}", feed="bench", title="Teaser", link=f"{base}/{tag}/{n}")

    async with Fetcher(allow_private=True) as fetcher:
        articles = Articles(client, config)
        await articles.add(fetcher, [item("warm", 0)])  # robots.txt, the extraction process
        single = []
        for n in range(items):
            t = time.perf_counter()
            await articles.add(fetcher, [item("one", n)])
            single.append(time.perf_counter() - t)
        t = time.perf_counter()
        batch = await articles.add(fetcher, [item("batch", n) for n in range(items)])
        batch_s = time.perf_counter() - t
        # The same batch with one extraction process per core.
        with IdlePool(os.cpu_count() or 1) as pool:
            procs = Articles(client, config, extractor=pool)
            await procs.add(fetcher, [item("pwarm", 0)])
            t = time.perf_counter()
            await procs.add(fetcher, [item("pbatch", n) for n in range(items)])
            process_s = time.perf_counter() - t
        t = time.perf_counter()
        for n in range(items):  # baseline: no overlap between fetching and extracting
            res = await fetcher.fetch(f"{base}/seq/{n}")
            extract_text(res.body, res.url)
        sequential_s = time.perf_counter() - t
    assert all(i.article for i in batch)
    single.sort()
    return {
        "per_alert_ms_p50": round(statistics.median(single) * 1000, 1),
        "per_alert_ms_p95": round(single[int(0.95 * (len(single) - 1))] * 1000, 1),
        "batch_items": items,
        "batch_s": round(batch_s, 3),
        "batch_process_pool_s": round(process_s, 3),
        "sequential_s": round(sequential_s, 3),
        "batch_speedup_vs_sequential": round(sequential_s / batch_s, 2),
        "process_pool_speedup_vs_sequential": round(sequential_s / process_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument(
        "--server-latency",
        type=float,
        default=0.05,
        help="seconds the article server waits before answering, second run",
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    pages = [make_page(rng, n) for n in range(args.pages)]
    extraction = bench_extraction(pages)
    site = _Site([body for body, _ in pages])
    with tempfile.TemporaryDirectory() as tmp:
        embedded = None if os.environ.get("REDIS_URL") else EmbeddedRedis(tmp)
        url = os.environ["REDIS_URL"] if embedded is None else embedded.start()
        client = connect(url)
        client.flushdb()
        try:
            latency = {}
            for delay in (0.0, args.server_latency):
                client.flushdb()
                site.delay = delay
                latency[f"server_{delay * 1000:.0f}ms"] = asyncio.run(
                    bench_latency(client, site.base, args.items)
                )
        finally:
            client.flushdb()
            if embedded is not None:
                embedded.stop()
    site.httpd.shutdown()
    t, naive = extraction["trafilatura"], extraction["naive_html_to_text"]
    print(
        json.dumps(
            {
                "bench": "fulltext",
                "pages": args.pages,
                "page_kb_mean": round(statistics.mean(len(b) for b, _ in pages) / 1024, 1),
                "extraction": extraction,
                "cpu_ratio_trafilatura_vs_naive": round(
                    t["cpu_ms_per_page"] / naive["cpu_ms_per_page"], 2
                ),
                "latency": latency,
            }
        )
    )


if __name__ == "__main__":
    main()
