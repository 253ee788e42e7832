"""Watchlist ``languages:``: unquoted terms match their inflected forms; quoted terms stay exact."""

from __future__ import annotations

import json
import re
from pathlib import Path

import feedparser
import pytest
from configs import write_config
from hypothesis import given, settings
from hypothesis import strategies as st
from shared import shared_dir

from worker.config import load_config
from worker.config.examples import example_problems
from worker.errors import ConfigError
from worker.rules import Engine, RuleSpec, explain, html_to_text, render_explanation
from worker.rules.forms import forms_canonical
from worker.rules.text import Field

# (language, term as written in a rule, text, whether the rule fires)
CASES = [
    # Russian: the seed story's town in three cases, plural nouns, a verb.
    ("ru", "Курск", "Бои под Курском продолжаются", True),
    ("ru", "Курск", "Жители Курска эвакуированы", True),
    ("ru", "Курск", "В Курске объявлена тревога", True),
    ("ru", "солдат", "Солдаты КНДР замечены на фронте", True),
    ("ru", "солдат", "Потери солдатов растут", True),
    ("ru", "захватить", "Военные захватили село", True),
    ("ru", "Курск", "Курская область под обстрелом", False),  # the adjective is another word
    ("ru", "Корея", "Корейский полуостров", False),
    ("ru", "новость", "Новый закон принят", False),
    # Ukrainian.
    ("uk", "Курськ", "Бої під Курськом тривають", True),
    ("uk", "Курськ", "Мешканці Курська евакуйовані", True),
    ("uk", "солдат", "Солдати КНДР на фронті", True),
    ("uk", "солдат", "Загибель солдатів підтверджено", True),
    ("uk", "Україна", "Допомога Україні зростає", True),
    ("uk", "Україна", "Український уряд заявив", False),
    ("uk", "новина", "Новий закон ухвалено", False),
    # German.
    ("de", "Soldat", "Zwei Soldaten wurden gefangen genommen", True),
    ("de", "Stadt", "Die Städte im Osten", True),
    ("de", "Krieg", "Die Folgen des Krieges", True),
    ("de", "angreifen", "Die Stadt wurde angegriffen", True),
    ("de", "Korea", "Die koreanische Halbinsel", False),
    ("de", "Krieg", "Sie kriegen nichts", False),
    # Polish.
    ("pl", "żołnierz", "Zginęło dwóch żołnierzy", True),
    ("pl", "żołnierz", "Rozmowa z żołnierzem", True),
    ("pl", "wojna", "Po wojnie nic nie było takie samo", True),
    ("pl", "Ukraina", "Pomoc dla Ukrainy", True),
    ("pl", "Ukraina", "Ukraiński rząd", False),
    ("pl", "wojna", "Polskie wojsko", False),
    # English: plurals and verb forms, and the merges a stemmer makes that we must not.
    ("en", "soldier", "Two soldiers were captured", True),
    ("en", "capture", "Two soldiers were captured", True),
    ("en", "army", "The armies met", True),
    ("en", "child", "Children were evacuated", True),
    ("en", "news", "A new road", False),
    ("en", "Korea", "A Korean soldier", False),
    ("en", "state", "A statement was issued", False),
    ("en", "general", "It is generally agreed", False),
    # Acronyms keep their one form; longer words in capitals are words.
    ("en", "AIDS", "Food aid arrived", False),
    ("en", "aid", "AIDS clinics", False),
    ("en", "US", "a letter u", False),
    ("ru", "Курск", "БОИ ПОД КУРСКОМ", True),
]


def _fires(term: str, text: str, languages: tuple[str, ...]) -> bool:
    engine = Engine([RuleSpec("w", "r", all=(term,), languages=languages)])
    return bool(engine.match({"title": text}))


@pytest.mark.parametrize(("lang", "term", "text", "expected"), CASES)
def test_inflected_forms_match_per_language(
    lang: str, term: str, text: str, expected: bool
) -> None:
    assert _fires(term, text, (lang,)) is expected


@pytest.mark.parametrize(("lang", "term", "text", "expected"), [c for c in CASES if c[3]])
def test_without_languages_inflected_forms_do_not_match(
    lang: str, term: str, text: str, expected: bool
) -> None:
    assert not _fires(term, text, ())


@pytest.mark.parametrize(("lang", "term", "text", "expected"), [c for c in CASES if c[3]])
def test_quoted_term_stays_exact(lang: str, term: str, text: str, expected: bool) -> None:
    engine = Engine([RuleSpec("w", "r", query=f'"{term}"', languages=(lang,))])
    assert not engine.match({"title": text})
    assert engine.match({"title": f"{text} {term}"})


@pytest.mark.parametrize(
    ("lang", "query", "text", "expected"),
    [
        ("de", '"Soldaten"', "Ein Soldat", False),
        ("de", '"Soldaten"', "Zwei Soldaten", True),
        ("de", "Soldaten", "Ein Soldat", True),  # unquoted: any form of the word
        ("en", '"north korean" soldier', "North Korean soldiers", True),
        ("en", '"north korean soldier"', "North Korean soldiers", False),
        ("ru", "Курск NEAR/2 солдат", "солдаты под Курском", True),
        ("ru", "title:Курск", "под Курском", True),
        ("en", "soldier*", "soldiering on", True),  # a prefix stays a prefix
    ],
)
def test_queries(lang: str, query: str, text: str, expected: bool) -> None:
    engine = Engine([RuleSpec("w", "r", query=query, languages=(lang,))])
    assert bool(engine.match({"title": text})) is expected


def test_phrase_of_a_list_entry_matches_forms_of_its_words() -> None:
    spec = RuleSpec("w", "r", all=("North Korean soldier", "Kursk"), languages=("en",))
    [hit] = Engine([spec]).match({"title": "North Korean soldiers fight in Kursk"})
    assert [(h.text, h.start, h.end) for h in hit.highlights] == [
        ("North Korean soldiers", 0, 21),
        ("Kursk", 31, 36),
    ]


def test_highlights_point_at_the_form_found() -> None:
    text = "Під Курськом, біля «Курська», — солдатів"
    spec = RuleSpec("w", "r", all=("Курськ",), any=("солдат",), languages=("uk",))
    [hit] = Engine([spec]).match({"summary": text})
    got = [(h.field, h.term, h.text, h.start, h.end) for h in hit.highlights]
    assert got == [
        ("summary", "Курськ", "Курськом", 4, 12),
        ("summary", "Курськ", "Курська", 20, 27),
        ("summary", "солдат", "солдатів", 32, 40),
    ]
    assert all(text[h.start : h.end] == h.text for h in hit.highlights)


def test_aliases_get_forms_too() -> None:
    spec = RuleSpec(
        "w", "r", all=("North Korea",), aliases=(("North Korea", ("КНДР", "Корея")),),
        languages=("ru",),
    )  # fmt: skip
    assert Engine([spec]).match({"title": "Войска Кореи"})


def test_explain_shows_the_form_that_matched() -> None:
    spec = RuleSpec("w", "r", all=("Курск",), any=("солдат",), languages=("ru",))
    [expl] = explain(Engine([spec]), {"title": "Солдаты под Курском и Курск"}, "w")
    out = render_explanation(expl)
    assert "'Курском → курск'" in out
    assert "'Солдаты → солдат'" in out
    assert "'Курск'" in out  # found as written: no arrow


def test_a_rule_set_without_languages_computes_no_forms() -> None:
    plain = Engine([RuleSpec("w", "r", all=("Kursk",))])
    assert plain.languages == frozenset()
    mixed = Engine(
        [
            RuleSpec("a", "r", all=("Kursk",)),
            RuleSpec("b", "r", all=("Курск",), languages=("ru", "uk")),
            RuleSpec("c", "r", query='"Курск"', languages=("de",)),  # nothing to form
        ]
    )
    assert mixed.languages == frozenset({"ru", "uk"})
    # A watchlist without languages is unchanged next to one with them.
    assert [m.watchlist for m in mixed.match({"title": "под Курском"})] == ["b"]


@settings(max_examples=200, deadline=None)
@given(
    st.text(
        st.sampled_from(list("Курском солдатів Żołnierzy Straße ΣΊΣΥΦΟΣ 東京 ,.—'’-½\u00ad")),
        max_size=50,
    )
)
def test_forms_line_up_token_for_token(text: str) -> None:
    """Forms replace tokens one for one, so a hit on them has the offsets of the word."""
    tokens = Field(text).canonical.split()
    for lang in ("ru", "uk", "de", "pl", "en"):
        assert len(forms_canonical(text, lang).split()) == len(tokens)


# -- config ------------------------------------------------------------------

FEEDS = "{languages}feeds:\n  - id: world\n    url: https://feeds.example.com/world.xml\n"
DESTS = "hook:\n  url: json://127.0.0.1:9/alerts\n"
WATCHLIST = """\
notify: [hook]
{languages}rules:
  - id: r
    all: [Курск]
examples:
  should_match: ["Бои под Курском"]
"""


def _config(tmp_path: Path, feeds_languages: str = "", watchlist_languages: str = "") -> Path:
    return write_config(
        tmp_path,
        feeds=FEEDS.format(languages=feeds_languages),
        destinations=DESTS,
        watchlists={"kursk": WATCHLIST.format(languages=watchlist_languages)},
    )


def test_watchlist_languages_and_inflected_example(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, watchlist_languages="languages: [ru, uk]\n"))
    assert config.watchlists[0].rules[0].languages == ("ru", "uk")
    assert example_problems(config) == []


def test_feeds_yaml_default_applies_unless_a_watchlist_sets_its_own(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, feeds_languages="languages: [ru]\n"))
    assert config.watchlists[0].rules[0].languages == ("ru",)
    assert example_problems(config) == []
    other = tmp_path / "other"
    config = load_config(_config(other, "languages: [ru]\n", "languages: []\n"))
    assert config.watchlists[0].rules[0].languages == ()
    [(_, _, _, message)] = example_problems(config)
    assert "should match" in message


def test_without_languages_the_inflected_example_fails(tmp_path: Path) -> None:
    [(path, line, _, message)] = example_problems(load_config(_config(tmp_path)))
    assert path.endswith("kursk.yaml") and line == 6
    assert "Бои под Курском" in message


@pytest.mark.parametrize(
    ("feeds_languages", "watchlist_languages", "file", "line", "col"),
    [
        ("", "languages: [ru, xx]\n", "kursk.yaml", 2, 17),
        ("", "languages:\n  - ru\n  - russian\n", "kursk.yaml", 4, 5),
        ("languages: [en, klingon]\n", "", "feeds.yaml", 1, 17),
    ],
)
def test_unknown_language_code_is_rejected_with_its_position(
    tmp_path: Path, feeds_languages: str, watchlist_languages: str, file: str, line: int, col: int
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, feeds_languages, watchlist_languages))
    [(path, got_line, got_col, message)] = info.value.problems
    assert (Path(path).name, got_line, got_col) == (file, line, col)
    assert message.startswith("languages: unknown language") and "uk" in message


# -- real items from the shared corpus ------------------------------------------

# (feed file, language, the term as a user writes it, the inflected form the feed holds)
CORPUS = [
    ("suspilne__ukrnet-2023-12-uk.xml", "uk", "Росія", "Росією"),
    ("suspilne__ukrnet-2023-12-uk.xml", "uk", "сержант", "сержанта"),
    ("suspilne__ukrnet-2023-12-uk.xml", "uk", "безпілотник", "безпілотників"),
    ("suspilne__ukrnet-2023-12-uk.xml", "uk", "Херсон", "Херсона"),
    ("suspilne__ukrnet-2023-12-uk.xml", "uk", "війна", "війни"),
    ("aif-ru__news-ru.xml", "ru", "младенец", "младенца"),
    ("aif-ru__news-ru.xml", "ru", "ребенок", "ребенка"),
    ("aif-ru__news-ru.xml", "ru", "родитель", "родителей"),
    ("rutube__tnt-videos-mediarss-ru.xml", "ru", "Россия", "России"),
    ("rutube__tnt-videos-mediarss-ru.xml", "ru", "больница", "больнице"),
    ("spiegel__schlagzeilen-2017.xml", "de", "Mensch", "Menschen"),
    ("spiegel__schlagzeilen-2017.xml", "de", "Rebell", "Rebellen"),
    ("spiegel__schlagzeilen-2017.xml", "de", "Präsident", "Präsidenten"),
    ("golem__news-iso-8859-1.xml", "de", "Spieler", "Spielern"),
]


def _items(name: str) -> list[dict[str, str]]:
    parsed = feedparser.parse(shared_dir("corpus", "feeds", name).read_bytes())
    return [
        {"title": html_to_text(e.get("title", "")), "summary": html_to_text(e.get("summary", ""))}
        for e in parsed.entries
    ]


@pytest.mark.parametrize(("name", "lang", "term", "form"), CORPUS)
def test_forms_in_real_items_match(name: str, lang: str, term: str, form: str) -> None:
    """Every item of the feed that holds the form fires, highlighting it, and only with languages."""
    with_forms = Engine([RuleSpec("w", "r", all=(term,), languages=(lang,))])
    exact = Engine([RuleSpec("w", "r", all=(term,))])
    word = re.compile(rf"\b{form}\b")
    holding = [i for i in _items(name) if word.search(i["title"] + "\n" + i["summary"])]
    assert holding, f"{form!r} not in {name}"
    for item in holding:
        [hit] = with_forms.match(item)
        assert form in [h.text for h in hit.highlights]
        assert form not in [h.text for m in exact.match(item) for h in m.highlights]


# Polish: no feed of the corpus is in Polish; the story-pairs set holds Polish articles.
PAIRS = [
    ("pl", "sklep", "sklepy"),
    ("pl", "handel", "handlu"),
    ("pl", "zespół", "zespołu"),
    ("pl", "klasztor", "klasztorze"),
    ("pl", "ośrodek", "ośrodku"),
]


@pytest.mark.parametrize(("lang", "term", "form"), PAIRS)
def test_forms_in_real_polish_articles_match(lang: str, term: str, form: str) -> None:
    path = shared_dir("corpus", "story-pairs", "pairs.jsonl")
    texts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        pair = json.loads(line)
        texts += [pair[f"text{i}"] for i in (1, 2) if pair[f"lang{i}"] == lang]
    word = re.compile(rf"\b{form}\b")
    holding = [t for t in texts if word.search(t)]
    assert holding, f"{form!r} not in any {lang} article"
    with_forms = Engine([RuleSpec("w", "r", all=(term,), languages=(lang,))])
    exact = Engine([RuleSpec("w", "r", all=(term,))])
    for text in holding:
        [hit] = with_forms.match({"content": text})
        assert form in [h.text for h in hit.highlights]
        assert form not in [h.text for m in exact.match({"content": text}) for h in m.highlights]
