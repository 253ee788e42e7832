"""What an item says, as weighted terms, and how alike two items are. No I/O here.

An item's *terms* are the rules' own normalised tokens (``worker.rules.text``)
of its headline, plus those of its lead (the first ``LEAD_WORDS`` words of the
summary, else the content, else the article), without stop words of the
languages ``stop-words`` knows. A term weighs its inverse document frequency
over recent items (``idf``), so names, places and numbers, which are rare, carry
the score, and "says", "new" or "police" barely count.

``similarity`` returns the best of three views of two items, each a weighted
cosine, so a headline-only item can still meet a long one:

- headline against headline (rewritten headlines of one event);
- headline+lead against headline+lead (wire copy: the same lead);
- the smaller of the two headline-in-other-item containments (a headline
  whose rare words all appear in the other item's lead, and vice versa).

Thresholds and the choice of views were measured (README "Stories"). ``wording``
adds rapidfuzz's token-set ratio of two headlines, for rewrites that keep the
words but not their weights.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from hashlib import blake2b

import stop_words
from rapidfuzz import fuzz

from worker.model import Item
from worker.rules.text import words

#: Words of the lead taken into an item's terms.
LEAD_WORDS = 60
#: Most terms kept per item (the heaviest): bounds memory per story and scoring time.
MAX_TERMS = 32
#: Least number of distinctive terms two items must share in a view for it to count.
MIN_SHARED = 2
#: Least number of terms a headline needs for the headline views to compare it.
MIN_HEADLINE = 3
#: A term is distinctive when it weighs at least this share of the item's heaviest term.
DISTINCT = 0.5
#: Terms of an item looked up in the index of open stories (its rarest).
PROBE_TERMS = 6

#: Words that label a headline's format, not its event ("… : live updates", "Opinion | …"):
#: two live blogs about different things share them. Dropped like stop words.
FORMAT_WORDS = (
    "live updates update latest breaking news video videos opinion highlights exclusive "
    "liveblog direct ticker"
)

#: Document frequency → weight; ``None`` df means "never seen".
Idf = Callable[[str], float]


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """Return the stop words of every language ``stop-words`` ships and ``FORMAT_WORDS``, normalised."""
    out: set[str] = set()
    for lang in stop_words.AVAILABLE_LANGUAGES:
        for w in stop_words.get_stop_words(lang, cache=False):  # its cache would hold 1.3 MB
            out.update(words(w))
    return frozenset(out | set(words(FORMAT_WORDS)))


def terms_of(text: str, limit: int | None = None) -> list[str]:
    """Return the content terms of ``text`` in order (stop words and lone letters dropped)."""
    stop = stopwords()
    toks = words(text)
    if limit is not None:
        toks = toks[:limit]
    return [t for t in toks if t not in stop and (len(t) > 1 or t.isdigit() or not t.isascii())]


def lead_of(item: Item) -> str:
    """Return the text an item's lead is taken from: summary, else content, else article."""
    return item.summary or item.content or item.article


@lru_cache(maxsize=4096)
def _item_terms(title: str, lead: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(terms_of(title)), tuple(terms_of(lead, LEAD_WORDS))


def item_terms(item: Item) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return an item's headline terms and lead terms (cached: a batch asks several times)."""
    return _item_terms(item.title, lead_of(item))


def vocabulary(item: Item) -> set[str]:
    """Return the distinct terms of an item, as document frequencies count them."""
    head, lead = item_terms(item)
    return {*head, *lead}


@lru_cache(maxsize=100_000)
def term_hash(term: str) -> int:
    """Return a 32-bit hash of a term (how terms are stored and counted in Redis)."""
    return int.from_bytes(blake2b(term.encode(), digest_size=4).digest(), "big")


@dataclass(frozen=True)
class Features:
    """An item's weighted terms: headline terms and headline+lead terms, by term hash."""

    title: Mapping[int, float]
    full: Mapping[int, float]
    names: Mapping[int, str]  # hash → term, for explanations (not stored in Redis)

    @cached_property
    def squares(self) -> tuple[float, float]:
        """Return the sums of squared weights of the headline terms and of all terms."""
        return sum(w * w for w in self.title.values()), sum(w * w for w in self.full.values())

    @cached_property
    def top(self) -> float:
        """Return the least weight of a distinctive term of this item."""
        return max(self.full.values(), default=0.0) * DISTINCT

    def probe(self) -> list[int]:
        """Return the hashes of the item's rarest terms, to find candidate stories by."""
        return sorted(self.full, key=lambda h: (-self.full[h], h))[:PROBE_TERMS]

    def pack(self) -> bytes:
        """Return the compact form kept in Redis: 6 bytes a term (hash, weight, in headline)."""
        return b"".join(
            struct.pack(">IBB", h, min(255, round(w * 16)), h in self.title)
            for h, w in self.full.items()
        )

    @classmethod
    def unpack(cls, data: bytes) -> Features:
        full: dict[int, float] = {}
        title: dict[int, float] = {}
        for h, w, in_title in struct.iter_unpack(">IBB", data):
            full[h] = w / 16
            if in_title:
                title[h] = w / 16
        return cls(title, full, {})


def features(item: Item, idf: Idf) -> Features:
    """Return the weighted terms of an item (at most ``MAX_TERMS``, the heaviest)."""
    head, lead = item_terms(item)
    names = {term_hash(t): t for t in [*head, *lead]}
    weights = {h: idf(t) for h, t in names.items()}
    keep = sorted(weights, key=lambda h: (-weights[h], h))[:MAX_TERMS]
    full = {h: weights[h] for h in keep}
    title = {h: full[h] for h in (term_hash(t) for t in head) if h in full}
    return Features(title, full, {h: names[h] for h in keep})


def idf_from(df: Mapping[str, int] | Callable[[str], int], docs: int) -> Idf:
    """Return a term weight from document frequencies over ``docs`` recent items."""
    get = df.get if isinstance(df, Mapping) else df

    def idf(term: str) -> float:
        n = get(term) or 0
        return math.log((docs + 2) / (n + 1))

    return idf


def _cosine(
    a: Mapping[int, float], b: Mapping[int, float], shared: set[int], norms: float
) -> float:
    return sum(a[h] * b[h] for h in shared) / math.sqrt(norms) if norms else 0.0


def _contained(part: Mapping[int, float], shared: Iterable[int], total: float) -> float:
    return sum(part[h] * part[h] for h in shared) / total if total else 0.0


@dataclass(frozen=True, slots=True)
class Similarity:
    """How alike two items are (0–1), by which view, and the terms they share."""

    score: float
    view: str
    shared: tuple[int, ...]
    grounded: bool = True  # the view rests on MIN_SHARED distinctive shared terms
    agreed: int = 0  # how many shared terms are distinctive in both items


def similarity(a: Features, b: Features) -> Similarity:
    """Return the similarity of two items: the best view that rests on ``MIN_SHARED`` terms.

    A view counts only when the terms it compares (the headline view: the
    headlines' shared terms) include ``MIN_SHARED`` distinctive terms (weighing
    at least ``DISTINCT`` of the heaviest term of either item), so one rare shared
    word, a name or a number, plus common words never carries a view. With no
    such view, the best view is returned, for explanations.
    """
    (at, af), (bt, bf) = a.squares, b.squares
    in_b, in_a = a.title.keys() & b.full.keys(), b.title.keys() & a.full.keys()
    heads = a.title.keys() & b.title.keys()
    views = []
    # A headline of one or two terms ("Lindsey Vonn", a podcast guest) names a subject,
    # not an event: the headline views need a few terms on both sides.
    if min(len(a.title), len(b.title)) >= MIN_HEADLINE:
        views.append(("headline", _cosine(a.title, b.title, heads, at * bt), heads))
        contained = min(_contained(a.title, in_b, at), _contained(b.title, in_a, bt))
        views.append(("contained", contained, in_b | in_a))
    if len(a.full) > len(a.title) and len(b.full) > len(b.title):
        leads = a.full.keys() & b.full.keys()
        views.append(("lead", _cosine(a.full, b.full, leads, af * bf), leads))
    # Distinctive in either item: a story's own weights date from before it was counted.
    top_a, top_b = a.top, b.top

    def distinct(shared: set[int]) -> int:
        return sum(a.full.get(h, 0.0) >= top_a or b.full.get(h, 0.0) >= top_b for h in shared)

    ranked = sorted(views, key=lambda v: (distinct(v[2]) >= MIN_SHARED, v[1]), reverse=True)
    if not ranked:
        return Similarity(0.0, "headline", (), False)
    view, score, shared = ranked[0]
    ordered = tuple(sorted(shared, key=lambda h: (-a.full.get(h, 0.0), h)))
    agreed = sum(a.full.get(h, 0.0) >= top_a and b.full.get(h, 0.0) >= top_b for h in shared)
    return Similarity(score, view, ordered, distinct(shared) >= MIN_SHARED, agreed)


def wording(a: str, b: str) -> float:
    """Return how alike two headlines are worded (0–1): rapidfuzz's token-set ratio of their terms.

    Unweighted, so it only counts where the weighted score already shows
    the same rare terms (``grouping``): "prime minister … election win" is
    worded alike for two countries.
    """
    ta, tb = terms_of(a), terms_of(b)
    numbers_a, numbers_b = _numbers(ta), _numbers(tb)
    if numbers_a - numbers_b and numbers_b - numbers_a:
        return 0.0  # "day 1,455" and "day 1,456", magnitude 6.8 and 5.9: worded alike, not alike
    return fuzz.token_sort_ratio(" ".join(ta), " ".join(tb)) / 100


def _numbers(terms: Iterable[str]) -> set[str]:
    return {t for t in terms if t.isdigit()}


def numbers_meet(a: str, b: str) -> bool:
    """Return whether two headlines share a number other than a year, or neither has one.

    "Day 1,455" is another day's list than "first day of the talks", and
    "magnitude 6.8" another quake than "magnitude 5.9"; "200 cases" and "31 new
    infections, 200 in all" count the same outbreak.
    """
    na, nb = _numbers(terms_of(a)), _numbers(terms_of(b))
    return bool(_counts(na) & _counts(nb)) or not (na or nb)


def _counts(numbers: set[str]) -> set[str]:
    # A shared year is no evidence: everything that year has it ("Super Bowl 2026", "2026.06").
    return {t for t in numbers if not (len(t) == 4 and t[:2] in ("19", "20"))}
