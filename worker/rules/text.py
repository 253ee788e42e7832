"""Turn plain text into normalised word tokens, with their offsets.

Decisions:

- Tokens are runs of letters, digits and combining marks found in the
  *original* text; everything else (spaces, hyphens, apostrophes, curly quotes,
  dashes, ``_``) separates words, so ``North-Korean`` ≡ ``north korean`` and
  ``Kursk's`` yields ``kursk`` + ``s``.
- Each token is normalised on its own: NFKC, casefold, Latin/Greek/Cyrillic
  diacritics (U+0300–U+036F) dropped, then NFC again so Hangul stays in
  syllables. ``Zelenský`` → ``zelensky``, ``Straße`` → ``strasse``,
  ``й`` → ``и``. Soft hyphens and zero-width joiners inside a word vanish.
- Scripts written without spaces (Han, Kana, Thai, Lao, Khmer, Myanmar) give
  one token per character, so a term written in them matches as a substring.
- Every token keeps the span of the original text it came from, so highlights
  index the text the user sees. The canonical form of a field is its tokens
  joined by single spaces with a space at each end; a term matches a field
  exactly when ``" term "`` (or ``" prefix"``) is a substring of it.
- Speed: text written in one alphabet (ASCII; Western, Central European, Baltic
  and Turkish Latin; Cyrillic; Greek) is folded with C calls only, one character
  for one (``Alphabet``), as fast per character as ASCII. Other text (Chinese,
  Arabic, mixed scripts, rare characters) is cut at white space (no token spans
  white space) and each piece is normalised once per process and cached: news
  repeats its words, so most pieces are cache hits. Offsets are only needed for
  highlights, so they are computed when asked.
"""

from __future__ import annotations

import codecs
import re
import sys
import unicodedata
from collections.abc import Callable
from functools import lru_cache

# Characters of scripts without spaces between words: each is its own token.
SPACELESS = (
    "\u0e00-\u0eff"  # Thai, Lao
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
    "\u2e80-\u2fdf"  # CJK radicals
    "\u3005-\u3007\u3021-\u3029\u3031-\u3035\u3038-\u303c"  # CJK marks, ideographic numbers
    "\u3040-\u30ff\u31f0-\u31ff"  # Hiragana, Katakana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # Han
    "\uff66-\uff9f"  # half-width Katakana
    "\U00020000-\U0003134f"  # Han extensions
)

# Spaceless-script characters of the BMP that are already normalised tokens (Han, kana
# letters): a run of them is spread into one token per character without any lookup.
PLAIN_SPACELESS = (
    "\u3041-\u3096\u309d\u309e\u30a1-\u30fa\u30fc-\u30fe"  # Hiragana, Katakana letters
    "\u3400-\u4dbf\u4e00-\u9fff"  # Han
)
_PLAIN_SPACELESS_RE = re.compile(f"[{PLAIN_SPACELESS}]")
# CJK punctuation, all separators: blanked before a spaceless piece is spread.
CJK_PUNCT = (
    "\u3000-\u3004\u3008-\u3011\u3014-\u301f\u2018-\u201f\u2026\u00b7"
    "\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65"
)
_CJK_PUNCT_RE = re.compile(f"[{CJK_PUNCT}]")
# After spread(): characters other than Han/kana, one space apart, were one run before.
_OTHER_RUN_RE = re.compile(f"[^{PLAIN_SPACELESS} ](?: [^{PLAIN_SPACELESS} ])*")


def _mark_class() -> str:
    """Return a regex class body of every combining mark in the BMP, plus in-word format chars."""
    ranges: list[tuple[int, int]] = []
    for cp in range(0x300, 0x10000):
        if unicodedata.category(chr(cp)).startswith("M"):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    body = "".join(f"{chr(a)}-{chr(b)}" if a != b else chr(a) for a, b in ranges)
    # Soft hyphen, zero-width space/joiners, word joiner, BOM: invisible inside a word.
    return re.escape(body).replace("\\-", "-") + "\u00ad\u200b-\u200d\u2060\ufeff"


INVISIBLE_RE = re.compile("[\u00ad\u200b-\u200d\u2060\ufeff]")
_MARKS = _mark_class()
#: A word: one spaceless-script character, or a run of other letters/digits/marks.
TOKEN_RE = re.compile(f"[{SPACELESS}]|(?:[^\\W_{SPACELESS}]|[{_MARKS}])+")
_ASCII_TOKEN_RE = re.compile(r"[A-Za-z0-9]+")
_RUN_RE = re.compile(r"\S+")
# After NFKC a token may contain separators (½ → 1⁄2) or fold into spaceless chars.
_SPLIT_RE = re.compile(f"[{SPACELESS}]|(?:[^\\W_{SPACELESS}]|[{_MARKS}])+")


@lru_cache(maxsize=200_000)
def normalise_word(word: str) -> tuple[str, ...]:
    """Return the normalised tokens of one original token (usually exactly one)."""
    if word.isascii():
        return (word.lower(),)
    s = unicodedata.normalize("NFKC", word).casefold()
    s = unicodedata.normalize("NFKD", s)
    s = "".join(c for c in s if not "\u0300" <= c <= "\u036f")
    s = INVISIBLE_RE.sub("", unicodedata.normalize("NFC", s))
    return tuple(sys.intern(t) for t in _SPLIT_RE.findall(s))


def tokenize(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Return the normalised tokens of ``text`` and each one's span in ``text``."""
    if text.isascii():
        spans = [m.span() for m in _ASCII_TOKEN_RE.finditer(text)]
        return [text[a:b].lower() for a, b in spans], spans
    tokens: list[str] = []
    spans = []
    for m in TOKEN_RE.finditer(text):
        for tok in normalise_word(m.group()):
            tokens.append(tok)
            spans.append(m.span())
    return tokens, spans


def _piece(piece: str) -> str:
    """Return the normalised tokens of a piece of text without white space, space-joined."""
    return " ".join(tok for m in TOKEN_RE.finditer(piece) for tok in normalise_word(m.group()))


def spread(run: str) -> str | None:
    """Return ``" ".join(run)``, 8x faster on CJK text; None if ``run`` is not all BMP.

    ``str.join`` over a string makes an object per character; interleaving the
    UTF-16 code units with spaces is a handful of C-level slice copies.
    """
    units = run.encode("utf-16-le", "surrogatepass")
    if len(units) != 2 * len(run):
        return None  # a character outside the BMP takes two code units
    out = bytearray(2 * len(units))
    out[0::4] = units[0::2]
    out[1::4] = units[1::2]
    out[2::4] = b" " * len(run)
    return out[:-2].decode("utf-16-le")


class Pieces:
    """Turn text into a canonical form piece by piece, each distinct piece computed once.

    A piece is a run of text between white space; no token spans white space, so a
    text's tokens are its pieces' tokens in order. ``convert`` maps a piece to its
    tokens joined by single spaces ("" for none). The cache is a plain dict, looked
    up in one C call per text; it is emptied when it holds ``maxsize`` pieces (about
    185 bytes a piece of Cyrillic text: 18 MB at the default size).
    """

    def __init__(self, convert: Callable[[str], str], maxsize: int = 100_000) -> None:
        self.convert = convert
        self.maxsize = maxsize
        self.cache: dict[str, str] = {}

    def canonical(self, text: str) -> str:
        """Return the converted tokens of ``text`` joined by single spaces, a space at each end."""
        pieces = text.split()
        try:
            out = list(map(self.cache.__getitem__, pieces))
        except KeyError:
            out = list(map(self._miss, pieces))
        return " " + " ".join(filter(None, out)) + " "  # a piece may hold no token: ""

    def _miss(self, piece: str) -> str:
        got = self.cache.get(piece)
        if got is None:
            if _PLAIN_SPACELESS_RE.search(piece):
                return self._spaceless(piece)
            if len(self.cache) >= self.maxsize:
                self.cache.clear()
            got = self.convert(piece)
            # Most pieces of lower-case text are their own form: keep one string, not two.
            got = self.cache[piece] = piece if got == piece else got
        return got

    def _spaceless(self, piece: str) -> str:
        # Chinese or Japanese text has no spaces: a piece is a whole paragraph, seldom
        # seen twice, so it is not cached. Its Han and kana characters are one token
        # each: spread them all at once, then gather back and convert the runs of other
        # characters (digits, Latin words), usually few. C calls, bar one per such run.
        spaced = spread(_CJK_PUNCT_RE.sub(" ", piece))
        if spaced is None:
            return self.convert(piece)
        spaced = _OTHER_RUN_RE.sub(self._gather, spaced)
        while "  " in spaced:  # str.replace is a C loop; a regex here costs 5x more
            spaced = spaced.replace("   ", " ").replace("  ", " ")
        return spaced.strip()

    def _gather(self, run: re.Match[str]) -> str:
        return " " + self._miss(run.group().replace(" ", "")) + " "


_PIECES = Pieces(_piece)


def canonical(text: str) -> str:
    """Return the canonical form of ``text``: its tokens joined by spaces, a space at each end."""
    return _PIECES.canonical(text)


# Separators common in news of every script: no-break space, guillemets, dashes, curly
# quotes, bullets, and a few symbols. Each alphabet holds them and ASCII.
_COMMON = (
    "\u00a0\u00ab\u00bb\u00b7\u00a1\u00bf\u00a7\u00a9\u00ae\u00b0\u00a3\u00b2\u00b3\u00d7"
    "\u2010\u2011\u2012\u2013\u2014\u2015\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f"
    "\u2020\u2021\u2022\u2026\u2039\u203a\u20ac\u2116\u2122"
)
# The letters of each alphabet, at most 128 characters with _COMMON: Western European
# (Latin-1), Central European (pl cs sk hu hr sl ro), Baltic and Turkish, Cyrillic (ru uk
# be sr mk bg), Greek.
ALPHABETS = (
    "".join(chr(c) for c in range(0xC0, 0x100) if c not in (0xD7, 0xF7)) + "œŒÿŸšŠžŽ",
    "ąćęłńśźżĄĆĘŁŃŚŹŻčďěňřšťůžČĎĚŇŘŠŤŮŽĺľŕĹĽŔőűŐŰđĐăĂșȘțȚşŞţŢóÓáÁéÉíÍúÚýÝöÖüÜäÄôÔâÂîÎçÇ",
    "ğĞıİşŞçÇöÖüÜâÂîÎûÛāĀēĒīĪūŪķĶļĻņŅģĢčČšŠžŽąĄęĘėĖįĮųŲõÕäÄéÉ",
    "".join(map(chr, range(0x410, 0x450))) + "ёЁєЄіІїЇўЎґҐђЂјЈљЉњЊћЋџЏѓќѕ",
    "".join(chr(c) for c in range(0x386, 0x3CF) if c not in (0x387, 0x38B, 0x38D, 0x3A2)),
)


def _fold_char(char: str) -> str | None:
    """Return what ``char`` becomes in every context: a space for a separator, else one letter.

    None when it becomes something else: nothing (a mark), several characters, or several
    tokens (½). ``ß`` and ``ẞ`` become ``ß``, which the canonical form spells ``ss``.
    """
    if not TOKEN_RE.fullmatch(char):
        return " "
    tokens = normalise_word(char)
    if tokens == ("ss",):
        return "ß"
    return tokens[0] if len(tokens) == 1 and len(tokens[0]) == 1 else None


class Alphabet:
    """Fold text written in one alphabet in a few C passes, one character for one.

    A charmap codec turns each character into a byte (ASCII keeps its code, so white
    space stays white space), ``bytes.translate`` turns each byte into that of the
    character it folds to (a separator into a space), and decoding gives text with the
    same offsets. The canonical form splits and joins the bytes before decoding, which
    costs less than doing it on text. Text holding a character outside the alphabet
    raises in the first pass, usually at its first letter.
    """

    def __init__(self, letters: str) -> None:
        chars = dict.fromkeys(map(chr, range(128)))  # an ordered set
        for char in _COMMON + letters:
            folded = _fold_char(char)
            if folded is not None:
                chars.update(dict.fromkeys((char, folded)))
        if len(chars) > 256:
            raise ValueError(f"an alphabet holds at most 256 characters, not {len(chars)}")
        # Private-use characters fill the table; they are separators, as in tokenize().
        self.decoding = "".join(chars) + "".join(map(chr, range(0xE000, 0xE100 - len(chars))))
        self.encoding = codecs.charmap_build(self.decoding)
        self.fold_table = bytes(self.decoding.index(_fold_char(c) or " ") for c in self.decoding)
        self.sharp_s = "ß" in self.decoding

    def encode(self, text: str) -> bytes | None:
        """Return ``text`` as bytes of this alphabet, or None if it holds another character."""
        try:
            return codecs.charmap_encode(text, "strict", self.encoding)[0]
        except UnicodeEncodeError:
            return None

    def canonical(self, raw: bytes) -> str:
        """Return the canonical form of the text encoded as ``raw``."""
        tokens = b" " + b" ".join(raw.translate(self.fold_table).split()) + b" "
        text = self._decode(tokens)
        return text.replace("ß", "ss") if self.sharp_s and "ß" in text else text

    def folded(self, raw: bytes) -> str:
        """Return the folded text encoded as ``raw``: each token's offsets are the original's."""
        return self._decode(raw.translate(self.fold_table))

    def _decode(self, folded: bytes) -> str:
        if folded.isascii():  # ASCII keeps its codes: the codec's fast path, 5x a charmap's
            return folded.decode("ascii")
        return codecs.charmap_decode(folded, "strict", self.decoding)[0]


_ALPHABETS = tuple(Alphabet(letters) for letters in ALPHABETS)
# The first character that tells alphabets apart, and the alphabets that hold each such one:
# text in a script none holds (Chinese, Arabic) costs one search, not an attempt per alphabet.
_TELLING_RE = re.compile(f"[^\x00-\x7f{re.escape(_COMMON)}]")
_HOLDING = {
    char: tuple(a for a in _ALPHABETS if char in a.decoding)
    for char in "".join(a.decoding[128:] for a in _ALPHABETS)
}


def _alphabet(text: str) -> tuple[Alphabet | None, bytes]:
    """Return the first alphabet that writes ``text``, with ``text`` in its bytes (None, b"")."""
    if text.isascii():
        return _ALPHABETS[0], text.encode("ascii")
    telling = _TELLING_RE.search(text)
    for alphabet in _HOLDING.get(telling.group(), ()) if telling else _ALPHABETS[:1]:
        raw = alphabet.encode(text)
        if raw is not None:
            return alphabet, raw
    return None, b""


def words(text: str) -> list[str]:
    """Return the normalised tokens of ``text``."""
    if text.isascii():
        return _ASCII_TOKEN_RE.findall(text.lower())
    return Field(text).canonical.split()


class Field:
    """One text field of an item, normalised once; spans are computed only when asked."""

    __slots__ = ("_alphabet", "_raw", "_spans", "canonical", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._spans: list[tuple[int, int]] | None = None
        self._alphabet: Alphabet | None
        self._alphabet, self._raw = _alphabet(text)
        if self._alphabet is not None:
            self.canonical = self._alphabet.canonical(self._raw)  # C calls only: the fast path
        else:
            self.canonical = canonical(text)

    @property
    def spans(self) -> list[tuple[int, int]]:
        """Return the original-text span of each token."""
        if self._spans is None:
            if self._alphabet is None:
                self._spans = tokenize(self.text)[1]
            else:  # the folded text keeps the original offsets
                folded = self._alphabet.folded(self._raw)
                self._spans = [m.span() for m in _RUN_RE.finditer(folded)]
        return self._spans

    def token_index(self, pos: int) -> int:
        """Return the index of the token whose leading space is at canonical ``pos``."""
        return self.canonical.count(" ", 0, pos)

    def char_span(self, start: int, end: int) -> tuple[int, int]:
        """Return the original-text span of tokens ``start`` to ``end`` (exclusive)."""
        spans = self.spans
        return spans[start][0], spans[end - 1][1]
