"""Rule engine: query syntax, matching, highlights, aliases, errors, explain."""

from __future__ import annotations

import re

import pytest
from shared import shared_dir

from worker.errors import QueryError
from worker.model import TEXT_FIELDS
from worker.rules import Engine, RuleSpec, explain, html_to_text, render_explanation, validate


def fires(query: str, text: str, **kw: object) -> bool:
    """Return whether ``query`` fires on ``text`` as the content field."""
    spec = RuleSpec("w", "r", query=query, **kw)  # type: ignore[arg-type]
    validate(spec)
    return bool(Engine([spec]).match({"content": text}))


def check_highlights(matches: list, texts: dict[str, str]) -> None:
    for m in matches:
        keys = [(TEXT_FIELDS.index(h.field), h.start) for h in m.highlights]
        assert keys == sorted(keys)
        assert len({(h.field, h.start, h.end) for h in m.highlights}) == len(m.highlights)
        for h in m.highlights:
            assert texts[h.field][h.start : h.end] == h.text


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        # words are whole words, case-insensitive
        ("Korean", "a North Korean soldier", True),
        ("korean", "NORTH KOREAN", True),
        ("Korean", "Koreans fled", False),
        ("Korea", "North Korean", False),
        # prefix
        ("Korean*", "Koreans fled", True),
        ("soldier*", "two soldiers", True),
        ("soldier*", "a soldier", True),
        ("soldier*", "resoldier", False),
        # implicit AND, explicit AND, OR, precedence
        ("north kursk", "North Korean troops in Kursk", True),
        ("north kursk", "North Korean troops", False),
        ("north AND kursk", "Kursk north", True),
        ("kyiv OR kursk", "fighting in Kursk", True),
        ("kyiv OR kursk", "fighting in Bakhmut", False),
        ("a b OR c", "c", True),  # (a AND b) OR c
        ("a b OR c", "a", False),
        ("a (b OR c)", "c", False),
        ("a (b OR c)", "a c", True),
        ("a OR b c", "a", True),  # a OR (b AND c)
        # NOT and leading -
        ("kursk NOT football", "Kursk football club", False),
        ("kursk NOT football", "Kursk offensive", True),
        ("kursk -football", "Kursk football club", False),
        ("kursk -football", "Kursk offensive", True),
        ("kursk -(football OR hockey)", "Kursk hockey", False),
        ("kursk AND NOT football", "Kursk offensive", True),
        ("NOT football kursk", "Kursk", True),
        ("well-known", "a well known fact", True),  # hyphen inside a word, not NOT
        # phrases
        ('"North Korean"', "North Korean soldier", True),
        ('"North Korean"', "North-Korean soldier", True),
        ('"North Korean"', "Korean North", False),
        ('"North Korean"', "North, Korean", True),  # punctuation is not a word
        ('"North Korean"', "North big Korean", False),
        ('"north kor*"', "North Koreans", True),
        ("North-Korean", "north korean", True),
        # apostrophes split words
        ("Kursk", "Kursk's governor", True),
        ("Kursk's", "Kursk s", True),
        # NEAR
        ('"North Korean" NEAR/5 captured', "North Korean soldier was captured", True),
        ('"North Korean" NEAR/5 captured', "captured a North Korean", True),
        ("a NEAR/2 b", "a x x b", True),
        ("a NEAR/2 b", "a x x x b", False),
        ("a NEAR/0 b", "a b", True),
        ("a NEAR/0 b", "b a", True),
        ("a NEAR/0 b", "a x b", False),
        ("a NEAR/3 (b OR c)", "c x a", True),
        ("a NEAR/3 (b OR c)", "c x x x x a b", True),
        ("a NEAR/1 (b OR c)", "c x x a x x b", False),
        ("(a NEAR/1 b) NEAR/1 c", "a b x c", True),
        ("(a NEAR/1 b) NEAR/1 c", "a b x x c", False),
        ("a NEAR/1 b -c", "a b c", False),
        # field scope
        ("title:kursk", "kursk", False),  # text is in content
        ("content:kursk", "kursk", True),
        ("content:(kursk OR kyiv)", "kyiv", True),
        ('content:"north korean"', "North Korean", True),
        ("title:(kursk OR kyiv)", "kyiv", False),
        # regex (RE2, case-insensitive, original text)
        ("/kur.k/", "KURSK", True),
        ("/\\bky(iv|ev)\\b/", "Kiev and Kyiv", True),
        ("/^North/", "North Korean", True),
        ("/x{2,}y/ kursk", "xxxy kursk", True),
        ("/(a+)+$/", "a" * 40 + "!", False),  # no catastrophic backtracking
        ("content:/kursk/", "Kursk", True),
        ("/kursk/ NEAR/1 region", "Kursk region", True),
        # lower-case operators are words
        ("kursk and", "Kursk and Kyiv", True),
        ("kursk and", "Kursk", False),
    ],
)
def test_query(query: str, text: str, expected: bool) -> None:
    assert fires(query, text) is expected


@pytest.mark.parametrize(
    ("term", "text", "expected"),
    [
        # Ukrainian / Russian (Cyrillic), with case and ё/й folding
        ("Курськ", "Бої в Курській області", False),
        ("Курськ*", "Бої в Курській області", True),
        ("Київ", "КИЇВ заявив", True),
        ("Курск", "ВСУ в Курске и Курск", True),
        ("ёлка", "Елка", True),
        ('"Северная Корея"', "Северная Корея отправила", True),
        # Korean Hangul (spaced)
        ("북한", "북한 군인 포로", True),
        ('"북한 군인"', "북한 군인 포로", True),
        ("북한*", "북한군 포로", True),
        ("북한", "북한군 포로", False),
        # German ß / umlauts / diacritics
        ("Straße", "STRASSE gesperrt", True),
        ("strasse", "Hauptstraße", False),
        ("Müller", "Herr MÜLLER sagt", True),
        ("Muller", "Herr Müller", True),
        ("Zelensky", "Zelenský said", True),
        ("Zelenský", "Zelensky said", True),
        ("ecole", "l'e\u0301cole", True),  # decomposed accent
        # spaceless scripts match as substrings
        ("東京", "東京都庁で会見", True),
        ("都庁", "東京都庁で会見", True),
        ("京都", "東京で", False),
        ("ロシア", "ロシア軍が", True),
        ("กรุงเทพ", "ที่กรุงเทพมหานคร", True),
        # curly quotes and dashes are punctuation; NFKC folds width
        ("Kursk", "“Kursk”—region", True),
        ("ABC", "ＡＢＣ news", True),
        ("kursk", "Kur\u00adsk", True),  # soft hyphen inside a word
    ],
)
def test_languages(term: str, text: str, expected: bool) -> None:
    spec = RuleSpec("w", "r", all=(term,))
    validate(spec)
    matches = Engine([spec]).match({"content": text})
    assert bool(matches) is expected
    check_highlights(matches, {"content": text})


@pytest.mark.parametrize(
    ("query", "column", "message"),
    [
        ("", 1, "empty query"),
        ("   ", 1, "empty query"),
        ("(a OR b", 1, "parenthesis"),
        ("a (b", 3, "parenthesis"),
        ("a b)", 4, "parenthesis"),
        ("a NEAR b", 3, "NEAR needs a number"),
        ("a NEAR/x b", 3, "NEAR needs a number"),
        ("a NEAR/2", 3, "needs a term"),
        ("a /(b/", 3, "invalid regex"),
        ("a /b", 3, "unterminated regex"),
        ('x "a b', 3, "unterminated phrase"),
        ("kursk foo:bar", 7, "unknown field"),
        ("OR a", 1, "OR needs a term before"),
        ("a OR", 3, "OR needs a term after"),
        ("a AND", 3, "AND needs a term after"),
        ("-kursk", 1, "none of its terms"),
        ("NOT a OR b", 1, "none of its terms"),
        ("a NEAR/2 -b", 3, "NEAR cannot"),
        ("a ()", 3, "empty parentheses"),
        ("so*ldier", 1, "'*'"),
        ("a &&", 3, "no letters or digits"),
        ("title:summary:a", 7, "scope"),
    ],
)
def test_query_errors(query: str, column: int, message: str) -> None:
    with pytest.raises(QueryError) as info:
        validate(RuleSpec("w", "r", query=query))
    assert message in info.value.message
    assert info.value.column == column


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (RuleSpec("w", "r", none=("football",)), "'none' alone"),
        (RuleSpec("w", "r"), "empty rule"),
        (RuleSpec("w", "r", all=("a",), fields=("foo",)), "unknown field 'foo'"),
        (RuleSpec("w", "r", all=("a",), any=("/(x/",)), "any term '/(x/'"),
        (RuleSpec("w", "r", all=("so*x",)), "all term 'so*x'"),
        (RuleSpec("w", "r", all=("a",), none=("!!",)), "none term '!!'"),
        (RuleSpec("w", "r", query="a", all=("b",)), "either"),
        (RuleSpec("w", "r", all=("a",), aliases=(("a", ("/(",)),)), "alias 'a'"),
    ],
)
def test_spec_errors(spec: RuleSpec, message: str) -> None:
    with pytest.raises(QueryError) as info:
        validate(spec)
    assert message in info.value.message
    assert info.value.column == 1


NK = RuleSpec(
    "north-korea-kursk",
    "nk-in-kursk",
    all=("North Korean", "Kursk"),
    any=("soldier*", "troops", "army"),
    none=("football",),
)


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("North Korean soldier captured in Kursk region", True),
        ("North-Korean troops in Kursk's border area", True),
        ("South Korean team wins in Kursk", False),
        ("North Korean soldiers in Kursk football stadium", False),
        ("North Korean leader visits Kursk", False),  # no any-term
    ],
)
def test_all_any_none(title: str, expected: bool) -> None:
    assert bool(Engine([NK]).match({"title": title})) is expected


def test_highlights_exact_on_html_text() -> None:
    html = (
        "<p>Kyiv&#160;says <b>North-Korean</b> soldiers&nbsp;were captured in "
        "<a href='/kursk'>Kursk&#8217;s</a> region &amp; more.</p><script>Kursk</script>"
    )
    texts = {"title": "A North Korean soldier", "content": html_to_text(html)}
    [match] = Engine([NK]).match(texts)
    check_highlights([match], texts)
    got = [(h.field, h.term, h.text) for h in match.highlights]
    assert got == [
        ("title", "North Korean", "North Korean"),
        ("title", "soldier*", "soldier"),
        ("content", "North Korean", "North-Korean"),
        ("content", "soldier*", "soldiers"),
        ("content", "Kursk", "Kursk"),
    ]


def test_highlights_only_contributing_terms() -> None:
    spec = RuleSpec("w", "r", query="kursk (army OR troops) -football OR zzz")
    texts = {"content": "Kursk army and troops"}
    [match] = Engine([spec]).match(texts)
    assert [h.term for h in match.highlights] == ["kursk", "army", "troops"]
    near = RuleSpec("w", "r", query="a NEAR/1 b")
    [match] = Engine([near]).match({"content": "b x x a b"})
    assert [(h.text, h.start) for h in match.highlights] == [("a", 6), ("b", 8)]


def test_fields_scope_whole_rule() -> None:
    spec = RuleSpec("w", "r", all=("kursk",), fields=("title",))
    engine = Engine([spec])
    assert not engine.match({"content": "Kursk"})
    [match] = engine.match({"title": "Kursk", "content": "Kursk"})
    assert [h.field for h in match.highlights] == ["title"]


def test_aliases() -> None:
    aliases = (("North Korean", ("DPRK", "Pyongyang's")), ("Kyiv", ("Kiev",)))
    spec = RuleSpec("w", "r", all=("North Korean", "Kyiv"), aliases=aliases)
    engine = Engine([spec])
    texts = {"content": "Pyongyang's men near Kiev; DPRK said"}
    [match] = engine.match(texts)
    check_highlights([match], texts)
    assert [(h.term, h.text) for h in match.highlights] == [
        ("North Korean", "Pyongyang's"),
        ("Kyiv", "Kiev"),
        ("North Korean", "DPRK"),
    ]
    query = RuleSpec("w", "q", query='"north korean" -kiev', aliases=aliases)
    assert Engine([query]).match({"content": "DPRK"})
    assert not Engine([query]).match({"content": "DPRK in Kiev"})
    # An alias names a phrase: the unquoted words of a query are separate terms.
    loose = RuleSpec("w", "q", query="north korean", aliases=aliases)
    assert not Engine([loose]).match({"content": "DPRK"})


def test_order_and_watchlist_filter() -> None:
    specs = [
        RuleSpec("b", "b1", query="kursk"),
        RuleSpec("a", "a1", query="kyiv"),
        RuleSpec("b", "b2", query="kyiv OR kursk"),
        RuleSpec("a", "a2", query="kursk"),
    ]
    engine = Engine(specs)
    assert engine.watchlists == ["b", "a"]
    assert len(engine) == 4
    texts = {"summary": "Kursk and Kyiv"}
    assert [(m.watchlist, m.rule) for m in engine.match(texts)] == [
        ("b", "b1"),
        ("b", "b2"),
        ("a", "a1"),
        ("a", "a2"),
    ]
    assert [m.rule for m in engine.match(texts, watchlists=["a"])] == ["a1", "a2"]
    assert engine.match(texts, watchlists=[]) == []


def test_explain() -> None:
    engine = Engine([NK, RuleSpec("north-korea-kursk", "q", query='"North Korean" NEAR/2 capt*')])
    texts = {"title": "North Korean football in Kursk"}
    first, second = explain(engine, texts, "north-korea-kursk")
    assert (first.rule, first.matched, second.rule, second.matched) == (
        "nk-in-kursk",
        False,
        "q",
        False,
    )
    text = render_explanation(first)
    assert text.splitlines() == [
        "✗ rule nk-in-kursk",
        "  ✗ AND",
        "    ✓ North Korean: 'North Korean'",
        "    ✓ Kursk: 'Kursk'",
        "    ✗ OR",
        "      ✗ soldier*",
        "      ✗ troops",
        "      ✗ army",
        "    ✗ NOT",
        "      ✓ football: 'football'",
    ]
    [only] = explain(engine, {"title": "North Korean was captured"}, "north-korea-kursk", "q")
    assert only.matched and only.words == ["North Korean", "captured"]
    assert render_explanation(only).splitlines()[1] == "  ✓ NEAR/2: 'North Korean', 'captured'"


def test_empty_and_missing_fields() -> None:
    engine = Engine([NK])
    assert engine.match({}) == []
    assert engine.match({"title": "", "article": "   "}) == []
    assert len(Engine([])) == 0 and Engine([]).match({"title": "x"}) == []


def test_seed_article() -> None:
    path = shared_dir("seed", "north-korean-soldier-kursk.txt")
    text = path.read_text(encoding="utf-8")
    spec = RuleSpec("north-korea-kursk", "nk-in-kursk", all=("North Korean", "Kursk"))
    texts = {"content": text}
    [match] = Engine([spec]).match(texts)
    check_highlights([match], texts)
    terms = {h.term for h in match.highlights}
    assert terms == {"North Korean", "Kursk"}
    assert all(
        h.text.lower().replace("-", " ") in ("north korean", "kursk") for h in match.highlights
    )
    # Whole words only: "North Koreans" is not "North Korean".
    expected = len(re.findall(r"\bnorth[\s-]+korean\b", text, re.IGNORECASE))
    assert sum(h.term == "North Korean" for h in match.highlights) == expected > 0
    assert any(h.text == "Kursk" for h in match.highlights)


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_shared_dir_missing(monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome):
        shared_dir("no-such-dir-for-this-test")
