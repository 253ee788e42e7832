"""Word forms per language: reduce an inflected word to its dictionary form.

A watchlist with ``languages: [ru, uk, de, pl, en]`` matches its unquoted
terms by dictionary form: ``Курском`` → ``курск``, ``soldiers`` → ``soldier``,
``żołnierzy`` → ``żołnierz``. The only module that imports simplemma, which
lemmatises ~50 languages from dictionaries (bench/analysers.py compares it
with Snowball stemmers and pymorphy3).

Decisions:

- A word is looked up as written: the dictionaries are case-sensitive
  ("Курском" is the town, "курском" the adjective). A word in capitals is an
  acronym up to four letters (US, AIDS, КНДР, ЗСУ: no other forms) and else is
  looked up capitalised ("КУРСКОМ", "SOLDATEN" in a shouted headline).
- The dictionary form is then normalised like any token (case and diacritics
  folded). A word whose form is not one token keeps its own token, so the
  forms of a text line up token for token with its canonical tokens, and
  highlights keep exact offsets.
- Forms are cached per (language, word) and per (language, piece of text
  between spaces): in a worker's steady state an item's forms cost one dict
  lookup per piece per language some watchlist asks for.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from typing import Any

from worker.rules.text import INVISIBLE_RE, TOKEN_RE, Pieces, normalise_word

__all__ = ["check_languages", "forms_canonical", "known_languages", "word_form"]


@lru_cache(maxsize=1)
def known_languages() -> frozenset[str]:
    """Return the language codes a watchlist may ask for (ISO 639-1 where one exists)."""
    # simplemma is imported on first use: 50 ms that a config without languages never pays.
    from simplemma.strategies.dictionaries.dictionary_factory import SUPPORTED_LANGUAGES

    return frozenset(SUPPORTED_LANGUAGES)


@lru_cache(maxsize=1)
def _lemmatizer() -> Any:
    from simplemma import Lemmatizer
    from simplemma.strategies.default import DefaultStrategy

    # low_memory reads the compressed dictionaries in place: ~20 MB a language instead
    # of ~150 MB (731 MB for ru, uk, de, pl and en together), at ~10 us per uncached
    # word. Our own caches sit in front of it, so it keeps none of its own.
    return Lemmatizer(cache_max_size=0, lemmatization_strategy=DefaultStrategy(low_memory=True))


def check_languages(codes: tuple[str, ...]) -> str | None:
    """Return a message naming the first unknown language code in ``codes``, or None."""
    for code in codes:
        if code not in known_languages():
            return f"unknown language {code!r} (known: {', '.join(sorted(known_languages()))})"
    return None


_ACRONYM = 4  # letters: a word in capitals up to this long is an acronym


@lru_cache(maxsize=100_000)
def word_form(lang: str, word: str) -> str | None:
    """Return the normalised dictionary form of one original word, None if not one token."""
    word = unicodedata.normalize("NFC", INVISIBLE_RE.sub("", word))
    if word.isupper() and len(word) > 1:
        if len(word) <= _ACRONYM:
            return None  # AIDS is not a form of "aid", nor US of "u"
        word = word.capitalize()
    if not word:
        return None
    tokens = normalise_word(_lemmatizer().lemmatize(word, lang))
    return tokens[0] if len(tokens) == 1 else None


def _piece_forms(lang: str, piece: str) -> str:
    """Return the forms of the tokens of ``piece``, one per token, space-joined."""
    out: list[str] = []
    for m in TOKEN_RE.finditer(piece):
        tokens = normalise_word(m.group())
        form = word_form(lang, m.group()) if len(tokens) == 1 else None
        out.extend((form,) if form else tokens)
    return " ".join(out)


_PIECES: dict[str, Pieces] = {}


def forms_canonical(text: str, lang: str) -> str:
    """Return the forms of ``text``'s tokens in ``lang``, laid out like its canonical form."""
    pieces = _PIECES.get(lang)
    if pieces is None:
        pieces = _PIECES[lang] = Pieces(lambda piece: _piece_forms(lang, piece), 50_000)
    return pieces.canonical(text)
