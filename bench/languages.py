"""The per-script and per-language tables of ``bench/match.py`` (``--languages``).

Scripts: the tokeniser's cost per 1,000 characters and per kB of UTF-8, for news-like
text in each script, against ASCII text of the same shape and against the previous
tokeniser (one regex match and one cached normalisation per word), measured in the
same run. "warm" is the steady state of a worker (its pieces seen before); "cold"
empties every cache before each item.

Languages: items/s with a watchlist's ``languages:`` on and off, at 10, 1,000 and
10,000 rules, on items in that language. Each rule names an invented name (rare in
the items) plus up to three dictionary forms of words of the sample text, which the
items hold in inflected forms; "on" finds more of them, so more rules are evaluated.

The sample texts are written for this benchmark (not copied from any feed). With
``../shared`` beside the checkout, a last table times real feed items per language
against real English feed items (which are seldom pure ASCII).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from pathlib import Path

from worker.rules import Engine, RuleSpec
from worker.rules import text as rules_text
from worker.rules.forms import word_form
from worker.rules.text import Field, tokenize

SAMPLES = {
    "ru": "Северокорейские солдаты воюют под Курском вместе с российской армией. Украинские "
    "военные захватили двух пленных солдат в Курской области. По словам командиров, "
    "беспилотники атаковали позиции войск ночью. Жители Курска и соседних сёл эвакуированы "
    "после ударов ракетами. Министерство обороны сообщило о потерях среди солдат и офицеров. "
    "Власти Кореи не комментируют новости о войсках. Пленные рассказали журналистам о "
    "приказах командования.",
    "uk": "Північнокорейські солдати воюють під Курськом разом із російською армією. Українські "
    "військові захопили двох полонених солдатів у Курській області. За словами командирів, "
    "безпілотники атакували позиції військ уночі. Мешканців Курська та сусідніх сіл "
    "евакуювали після ударів ракетами. Міністерство оборони повідомило про втрати серед "
    "солдатів і офіцерів. Влада Кореї не коментує новини про війська. Полонені розповіли "
    "журналістам про накази командування.",
    "pl": "Północnokoreańscy żołnierze walczą pod Kurskiem razem z rosyjską armią. Ukraińscy "
    "wojskowi pojmali dwóch żołnierzy w obwodzie kurskim. Według dowódców drony zaatakowały "
    "pozycje wojsk w nocy. Mieszkańców Kurska i sąsiednich wsi ewakuowano po uderzeniach "
    "rakietowych. Ministerstwo obrony poinformowało o stratach wśród żołnierzy i oficerów. "
    "Władze Korei nie komentują doniesień o wojskach. Jeńcy opowiedzieli dziennikarzom o "
    "rozkazach dowództwa.",
    "de": "Nordkoreanische Soldaten kämpfen bei Kursk an der Seite der russischen Armee. "
    "Ukrainische Truppen haben zwei Soldaten im Gebiet Kursk gefangen genommen. Nach Angaben "
    "der Kommandeure griffen Drohnen nachts die Stellungen der Truppen an. Die Bewohner der "
    "Städte und Dörfer wurden nach Raketenangriffen evakuiert. Das Verteidigungsministerium "
    "meldete Verluste unter Soldaten und Offizieren. Die Behörden Koreas äußerten sich nicht "
    "zu den Berichten über die Truppen. Gefangene berichteten Journalisten über die Befehle "
    "ihrer Vorgesetzten.",
    "en": "North Korean soldiers are fighting near Kursk alongside the Russian army. Ukrainian "
    "troops captured two soldiers in the Kursk region. According to commanders, drones "
    "attacked the positions of the troops at night. Residents of the towns and villages were "
    "evacuated after missile strikes. The defence ministry reported losses among soldiers "
    "and officers. Officials in Korea did not comment on the reports about the troops. "
    "Prisoners told journalists about the orders of their commanders.",
    "el": "Βορειοκορεάτες στρατιώτες πολεμούν κοντά στο Κουρσκ μαζί με τον ρωσικό στρατό. Οι "
    "ουκρανικές δυνάμεις αιχμαλώτισαν δύο στρατιώτες στην περιοχή του Κουρσκ. Σύμφωνα με τους "
    "διοικητές, τα μη επανδρωμένα αεροσκάφη επιτέθηκαν στις θέσεις των στρατευμάτων τη νύχτα. "
    "Οι κάτοικοι των πόλεων απομακρύνθηκαν μετά τις επιθέσεις με πυραύλους.",
    "zh": "朝鲜士兵在库尔斯克附近与俄罗斯军队一起作战。乌克兰军队在库尔斯克州俘虏了两名士兵。"
    "据指挥官说，无人机在夜间袭击了部队阵地。城市和村庄的居民在导弹袭击后被疏散。"
    "国防部报告了士兵和军官的伤亡情况。",
}
SCRIPTS = {
    "ASCII (en)": "en",
    "Latin with diacritics (pl)": "pl",
    "Latin with diacritics (de)": "de",
    "Cyrillic (ru)": "ru",
    "Cyrillic (uk)": "uk",
    "Greek (el)": "el",
    "CJK (zh)": "zh",
}
SYLLABLES = {
    "ru": "ка ро ми ев ско ан ов ин ер ту",
    "uk": "ка ро мі єв ськ ан ов ін ер ту",
    "pl": "ka ro mi ew sko an ow in er tu",
    "de": "ka ro mi ew sko an ow in er tu",
    "en": "ka ro mi ew sko an ow in er tu",
}


class Text:
    """Seeded news-like items in one language: words of its sample text by Zipf weight."""

    def __init__(self, rng: random.Random, lang: str, names: list[str]) -> None:
        self.rng, self.lang = rng, lang
        sample = SAMPLES[lang]
        words = sample.replace("。", "。 ").replace("，", "， ").split()
        self.words = words + names
        # The sample's words are common; each invented name is rare, as names are in news.
        self.weights = [1.0] * len(words) + [0.2 / (rank + 1) for rank in range(len(names))]

    def item(self, size: int = 2600) -> dict[str, str]:
        sep = "" if self.lang == "zh" else " "
        parts: list[str] = []
        length = 0
        while length < size:
            parts.append(self.rng.choices(self.words, self.weights)[0])
            length += len(parts[-1]) + len(sep)
        content = sep.join(parts)
        return {"title": content[:80], "summary": content[80:400], "content": content[400:]}


def _clear_caches() -> None:
    rules_text._PIECES.cache.clear()
    rules_text.normalise_word.cache_clear()


def _seconds(fn: Callable[[str], object], texts: list[str], cold: bool) -> float:
    """Return the CPU time of ``fn`` over ``texts`` (other processes' load counts less)."""
    start = time.process_time()
    for text in texts:
        if cold:
            _clear_caches()  # a few hundred entries: small next to tokenising 2.6 kB
        fn(text)
    return time.process_time() - start


def before(text: str) -> str:
    """Return the canonical form as the previous tokeniser made it (ASCII: unchanged path)."""
    if text.isascii():
        return Field(text).canonical
    return " " + " ".join(tokenize(text)[0]) + " "


def script_rows(rng: random.Random, items: int = 200, rounds: int = 7) -> list[dict[str, object]]:
    """Return one row per script: tokeniser cost now and before, and against ASCII.

    Every round times every script in turn (CPU time) and each figure is the best
    round, so a machine whose load changes during the run skews all scripts alike.
    """
    texts = {
        s: [Text(rng, lang, []).item()["content"] for _ in range(items)]
        for s, lang in SCRIPTS.items()
    }
    ways = {"now": (Field, False), "cold": (Field, True), "before": (before, False)}
    best = {(s, way): float("inf") for s in texts for way in ways}
    for script in texts:
        for text in texts[script]:
            Field(text)  # warm the caches: a worker's steady state
    for _ in range(rounds):
        for script, sample in texts.items():
            for way, (fn, cold) in ways.items():
                best[script, way] = min(best[script, way], _seconds(fn, sample, cold))
            _clear_caches()
            _seconds(Field, sample, False)  # warm again after the cold run
    rows = []
    ascii_kchar = ascii_kb = 0.0
    for script, sample in texts.items():
        chars, size = sum(map(len, sample)), sum(len(t.encode()) for t in sample)
        kchar = best[script, "now"] / chars * 1e9
        kb = best[script, "now"] / size * 1e9
        if SCRIPTS[script] == "en":
            ascii_kchar, ascii_kb = kchar, kb
        rows.append(
            {
                "bench": "tokenise",
                "script": script,
                "us_per_1000_chars": round(kchar, 1),
                "us_per_kB_utf8": round(kb, 1),
                "cold_us_per_1000_chars": round(best[script, "cold"] / chars * 1e9, 1),
                "before_us_per_1000_chars": round(best[script, "before"] / chars * 1e9, 1),
                "vs_ascii_per_1000_chars": round(kchar / ascii_kchar, 2),
                "vs_ascii_per_kB": round(kb / ascii_kb, 2),
            }
        )
    return rows


def _rules(rng: random.Random, lang: str, names: list[str], n: int, on: bool) -> list[RuleSpec]:
    words = [w.strip(".,") for w in SAMPLES[lang].split() if len(w.strip(".,")) > 3]
    lemmas = sorted({word_form(lang, w) or w for w in words})
    languages = (lang,) if on else ()
    rules = []
    for i in range(n):
        specific = rng.choice(names)
        context = tuple(rng.sample(lemmas, rng.choice((0, 2, 3))))
        rules.append(
            RuleSpec(f"wl{i // 20}", f"r{i}", all=(specific,), any=context, languages=languages)
        )
    return rules


def language_rows(
    rng: random.Random,
    sizes: tuple[int, ...] = (10, 1000, 10000),
    items: int = 200,
    rounds: int = 3,
) -> list[dict[str, object]]:
    """Return one row per (language, rule count): items/s with ``languages:`` off and on."""
    rows = []
    for lang, syllables in SYLLABLES.items():
        parts = syllables.split()
        names = sorted({"".join(rng.sample(parts, 3)).capitalize() for _ in range(3000)})
        corpus = Text(rng, lang, names)
        docs = [corpus.item() for _ in range(items)]
        for size in sizes:
            row: dict[str, object] = {"bench": "languages", "lang": lang, "rules": size}
            engines = {}
            for key, on in (("off", False), ("on", True)):
                specs = _rules(random.Random(size), lang, names, size, on)
                start = time.perf_counter()
                engines[key] = Engine(specs)
                row[f"{key}_compile_s"] = round(time.perf_counter() - start, 3)
                hits = sum(len(engines[key].match(doc)) for doc in docs)  # warms the caches
                row[f"{key}_hits_per_item"] = round(hits / len(docs), 2)
            best = dict.fromkeys(engines, float("inf"))
            for _ in range(rounds):  # alternate, so a change of machine load hits both
                for key, engine in engines.items():
                    start = time.process_time()
                    for doc in docs:
                        engine.match(doc)
                    best[key] = min(best[key], time.process_time() - start)
            for key in engines:
                row[f"{key}_items_per_s"] = round(len(docs) / best[key], 1)
            row["on_vs_off"] = round(best["off"] / best["on"], 2)
            rows.append(row)
    return rows


# Real items, when ../shared is beside the checkout: feeds of the corpus by language, and
# the Polish articles of the story-pairs set (no feed of the corpus is in Polish).
CORPUS = {
    "en": ["bbc__world-2026-02.xml", "nytimes__world-2026-02.xml"],
    "uk": ["suspilne__ukrnet-2023-12-uk.xml"],
    "ru": ["rutube__tnt-videos-mediarss-ru.xml", "aif-ru__news-ru.xml"],
    "de": ["spiegel__schlagzeilen-2017.xml", "golem__news-iso-8859-1.xml"],
}


def _corpus_texts(shared: Path) -> dict[str, list[str]]:
    import feedparser

    from worker.rules import html_to_text

    out: dict[str, list[str]] = {}
    for lang, names in CORPUS.items():
        for name in names:
            parsed = feedparser.parse((shared / "corpus" / "feeds" / name).read_bytes())
            for e in parsed.entries:
                parts = [e.get("title", ""), e.get("summary", "")]
                parts += [c.get("value", "") for c in e.get("content", [])]
                out.setdefault(lang, []).append(html_to_text("\n".join(parts)))
    with open(shared / "corpus" / "story-pairs" / "pairs.jsonl", encoding="utf-8") as f:
        pairs = [json.loads(line) for line in f]
    out["pl"] = [p["text1"] for p in pairs if p["lang1"] == "pl"][:100]
    return out


def corpus_rows(shared: Path, rounds: int = 9) -> list[dict[str, object]]:
    """Return the tokeniser's cost on real items per language, against real English items."""
    texts = _corpus_texts(shared)
    for sample in texts.values():
        _seconds(Field, sample, False)
    best = {(lang, way): float("inf") for lang in texts for way in ("now", "before")}
    for _ in range(rounds):
        for lang, sample in texts.items():
            best[lang, "now"] = min(best[lang, "now"], _seconds(Field, sample, False))
            best[lang, "before"] = min(best[lang, "before"], _seconds(before, sample, False))
    english = best["en", "now"] / sum(map(len, texts["en"]))
    rows = []
    for lang, sample in texts.items():
        chars = sum(map(len, sample))
        rows.append(
            {
                "bench": "tokenise-corpus",
                "lang": lang,
                "items": len(sample),
                "us_per_1000_chars": round(best[lang, "now"] / chars * 1e9, 1),
                "before_us_per_1000_chars": round(best[lang, "before"] / chars * 1e9, 1),
                "vs_english_items": round(best[lang, "now"] / chars / english, 2),
            }
        )
    return rows
