"""End-to-end benchmark: the real ``newsalert run`` on loopback against the naive design.

    python bench/pipeline.py [--feeds 500] [--items 30] [--rules 1000] [--workers 1]

newsalert: ``--feeds`` feeds × ``--items`` items (backfilled, so every item is
matched), ``--rules`` rules in 50 watchlists, about 2 % of items matching, all
delivered to a loopback json:// webhook. Then one new item on every feed, to
measure latency from "first served by the feed server" (and from "published")
to "alert received", then idle memory.

Baseline, the design a user writes first: fetch each feed with feedparser, one
RQ job per item (plain ``rq`` SimpleWorker processes, one per core by default,
``--baseline-workers``), every rule a loop of ``\\b`` regexes, delivery through apprise.

The archive (``archive:`` in feeds.yaml, on by default; ``--archive 0`` turns it off
to compare the figures) is reported as bytes per archived item: the item as JSON
(raw), its compressed record, and what the Redis stream holds.

Prints one JSON line. Uses only 127.0.0.1 and a redis-server of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import string
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE.parent)]

import redis
from faults import FeedServer, Receiver, descendants, wait_for

from worker.core import keys
from worker.core.archive import ENTRY_OVERHEAD, scan
from worker.core.pools import IDLE_CLOSE
from worker.core.store import EmbeddedRedis

WATCHLISTS = 50
HIT_RATE = 0.02


def words(rng: random.Random, n: int, length: int) -> list[str]:
    out: set[str] = set()
    while len(out) < n:
        out.add("".join(rng.choices(string.ascii_lowercase, k=length)))
    return sorted(out)


def make_rules(rng: random.Random, n: int) -> list[tuple[str, str, str]]:
    """``n`` rules as (all-term, any-term 1, any-term 2): rare 9-letter made-up words."""
    terms = words(rng, 3 * n, 9)
    rng.shuffle(terms)
    return [(terms[3 * i], terms[3 * i + 1], terms[3 * i + 2]) for i in range(n)]


def make_item(
    rng: random.Random,
    vocab: list[str],
    feed: str,
    i: int,
    rules: list[tuple[str, str, str]],
    hit: bool,
) -> dict[str, str]:
    body = rng.choices(vocab, k=380)  # about 2.6 kB of text, like a news summary
    if hit:
        a, b, _ = rules[rng.randrange(len(rules))]
        i, j = rng.sample(range(len(body)), 2)  # distinct places, or one term overwrites the other
        body[i], body[j] = a, b
    return {
        "title": " ".join(rng.choices(vocab, k=8)),
        "description": " ".join(body),
        "link": f"https://n.example.com/story/{feed}-{i}" + ("-hit" if hit else ""),
    }


def write_config(
    root: Path,
    urls: dict[str, str],
    rules: list[tuple[str, str, str]],
    hook: str,
    interval: str,
    archive: str = "7d",
) -> None:
    (root / "watchlists").mkdir(parents=True, exist_ok=True)
    feeds = [
        "allow_private_networks: true",
        f"archive: {archive}",
        # Items link to n.example.com: full text would try to fetch beyond loopback.
        f"defaults: {{interval: {interval}, backfill: 1000, fulltext: never}}",
        "feeds:",
    ] + [f"  - {{id: {k}, url: '{v}'}}" for k, v in urls.items()]
    (root / "feeds.yaml").write_text("\n".join(feeds) + "\n")
    (root / "destinations.yaml").write_text(f"hook:\n  url: {hook}\n")
    per = len(rules) // WATCHLISTS
    for w in range(WATCHLISTS):
        lines = ["notify: [hook]", "rules:"]
        for j, (a, b, c) in enumerate(rules[w * per : (w + 1) * per]):
            lines += [f"  - id: r{w}-{j}", f"    all: [{a}]", f"    any: [{b}, {c}]"]
        (root / "watchlists" / f"w{w}.yaml").write_text("\n".join(lines) + "\n")


def cpu_seconds(pid: int) -> float:
    """Return the CPU time of a process and of its reaped children, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def status(pid: int, field: str) -> int:
    """Return a /proc/<pid>/status field in bytes (VmRSS, VmHWM), 0 when gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def role(pid: int) -> str:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    text = b" ".join(argv).decode(errors="replace")
    if "redis-server" in text:
        return "redis"
    return "run" if " run " in f"{text} " else text.split()[-1] if text else "?"


def pss(pid: int) -> int:
    """Proportional set size in bytes: shared (forked, copy-on-write) pages split fairly."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * q))], 3)


# -- baseline: one RQ job per item, regex loops, apprise -------------------------------

_compiled: list[tuple[re.Pattern[str], re.Pattern[str]]] | None = None


def baseline_job(item: dict[str, str]) -> int:
    """The naive job: every rule's regexes over the item, apprise for each hit."""
    global _compiled
    if _compiled is None:
        rules = json.loads(Path(os.environ["BASELINE_RULES"]).read_text())
        _compiled = [
            (
                re.compile(rf"\b{re.escape(a)}\b", re.IGNORECASE),
                re.compile(rf"\b({re.escape(b)}|{re.escape(c)})\b", re.IGNORECASE),
            )
            for a, b, c in rules
        ]
    text = f"{item['title']}\n{item['description']}"
    hits = [i for i, (a, bc) in enumerate(_compiled) if a.search(text) and bc.search(text)]
    if hits:
        import apprise

        box = apprise.Apprise()
        box.add(os.environ["BASELINE_HOOK"])
        box.notify(title=item["title"], body=f"rule {hits[0]}: {item['link']}")
    return len(hits)


def run_baseline(
    sock: str, urls: list[str], rules_file: Path, hook: str, workers: int, limit: float
) -> dict[str, Any]:
    import feedparser
    from rq import Queue

    client = redis.Redis(unix_socket_path=sock)
    client.flushall()
    q = Queue("baseline", connection=client)
    env = dict(
        os.environ,
        BASELINE_RULES=str(rules_file),
        BASELINE_HOOK=hook,
        PYTHONPATH=f"{HERE}:{HERE.parent}",
    )
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rq.cli",
                "worker",
                "--worker-class",
                "rq.SimpleWorker",
                "--url",
                f"unix://{sock}",
                "baseline",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    items = 0
    for url in urls:
        parsed = feedparser.parse(urllib.request.urlopen(url, timeout=30).read())
        for e in parsed.entries:
            if client.sadd("baseline:seen", e.get("id") or e.link):
                q.enqueue(
                    "pipeline.baseline_job",
                    {"title": e.title, "link": e.link, "description": e.get("summary", "")},
                )
                items += 1
    while (q.count or q.started_job_registry.count) and time.monotonic() - started < limit:
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    done = items - q.count - q.started_job_registry.count
    peak = {
        f"baseline-worker-{i}": round(status(p.pid, "VmHWM") / 2**20, 1)
        for i, p in enumerate(procs)
    }
    for p in procs:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
    return {
        "items": done,
        "seconds": round(elapsed, 1),
        "items_per_s": round(done / elapsed, 1),
        "peak_rss": peak,
    }


def archive_figures(client: redis.Redis) -> dict[str, Any]:
    """Return the archive's size: Redis bytes, record bytes and raw bytes per archived item."""
    n = client.xlen(keys.ARCHIVE)
    if not n:
        return {"items": 0}
    raw = sum(
        len(json.dumps(item.to_dict(), ensure_ascii=False).encode())
        for page in scan(client, 0)
        for item in page
    )
    records = int(client.get(keys.ARCHIVE_BYTES) or 0) - n * ENTRY_OVERHEAD
    return {
        "items": n,
        "raw_bytes_per_item": round(raw / n, 1),
        "record_bytes_per_item": round(records / n, 1),
        "redis_bytes_per_item": round(int(client.memory_usage(keys.ARCHIVE, 0) or 0) / n, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--feeds", type=int, default=500)
    ap.add_argument("--items", type=int, default=30)
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=1, help="newsalert worker processes")
    ap.add_argument("--baseline-workers", type=int, default=2, help="RQ workers: one per core")
    ap.add_argument("--interval", default="10s", help="feed interval for the latency phase")
    ap.add_argument("--baseline-items", type=int, default=600)
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--archive", default="7d", help="feeds.yaml archive: (0: off, to compare)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    vocab = words(rng, 3000, 6)
    rules = make_rules(rng, args.rules)
    tmp = Path(tempfile.mkdtemp(prefix="newsalert-bench-"))
    servers = [FeedServer() for _ in range(10)]  # feeds spread over ten "hosts"
    receiver = Receiver()
    urls, home, expected = {}, {}, set()
    for f in range(args.feeds):
        name, server = f"f{f}", servers[f % len(servers)]
        items = [
            make_item(rng, vocab, name, i, rules, rng.random() < HIT_RATE)
            for i in range(args.items)
        ]
        expected |= {it["link"].rsplit("/", 1)[1] for it in items if it["link"].endswith("-hit")}
        server.publish(name, items)
        urls[name], home[name] = server.url(name), server
    write_config(tmp / "config", urls, rules, receiver.url, args.interval, args.archive)
    (tmp / "rules.json").write_text(json.dumps(rules))
    var = tmp / "var"
    embedded = EmbeddedRedis(var, lasting=True)  # lasting: the `run` below must not take it over
    embedded.start()  # ours, so its memory can be read before newsalert writes anything
    client = redis.Redis(unix_socket_path=str(embedded.socket))
    base_mem = int(client.info("memory")["used_memory"])
    env = dict(
        os.environ,
        NEWSALERT_CONFIG=str(tmp / "config"),
        NEWSALERT_VAR=str(var),
        NEWSALERT_LOG_LEVEL="WARNING",
    )
    env.pop("REDIS_URL", None)
    env.pop("PORT", None)
    out: dict[str, Any] = {
        "machine": f"{os.cpu_count()} cores, {os.uname().machine}",
        "feeds": args.feeds,
        "items": args.feeds * args.items,
        "rules": args.rules,
        "expected_alerts": len(expected),
    }
    t0 = time.monotonic()
    run = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "run", "--workers", str(args.workers)],
        env=env,
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "run.log").open("w"),
        start_new_session=True,
    )
    try:
        pids = [run.pid, embedded.process.pid if embedded.process else 0]
        wait_for(lambda: expected <= set(receiver.stories()), 600, "every alert", step=0.2)
        wait_for(lambda: client.llen("rq:queue:newsalert-match") == 0, 60, "the match queue")
        elapsed = time.monotonic() - t0
        out["newsalert_items_per_s"] = round(out["items"] / elapsed, 1)
        out["newsalert_seconds"] = round(elapsed, 1)
        got = receiver.stories()
        out["alerts_received"], out["alerts_duplicated"] = len(set(got)), len(got) - len(set(got))
        # Latency: one new item on every feed (about a fifth of them matching).
        fresh, published = set(), {}
        for name in urls:
            hit = rng.random() < 0.2
            item = make_item(rng, vocab, name, 1000, rules, hit)
            home[name].publish(name, [item])
            story = item["link"].rsplit("/", 1)[1]
            published[story] = time.time()
            if hit:
                fresh.add(story)
        try:
            wait_for(lambda: fresh <= set(receiver.stories()), 120, "the latency-phase alerts")
        except AssertionError:
            out["latency_phase_missing"] = len(fresh - set(receiver.stories()))
            fresh &= set(receiver.stories())
        arrived = {s: r.at for r in receiver.receipts for s in r.stories if s in fresh}
        served = [arrived[s] - home[s.rsplit("-", 2)[0]].first_served[s] for s in fresh]
        total = [arrived[s] - published[s] for s in fresh]
        out["latency_from_first_fetch_s"] = {
            "p50": percentile(served, 0.5),
            "p99": percentile(served, 0.99),
            "n": len(served),
        }
        out["latency_from_publish_s"] = {
            "p50": percentile(total, 0.5),
            "p99": percentile(total, 0.99),
        }
        # Seen-sets: packed 12-byte records (``seenp:``) or the older sorted sets (``seen:``).
        seen_keys = list(client.scan_iter("newsalert:seen*", count=1000))
        remembered = sum(
            client.zcard(k) if client.type(k) == b"zset" else client.strlen(k) // 12
            for k in seen_keys
        )
        used = int(client.info("memory")["used_memory"]) - base_mem
        seen_bytes = sum(int(client.memory_usage(k) or 0) for k in seen_keys)
        item_bytes = sum(
            int(client.memory_usage(k) or 0)
            for k in client.scan_iter("newsalert:item:*", count=1000)
        )
        out["redis_bytes_per_remembered_item"] = {
            "seen_sets": round(seen_bytes / max(remembered, 1), 1),
            "all_keys": round(used / max(remembered, 1), 1),
            "item_bodies_share": round(item_bytes / max(remembered, 1), 1),
            "remembered": remembered,
        }
        out["archive"] = archive_figures(client)
        pids += descendants(run.pid)
        out["peak_rss_mb"] = {
            f"{role(p)}-{p}": round(status(p, "VmHWM") / 2**20, 1)
            for p in pids
            if status(p, "VmHWM")
        }
        # Idle: every feed polled again (304s), nothing to match, parse workers stopped.
        time.sleep(IDLE_CLOSE + 15)
        tree = [run.pid, *descendants(run.pid)]
        rss = sum(status(p, "VmRSS") for p in tree)
        out["idle_rss_mb"] = {
            "newsalert_run_tree": round(rss / 2**20, 1),
            "newsalert_run_tree_pss": round(sum(pss(p) for p in tree) / 2**20, 1),
            "processes": len(tree),
            "cpu_s": {f"{role(p)}-{p}": round(cpu_seconds(p), 1) for p in tree},
            "per_process": {f"{role(p)}-{p}": round(status(p, "VmRSS") / 2**20, 1) for p in tree},
            "embedded_redis": round(status(pids[1], "VmRSS") / 2**20, 1),
            "embedded_redis_cpu_s": round(cpu_seconds(pids[1]), 1),
            "redis_commands": int(client.info("stats")["total_commands_processed"]),
        }
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=60)
        if "idle_rss_mb" not in out:
            embedded.stop()
    n_feeds = max(1, args.baseline_items // args.items)
    base = run_baseline(
        str(embedded.socket),
        [urls[f"f{i}"] for i in range(n_feeds)],
        tmp / "rules.json",
        receiver.url,
        args.baseline_workers,
        limit=300,
    )
    out["baseline"] = base
    out["speedup"] = round(out["newsalert_items_per_s"] / max(base["items_per_s"], 0.01), 1)
    embedded.stop()
    for server in servers:
        server.close()
    receiver.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
