"""Rule text handling: HTML to text, normalisation, tokens and their offsets."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.rules import html_to_text
from worker.rules.markup import collapse
from worker.rules.text import (
    ALPHABETS,
    CJK_PUNCT,
    PLAIN_SPACELESS,
    TOKEN_RE,
    Alphabet,
    Field,
    spread,
    tokenize,
    words,
)


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("plain text", "plain text"),
        ("AT&amp;T &#160;and&nbsp;co", "AT&T and co"),  # entities decoded, no-break space collapsed
        ("Tom &amp; Jerry &lt;3", "Tom & Jerry <3"),
        ("a  \t b\n\n\n c", "a b\nc"),
        ("<p>One</p><p>Two</p>", "One\nTwo"),
        ("line<br>break<br/>again", "line\nbreak\nagain"),
        ("<b>bold</b> and <i>it</i>alic", "bold and italic"),
        (
            '<a href="https://kursk.example/" title="Kursk">link</a>',
            "link",
        ),  # attributes are not text
        ("<script>var kursk = 1;</script>visible<style>p {}</style>", "visible"),
        ("<ul><li>one</li><li>two</li></ul>", "one\ntwo"),
        ("<div>Kyiv&#8217;s <em>army</em></div>", "Kyiv’s army"),
        ("x <!-- a comment --> y", "x y"),
        ("<td>a</td><td>b</td>", "a\nb"),
        ("", ""),
        ("   ", ""),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("North-Korean soldiers", ["north", "korean", "soldiers"]),
        ("Kursk's region", ["kursk", "s", "region"]),
        ("“Kursk”—region", ["kursk", "region"]),
        ("snake_case", ["snake", "case"]),
        ("Zelenský ZELENSKYY", ["zelensky", "zelenskyy"]),
        ("Straße GRÜSSE", ["strasse", "grusse"]),
        ("Київ Курськ", ["киів", "курськ"]),
        ("Ёлка, йод", ["елка", "иод"]),
        ("북한 군인", ["북한", "군인"]),
        ("東京で", ["東", "京", "で"]),
        ("ＡＢＣ１２", ["abc12"]),
        ("ﬁnance", ["finance"]),
        ("Kur\u00adsk e\u0301cole", ["kursk", "ecole"]),
        ("İstanbul", ["istanbul"]),
        ("12,000 troops", ["12", "000", "troops"]),
    ],
)
def test_words(text: str, tokens: list[str]) -> None:
    assert words(text) == tokens
    got, spans = tokenize(text)
    assert got == tokens
    assert all(0 <= a < b <= len(text) for a, b in spans)


ALPHABET = st.sampled_from(
    list("abcXYZ09 -'.,_\n\t") + list("“”’—–\u00a0\u00ad") + list("éýüßÉКиїё북한東京ﬁ\u0301")
)


@settings(max_examples=300, deadline=None)
@given(st.text(ALPHABET, max_size=40))
def test_fast_path_equals_slow_path(text: str) -> None:
    """The C-only path for (near-)ASCII text gives the tokens and offsets of the general one."""
    field = Field(text)
    tokens, spans = tokenize(text)
    assert field.canonical == " " + " ".join(tokens) + " "
    assert field.spans == spans
    for i, (a, b) in enumerate(spans):
        assert field.char_span(i, i + 1) == (a, b)
        assert text[a:b].strip() == text[a:b]


def _check_field(text: str) -> None:
    field = Field(text)
    tokens, spans = tokenize(text)
    assert field.canonical == " " + " ".join(tokens) + " "
    assert field.spans == spans


# Scripts the piece-cached path serves, with their marks, digits, spaces and punctuation.
SCRIPTS = st.sampled_from(
    list("Курском солдатів їжак ЁЖ Żołnierzy Straße Ἀθῆναι ΣΊΣΥΦΟΣ Việt Nam 北朝鮮の兵士 한국어")
    + list("\u0301\u0308\u00ad\u200b\u2060\ufeff\u00a0\u2003\u3000\u2028\x85\x1c")
    + list("½²ﬁǅİ№℃ｶﾞ㋐,.;:!?«»—–-'’\"()[]_0123456789")
)


@settings(max_examples=500, deadline=None)
@given(st.text(SCRIPTS, max_size=60))
def test_piece_path_equals_tokenize_on_scripts(text: str) -> None:
    """Cutting at white space and caching pieces gives exactly the tokens and offsets of tokenize."""
    _check_field(text)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60))
def test_piece_path_equals_tokenize_on_any_text(text: str) -> None:
    _check_field(text)


def test_no_white_space_character_is_part_of_a_word() -> None:
    """The piece path relies on it: str.split() never cuts through a token."""
    spaces = [chr(c) for c in range(0x110000) if chr(c).isspace()]
    assert spaces
    assert [c for c in spaces if TOKEN_RE.search(c)] == []


@pytest.mark.parametrize(
    "text",
    ["Під Курськом — бої", "Straße  und\u00a0Weg", "— … —", "北朝鮮 の兵士", "a\u00adb c", ""],
)
def test_piece_path_cases(text: str) -> None:
    _check_field(text)


def test_plain_spaceless_characters_are_their_own_tokens() -> None:
    """Runs of these are spread without normalising: each must already be a normal token."""
    ranges = re.findall(r"(.)-(.)|(.)", PLAIN_SPACELESS)
    chars = [chr(c) for a, b, one in ranges for c in range(ord(a or one), ord(b or one) + 1)]
    assert len(chars) > 20_000
    assert [c for c in chars if tokenize(c)[0] != [c] or len(TOKEN_RE.findall(c)) != 1] == []


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        st.sampled_from(list("北朝鮮の兵士がクルスクで捕虜に。、「」ｶﾞ㋐\u3099 abc1\u0301")),
        max_size=80,
    )
)
def test_piece_path_equals_tokenize_on_cjk(text: str) -> None:
    _check_field(text)


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(min_codepoint=0x3400, max_codepoint=0x9FFF), min_size=1))
def test_spread_is_join_with_spaces(run: str) -> None:
    assert spread(run) == " ".join(run)


def test_cjk_punctuation_only_separates() -> None:
    ranges = re.findall(r"(.)-(.)|(.)", CJK_PUNCT)
    chars = [chr(c) for a, b, one in ranges for c in range(ord(a or one), ord(b or one) + 1)]
    assert [c for c in chars if TOKEN_RE.search(c)] == []


@settings(max_examples=400, deadline=None)
@given(
    st.text(
        st.sampled_from(list("北朝鮮の兵士ガ。，、「」（）！-/&2０Ａa\U00020000\u3099\u0301ｶ")),
        max_size=60,
    )
)
def test_spaceless_pieces_equal_tokenize(text: str) -> None:
    _check_field(text)


LATIN = st.sampled_from([chr(c) for c in range(0x20, 0x250)] + list("\u00a0\u2019\u2014"))


@settings(max_examples=500, deadline=None)
@given(st.text(LATIN, max_size=60))
def test_latin_fold_path_equals_tokenize(text: str) -> None:
    """Latin text of every Latin-1 and Latin Extended character: the tokens and offsets of tokenize."""
    _check_field(text)


@pytest.mark.parametrize(
    "letters", ALPHABETS, ids=["western", "central", "baltic-turkish", "cyrillic", "greek"]
)
def test_alphabet_folds_every_pair_of_its_characters_as_tokenize_does(letters: str) -> None:
    """One character for one, every pair side by side: the tokens and offsets of tokenize."""
    chars = Alphabet(letters).decoding
    assert len(chars) == 256
    for first in chars:
        text = "".join(first + second for second in chars)
        field = Field(text)
        assert field._alphabet is not None  # the fast path, not the piece cache
        _check_field(text)


def test_text_outside_every_alphabet_takes_the_piece_path() -> None:
    for text in ("Курск и Łódź", "北朝鮮", "ﬁnal", "e\u0301", "a\u00adb", "½"):
        assert Field(text)._alphabet is None
        _check_field(text)


_RUN_OF_SPACES = re.compile(r"[^\S\n]+")
_RUN_WITH_NEWLINE = re.compile(r" ?\n[\s]*")


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from(list("ab \n\t\r\x0b\x0c\x1c\x85\u00a0\u2028\u3000")), max_size=30))
def test_collapse_equals_the_regex_definition(text: str) -> None:
    """Runs of white space become one space, or one line break when they hold one; ends trimmed."""
    expected = _RUN_WITH_NEWLINE.sub("\n", _RUN_OF_SPACES.sub(" ", text)).strip()
    assert collapse(text) == expected
