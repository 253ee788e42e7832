"""Benchmark the rule engine against the naive approach (one ``re`` regex per term).

Run: ``python bench/match.py [--items N] [--sizes 10,100,1000,10000] [--seed S]``.
Prints one JSON line per rule-set size. Everything is seeded, so runs repeat.

The corpus is news-like: ~2.6 kB items (title, summary, content) of words drawn
from a Zipf distribution over common English words, real news words and a long
tail of made-up proper nouns. Rules mix all/any/none, phrases and prefixes.
The baseline compiles each term to a ``\\b…\\b`` regex (IGNORECASE) and loops over
every rule for every item, short-circuiting like an ordinary Python ``all``/``any``;
it is timed on a subset of items at large sizes (``--baseline-seconds``).
Both must produce the same (item, rule) hit set on the items both ran.

``--languages`` prints the per-script tokeniser table and the per-language table
(``languages:`` off and on) instead; see ``bench/languages.py``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.rules import Engine, RuleSpec

STOP = [
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
    "two",
    "over",
    "about",
    "new",
    "into",
    "up",
    "other",
    "last",
    "year",
    "some",
    "when",
    "all",
    "there",
    "could",
    "over",
]
NEWS = [
    "government",
    "minister",
    "president",
    "election",
    "war",
    "troops",
    "army",
    "soldier",
    "soldiers",
    "military",
    "attack",
    "police",
    "court",
    "judge",
    "law",
    "bill",
    "parliament",
    "vote",
    "voters",
    "party",
    "campaign",
    "economy",
    "inflation",
    "market",
    "markets",
    "bank",
    "rates",
    "prices",
    "oil",
    "gas",
    "energy",
    "climate",
    "storm",
    "flood",
    "fire",
    "earthquake",
    "border",
    "refugees",
    "migrants",
    "ceasefire",
    "talks",
    "summit",
    "sanctions",
    "missile",
    "drone",
    "strike",
    "offensive",
    "region",
    "city",
    "capital",
    "village",
    "officials",
    "spokesman",
    "report",
    "reports",
    "investigation",
    "crash",
    "killed",
    "injured",
    "wounded",
    "captured",
    "prisoner",
    "prisoners",
    "hostage",
    "hostages",
    "protest",
    "protests",
    "strike",
    "workers",
    "union",
    "company",
    "shares",
    "profit",
    "losses",
    "deal",
    "trade",
    "tariffs",
    "exports",
    "china",
    "russia",
    "ukraine",
    "ukrainian",
    "russian",
    "kyiv",
    "moscow",
    "kursk",
    "kharkiv",
    "donetsk",
    "crimea",
    "korea",
    "korean",
    "north",
    "south",
    "seoul",
    "pyongyang",
    "beijing",
    "washington",
    "london",
    "paris",
    "berlin",
    "brussels",
    "nato",
    "europe",
    "european",
    "united",
    "states",
    "nations",
    "security",
    "council",
    "health",
    "hospital",
    "virus",
    "vaccine",
    "doctors",
    "patients",
    "school",
    "students",
    "university",
    "research",
    "scientists",
    "space",
    "rocket",
    "launch",
    "satellite",
    "football",
    "match",
    "team",
    "league",
    "cup",
    "champion",
    "coach",
    "player",
    "players",
    "season",
    "film",
    "music",
    "festival",
    "award",
    "technology",
    "artificial",
    "intelligence",
    "software",
    "data",
    "privacy",
    "hackers",
    "cyber",
    "internet",
    "phone",
    "satellite",
    "navy",
    "ship",
    "port",
    "airport",
    "flight",
    "airline",
    "passengers",
    "train",
    "rail",
    "road",
    "accident",
    "weather",
    "heat",
    "wave",
    "drought",
    "wildfire",
    "emergency",
    "evacuation",
    "aid",
    "humanitarian",
    "food",
    "water",
    "budget",
    "tax",
    "debt",
    "spending",
    "reform",
    "pension",
    "housing",
    "rent",
    "crime",
    "arrest",
    "charged",
    "trial",
    "verdict",
]
SYLLABLES = [
    "ka",
    "ri",
    "to",
    "mo",
    "zen",
    "vel",
    "dar",
    "lin",
    "shu",
    "ava",
    "kor",
    "mir",
    "sta",
    "bel",
    "gor",
    "nik",
    "ol",
    "an",
    "esk",
    "ova",
    "ur",
    "ti",
]


def make_vocab(rng: random.Random, tail: int = 20000) -> list[str]:
    """Return words by falling frequency: stop words, news words, then invented names."""
    names = set()
    while len(names) < tail:
        names.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    news = NEWS[:]
    rng.shuffle(news)
    return list(dict.fromkeys(STOP + news + sorted(names)))


class Corpus:
    """Seeded news-like items with Zipf-distributed words."""

    def __init__(self, rng: random.Random, vocab: list[str]) -> None:
        self.rng, self.vocab = rng, vocab
        self.weights = [1 / (rank + 1) ** 1.05 for rank in range(len(vocab))]

    def sentence(self, n: int) -> str:
        words = self.rng.choices(self.vocab, self.weights, k=n)
        words[0] = words[0].capitalize()
        for i in range(1, n):
            if words[i] not in STOP and self.rng.random() < 0.15:
                words[i] = words[i].capitalize()
            if self.rng.random() < 0.03:
                words[i] += "'s"
            elif self.rng.random() < 0.05:
                words[i] += ","
        return " ".join(words) + self.rng.choice(".!.?.")

    def item(self) -> dict[str, str]:
        content, size = [], 0
        while size < 2200:
            content.append(self.sentence(self.rng.randint(8, 24)))
            size += len(content[-1]) + 1
        return {
            "title": self.sentence(self.rng.randint(6, 12)).rstrip(".!?"),
            "summary": " ".join(self.sentence(self.rng.randint(10, 20)) for _ in range(2)),
            "content": "\n".join(content),
        }


def make_rules(rng: random.Random, vocab: list[str], n: int) -> list[RuleSpec]:
    """Return ``n`` alert-like rules: a specific term (name, place) plus context terms."""
    news = vocab[len(STOP) : len(STOP) + len(NEWS)]
    names = vocab[len(STOP) + len(NEWS) :]

    def specific() -> str:
        roll = rng.random()
        name = rng.choice(names)
        if roll < 0.15:
            return f"{name} {rng.choice(news)}"  # phrase
        if roll < 0.3 and len(name) >= 8:
            return name[:-2] + "*"  # prefix
        return name

    def context() -> str:
        roll = rng.random()
        if roll < 0.15:
            return " ".join(rng.sample(news, 2))
        word = rng.choice(news)
        return word[: max(3, len(word) - 2)] + "*" if roll < 0.3 else word

    rules = []
    for i in range(n):
        if rng.random() < 0.3:  # any of a few specific names
            all_: tuple[str, ...] = ()
            any_ = tuple(specific() for _ in range(rng.randint(2, 4)))
        else:
            all_ = (specific(), *tuple(context() for _ in range(rng.randint(0, 1))))
            any_ = tuple(context() for _ in range(rng.choice((0, 2, 3))))
        none = tuple(context() for _ in range(rng.choice((0, 0, 1))))
        rules.append(RuleSpec(f"wl{i // 20}", f"r{i}", all=all_, any=any_, none=none))
    return rules


def _regex(term: str) -> re.Pattern[str]:
    prefix = term.endswith("*")
    words = term.rstrip("*").split()
    body = r"\W+".join(re.escape(w) for w in words)
    return re.compile(r"\b" + body + (r"\w*" if prefix else r"\b"), re.IGNORECASE)


class Baseline:
    """The naive matcher: every rule's regexes over every field of every item."""

    def __init__(self, specs: list[RuleSpec]) -> None:
        self.rules = [
            (
                s.watchlist,
                s.id,
                [_regex(t) for t in s.all],
                [_regex(t) for t in s.any],
                [_regex(t) for t in s.none],
            )
            for s in specs
        ]

    def match(self, texts: dict[str, str]) -> list[tuple[str, str]]:
        fields = [t for t in texts.values() if t]

        def found(rx: re.Pattern[str]) -> bool:
            return any(rx.search(f) for f in fields)

        return [
            (wl, rid)
            for wl, rid, all_, any_, none in self.rules
            if all(map(found, all_))
            and (not any_ or any(map(found, any_)))
            and not any(map(found, none))
        ]


def rss_mb() -> float:
    """Return this process's resident memory now, in MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def run(
    size: int,
    items: list[dict[str, str]],
    rng: random.Random,
    vocab: list[str],
    baseline_seconds: float,
    try_items: int = 500,
) -> dict[str, object]:
    specs = make_rules(rng, vocab, size)
    before = rss_mb()
    t0 = time.perf_counter()
    engine = Engine(specs)
    compile_s = time.perf_counter() - t0
    compile_mb = rss_mb() - before

    t0 = time.perf_counter()
    got = [[(m.watchlist, m.rule) for m in engine.match(texts)] for texts in items]
    engine_rate = len(items) / (time.perf_counter() - t0)

    baseline = Baseline(specs)
    expected = []
    t0 = time.perf_counter()
    for texts in items:
        expected.append(baseline.match(texts))
        if time.perf_counter() - t0 > baseline_seconds and len(expected) >= 5:
            break
    baseline_rate = len(expected) / (time.perf_counter() - t0)
    mismatches = sum(set(a) != set(b) for a, b in zip(got, expected, strict=False))
    return {
        "bench": "match",
        "rules": size,
        "engine_items_per_s": round(engine_rate, 1),
        "baseline_items_per_s": round(baseline_rate, 2),
        "ratio": round(engine_rate / baseline_rate, 1),
        "compile_s": round(compile_s, 3),
        "rss_mb": round(rss_mb(), 1),
        "compile_mb": round(compile_mb, 1),
        "hits_per_item": round(sum(map(len, got)) / len(got), 3),
        "baseline_items": len(expected),
        "mismatches": mismatches,
        "agree": mismatches == 0,
        **try_json(engine, items[:try_items]),
    }


# -- try --json: the cost of printing hits, next to matching alone ---------------------


def try_json(engine: Engine, items: list[dict[str, str]]) -> dict[str, object]:
    """Time ``try --json``'s loop (match, then one JSON line per hit) against matching alone.

    The baseline writes each line as first written: ``json.dumps`` of a dict built
    with ``dataclasses.asdict``. Each is timed three times, interleaved; the best counts.
    """
    import dataclasses
    import io

    from worker.model import Item, hit_lines, hit_record

    objs = [
        Item(id=str(i), feed="b", link=f"https://n.example/{i}", **t) for i, t in enumerate(items)
    ]

    def naive(item: Item, matches: list[Any]) -> Iterator[str]:
        for m in matches:
            line = {
                **hit_record(item, m),
                "highlights": [dataclasses.asdict(h) for h in m.highlights],
            }
            yield json.dumps(line, ensure_ascii=False)

    def timed(lines: Callable[[Item, list[Any]], Iterable[str]] | None) -> float:
        out = io.StringIO()
        t0 = time.perf_counter()
        for item in objs:
            matches = engine.match(item.texts())
            for line in lines(item, matches) if lines else ():
                out.write(line + "\n")
        return (time.perf_counter() - t0) / len(objs)

    # Best of 3, the three interleaved: load on a shared machine hits each alike.
    rounds = [(timed(None), timed(hit_lines), timed(naive)) for _ in range(3)]
    match_s, ours_s, naive_s = (min(r[i] for r in rounds) for i in range(3))
    return {
        "match_ms_per_item": round(match_s * 1000, 3),
        "try_json_ms_per_item": round(ours_s * 1000, 3),
        "try_json_vs_match": round(ours_s / match_s, 2),
        "try_json_asdict_ms_per_item": round(naive_s * 1000, 3),
        "try_json_vs_asdict": round(naive_s / ours_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--baseline-seconds", type=float, default=8.0)
    parser.add_argument("--languages", action="store_true", help="per-script/language tables")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    if args.languages:
        from languages import corpus_rows, language_rows, script_rows

        shared = Path(__file__).resolve().parents[2] / "shared"
        tables = [script_rows(rng), language_rows(rng)]
        tables += [corpus_rows(shared)] if (shared / "corpus").is_dir() else []
        for row in (row for table in tables for row in table):
            print(json.dumps(row, ensure_ascii=False), flush=True)
        return
    vocab = make_vocab(rng)
    corpus = Corpus(rng, vocab)
    items = [corpus.item() for _ in range(args.items)]
    for size in (int(s) for s in args.sizes.split(",")):
        result = run(size, items, random.Random(args.seed + size), vocab, args.baseline_seconds)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
