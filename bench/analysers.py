"""Compare word-form analysers for ``languages:`` by precision, recall and speed.

Run: ``python bench/analysers.py``. Prints one JSON line per (candidate, language):
the share of must-match pairs it joins (a term and an inflected form of it), the
share of must-not-match pairs it keeps apart (different words that a crude
stemmer merges, such as "news"/"new" or "Korea"/"Korean"), and the cost of one
uncached word. Candidates that are not installed are skipped; newsalert itself
depends only on simplemma (``pip install pystemmer pymorphy3 pymorphy3-dicts-ru
pymorphy3-dicts-uk`` to compare with the others).

Two words match when the analyser gives them the same form, compared after
newsalert's own normalisation (case and diacritics folded).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.rules.text import normalise_word

# (term, other word, whether an alert for the term should fire on the other word)
PAIRS: dict[str, list[tuple[str, str, bool]]] = {
    "ru": [
        ("Курск", "Курском", True),
        ("Курск", "Курска", True),
        ("Курск", "Курске", True),
        ("солдат", "солдаты", True),
        ("солдат", "солдатов", True),
        ("армия", "армии", True),
        ("армия", "армией", True),
        ("ракета", "ракетой", True),
        ("беспилотник", "беспилотники", True),
        ("удар", "ударов", True),
        ("пленный", "пленного", True),
        ("область", "области", True),
        ("Россия", "России", True),
        ("захватить", "захватили", True),
        ("Курск", "Курская", False),
        ("Корея", "корейский", False),
        ("Россия", "российский", False),
        ("Украина", "украинский", False),
        ("новость", "новый", False),
        ("война", "воин", False),
        ("сила", "силовой", False),
        ("мир", "мирный", False),
    ],
    "uk": [
        ("Курськ", "Курська", True),
        ("Курськ", "Курськом", True),
        ("солдат", "солдати", True),
        ("солдат", "солдатів", True),
        ("Україна", "України", True),
        ("Україна", "Україні", True),
        ("війна", "війни", True),
        ("ракета", "ракетою", True),
        ("область", "області", True),
        ("місто", "місті", True),
        ("полонений", "полоненого", True),
        ("армія", "армії", True),
        ("Курськ", "курський", False),
        ("Україна", "український", False),
        ("Корея", "корейський", False),
        ("новина", "новий", False),
        ("війна", "військо", False),
        ("Росія", "російський", False),
    ],
    "de": [
        ("Soldat", "Soldaten", True),
        ("Krieg", "Krieges", True),
        ("Stadt", "Städte", True),
        ("Haus", "Häuser", True),
        ("Truppe", "Truppen", True),
        ("Rakete", "Raketen", True),
        ("Land", "Länder", True),
        ("Mann", "Männer", True),
        ("Kind", "Kindern", True),
        ("angreifen", "angegriffen", True),
        ("Gefangener", "Gefangene", True),
        ("Angriff", "Angriffe", True),
        ("Korea", "koreanisch", False),
        ("Russland", "russisch", False),
        ("neu", "Neuigkeit", False),
        ("Stadt", "städtisch", False),
        ("Krieg", "kriegen", False),
        ("Kind", "Kindheit", False),
        ("Land", "landen", False),
    ],
    "pl": [
        ("żołnierz", "żołnierzy", True),
        ("żołnierz", "żołnierze", True),
        ("żołnierz", "żołnierzem", True),
        ("Kursk", "Kurska", True),
        ("Kursk", "Kursku", True),
        ("Ukraina", "Ukrainy", True),
        ("Ukraina", "Ukrainie", True),
        ("wojna", "wojny", True),
        ("wojna", "wojnie", True),
        ("rakieta", "rakiety", True),
        ("miasto", "mieście", True),
        ("armia", "armii", True),
        ("Korea", "koreański", False),
        ("Ukraina", "ukraiński", False),
        ("wojna", "wojsko", False),
        ("Rosja", "rosyjski", False),
        ("nowy", "nowina", False),
        ("miasto", "miejski", False),
    ],
    "en": [
        ("soldier", "soldiers", True),
        ("capture", "captured", True),
        ("troop", "troops", True),
        ("army", "armies", True),
        ("city", "cities", True),
        ("attack", "attacked", True),
        ("man", "men", True),
        ("child", "children", True),
        ("missile", "missiles", True),
        ("strike", "struck", True),
        ("fight", "fighting", True),
        ("news", "new", False),
        ("Korea", "Korean", False),
        ("general", "generally", False),
        ("state", "statement", False),
        ("army", "arm", False),
        ("organ", "organization", False),
        ("universe", "university", False),
        ("police", "policy", False),
        ("nation", "national", False),
    ],
}

SNOWBALL = {"ru": "russian", "de": "german", "pl": "polish", "en": "english"}


def _simplemma(lang: str) -> Callable[[str], str]:
    from simplemma import Lemmatizer
    from simplemma.strategies.default import DefaultStrategy

    # Uncached, like the others, and with the low-memory dictionaries newsalert uses.
    strategy = DefaultStrategy(low_memory=True)
    lemmatizer = Lemmatizer(cache_max_size=0, lemmatization_strategy=strategy)
    return lambda word: lemmatizer.lemmatize(word, lang)


def _snowball(lang: str) -> Callable[[str], str] | None:
    import Stemmer

    if lang not in SNOWBALL:
        return None
    stemmer = Stemmer.Stemmer(SNOWBALL[lang])
    return lambda word: str(stemmer.stemWord(word.lower()))


def _pymorphy(lang: str) -> Callable[[str], str] | None:
    import pymorphy3

    if lang not in ("ru", "uk"):
        return None
    morph = pymorphy3.MorphAnalyzer(lang=lang)
    return lambda word: str(morph.parse(word)[0].normal_form)


CANDIDATES = {"simplemma": _simplemma, "pystemmer": _snowball, "pymorphy3": _pymorphy}


def score(analyse: Callable[[str], str], pairs: list[tuple[str, str, bool]]) -> dict:
    """Return the share of pairs the analyser gets right, split by kind, and the misses."""

    def form(word: str) -> tuple[str, ...]:
        return normalise_word(analyse(word))

    right = {True: 0, False: 0}
    wrong = []
    for term, other, should in pairs:
        if (form(term) == form(other)) == should:
            right[should] += 1
        else:
            wrong.append(f"{term}/{other}")
    total = {k: sum(1 for p in pairs if p[2] is k) for k in (True, False)}
    return {
        "must_match": round(right[True] / total[True], 3),
        "must_not_match": round(right[False] / total[False], 3),
        "wrong": wrong,
    }


def speed(analyse: Callable[[str], str], words: list[str], repeat: int = 20) -> float:
    """Return microseconds per word, uncached."""
    start = time.perf_counter()
    for _ in range(repeat):
        for word in words:
            analyse(word)
    return (time.perf_counter() - start) / (repeat * len(words)) * 1e6


def rss_mb() -> float:
    """Return this process's resident memory now, in MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def main() -> None:
    for name, make in CANDIDATES.items():
        for lang, pairs in PAIRS.items():
            try:
                analyse = make(lang)
            except ImportError:
                break
            if analyse is None:
                print(json.dumps({"candidate": name, "lang": lang, "covered": False}))
                continue
            words = [w for p in pairs for w in p[:2]]
            start, before = time.perf_counter(), rss_mb()
            analyse(words[0])  # load the language's data outside the word timing
            load, memory = time.perf_counter() - start, rss_mb() - before
            line = {"candidate": name, "lang": lang, "covered": True, **score(analyse, pairs)}
            line["us_per_word"] = round(speed(analyse, words), 2)
            line["load_s"] = round(load, 3)
            line["load_mb"] = round(memory, 1)
            print(json.dumps(line, ensure_ascii=False))


if __name__ == "__main__":
    main()
