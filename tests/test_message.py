"""Tests for worker.deliver.render (rendering, escaping) and worker.core.redact (secret masking)."""

from __future__ import annotations

import re
import warnings
from dataclasses import replace

import pytest

from worker.core.redact import redact_text, redact_url
from worker.deliver.render import (
    FORMATS,
    TEMPLATE_FIELDS,
    check_template,
    clean_text,
    render,
    render_digest,
    safe_link,
)
from worker.model import Alert, Highlight, Item

TITLE = "North Korean soldier taken prisoner by Ukrainian army, Seoul says"
SUMMARY = (
    "Kyiv estimates that 12,000 North Korean soldiers are engaged in the Russian region of "
    "Kursk, of which the Ukrainian army has occupied several hundred square kilometers since "
    "August. The Ukrainian army took prisoner a North Korean soldier deployed to fight it in "
    "support of Russia, South Korean intelligence reported this Friday."
)
LINK = "https://www.example.com/world/nk-soldier?id=1"
PUBLISHED = 1795624800.0  # 2026-11-25 16:40 UTC


def hl(field: str, text: str, source: str, nth: int = 0) -> Highlight:
    """Return a highlight of the ``nth`` occurrence of ``text`` in ``source``."""
    start = -1
    for _ in range(nth + 1):
        start = source.index(text, start + 1)
    return Highlight(field, text, text, start, start + len(text))


def make_alert(**item_changes: object) -> Alert:
    item = Item(
        id="bbc-1", feed="bbc-world", title=TITLE, link=LINK, summary=SUMMARY,
        published=PUBLISHED, story="s1",
    )  # fmt: skip
    item = replace(item, **item_changes)  # type: ignore[arg-type]
    highlights = []
    if "North Korean" in item.title:
        highlights.append(hl("title", "North Korean", item.title))
    if "Kursk" in item.summary:
        highlights.append(hl("summary", "Kursk", item.summary))
    return Alert(
        watchlist="north-korea-kursk", watchlist_name="North Korean troops in Kursk",
        rules=("nk-in-kursk",), item=item, highlights=tuple(highlights), also_in=("feedA", "feedB"),
    )  # fmt: skip


BOLD = {"markdown": r"\*\*(.+?)\*\*", "html": r"<b>(.+?)</b>"}
TITLE_LINK = {
    "markdown": f"[{TITLE}]({LINK})",
    "html": f'<a href="{LINK}">{TITLE}</a>',
    "text": f"{TITLE}\n{LINK}\n",
}


# -- the default message -----------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "expected",
    [
        "bbc-world",
        "2026-11-25 16:40 UTC",
        "why: watchlist «North Korean troops in Kursk» / rule nk-in-kursk",
        "also in: feedA, feedB",
        "title: ",
        "summary: ",
    ],
)
def test_default_body_shows(fmt: str, expected: str) -> None:
    _, body = render(make_alert(), fmt)
    assert expected in body


@pytest.mark.parametrize("fmt", FORMATS)
def test_title_is_linked(fmt: str) -> None:
    _, body = render(make_alert(), fmt)
    assert TITLE_LINK[fmt] in body


@pytest.mark.parametrize("fmt", ["markdown", "html"])
def test_highlights_are_bold(fmt: str) -> None:
    alert = make_alert()
    _, body = render(alert, fmt)
    assert re.findall(BOLD[fmt], body) == [h.text for h in alert.highlights]


def test_text_has_no_markup() -> None:
    _, body = render(make_alert(), "text")
    assert "**" not in body and "<b>" not in body and "Kursk" in body


@pytest.mark.parametrize("fmt", FORMATS)
def test_optional_parts_are_omitted(fmt: str) -> None:
    alert = replace(make_alert(published=None, link=""), also_in=())
    _, body = render(alert, fmt)
    assert "UTC" not in body and "also in" not in body and "http" not in body
    assert TITLE in body


def test_notification_title() -> None:
    title, _ = render(make_alert(), "markdown")
    assert title == f"[north-korea-kursk] {TITLE}"


def test_long_title_is_cut_at_a_word() -> None:
    title, _ = render(make_alert(title="word " * 100), "markdown")
    assert len(title) <= 120 and title.endswith("word…")


def test_snippet_is_cut_at_words_around_the_match() -> None:
    # 8 characters a word, so the ±60 window falls mid-word; newlines are spaces too.
    text = " ".join(f"word{i:03d}" if i % 7 else f"\nword{i:03d}" for i in range(100))
    alert = replace(make_alert(summary=text), highlights=(hl("summary", "word050", text),))
    _, body = render(alert, "markdown")
    (line,) = [line for line in body.splitlines() if line.startswith("- summary: ")]
    snippet = line.removeprefix("- summary: ")
    assert snippet.startswith("…") and snippet.endswith("…") and "**word050**" in snippet
    words = snippet.strip("…").replace("**", "").split(" ")
    assert all(re.fullmatch(r"word\d{3}", w) for w in words), words  # none cut in half
    assert 100 <= len(snippet) <= 140


def test_identical_snippets_from_two_fields_show_once() -> None:
    text = "A North Korean soldier was captured in Kursk."
    alert = replace(
        make_alert(title="Story", summary=text, content=text),
        highlights=(hl("summary", "Kursk", text, 0), hl("content", "Kursk", text, 0)),
    )
    _, body = render(alert, "text")
    assert body.count("captured in Kursk") == 1


def test_highlights_are_deduplicated_and_capped() -> None:
    text = " ".join(" ".join(["Kursk"] + [f"filler{n}"] * 40) for n in range(8))
    spots = tuple(hl("summary", "Kursk", text, n) for n in range(8))
    alert = replace(make_alert(summary=text), highlights=spots + spots)
    _, body = render(alert, "markdown")
    assert body.count("- summary: ") == 5
    assert body.count("**Kursk**") == 5


def test_nearby_highlights_share_one_snippet() -> None:
    spots = (hl("summary", "North Korean", SUMMARY), hl("summary", "Kursk", SUMMARY))
    _, body = render(replace(make_alert(), highlights=spots), "markdown")
    assert body.count("- summary: ") == 1
    assert re.findall(BOLD["markdown"], body) == ["North Korean", "Kursk"]


def test_highlight_cut_by_a_window_gets_its_own() -> None:
    text = "Kursk " + "x" * 50 + " North Korean soldiers"  # the first window ends in "North"
    spots = (hl("summary", "Kursk", text), hl("summary", "North Korean", text))
    _, body = render(replace(make_alert(summary=text), highlights=spots), "html")
    assert set(re.findall(BOLD["html"], body)) == {"Kursk", "North Korean"}


def test_stale_offsets_fall_back_to_the_text() -> None:
    alert = replace(make_alert(), highlights=(Highlight("summary", "Kursk", "Kursk", 0, 5),))
    _, body = render(alert, "html")
    assert re.findall(BOLD["html"], body) == ["Kursk"]


@pytest.mark.parametrize(
    ("fmt", "url", "linked"),
    [
        ("markdown", "https://example.com/a?b=1&c=%22x%22", "[{}]({})"),
        ("html", "https://example.com/a?b=1&amp;c=%22x%22", '<a href="{1}">{0}</a>'),
        ("text", "https://example.com/a?b=1&c=%22x%22", "{}\n{}\n"),
    ],
)
def test_link_is_escaped_once(fmt: str, url: str, linked: str) -> None:
    alert = make_alert(link='https://example.com/a?b=1&c="x"')
    assert linked.format(TITLE, url) in render(alert, fmt)[1]
    assert render(alert, fmt, "{link}")[1] == url
    assert url in render_digest([alert], fmt, "burst")[1]


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        render(make_alert(), "rtf")


# -- templates ---------------------------------------------------------------


TEMPLATE_CASES = [
    ("{title}", TITLE),
    ("{link}", LINK),
    ("{feed}", "bbc-world"),
    ("{published}", "2026-11-25 16:40 UTC"),
    ("{watchlist}", "north-korea-kursk"),
    ("{watchlist_name}", "North Korean troops in Kursk"),
    ("{rule}", "nk-in-kursk"),
    ("{also_in}", "feedA, feedB"),
    ("{terms}", "North Korean, Kursk"),
    ("{snippets}", "- title: **North Korean** soldier"),
    ("[{title}]({link}) {{braces}}", f"[{TITLE}]({LINK}) {{braces}}"),
    ("{title:.5}!", "North!"),
]


@pytest.mark.parametrize(("template", "expected"), TEMPLATE_CASES)
def test_template_fields(template: str, expected: str) -> None:
    title, body = render(make_alert(), "markdown", template)
    assert body.startswith(expected)
    assert title == f"[north-korea-kursk] {TITLE}"


def test_every_documented_field_is_tested() -> None:
    used = {f for template, _ in TEMPLATE_CASES for f in re.findall(r"{(\w+)", template)}
    assert set(TEMPLATE_FIELDS) <= used


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("markdown", r"\*\*x\*\* \[y\](javascript:z) \<b\>"),
        ("html", "**x** [y](javascript:z) &lt;b&gt;"),
        ("text", "**x** [y](javascript:z) <b>"),
    ],
)
def test_template_values_are_escaped(fmt: str, expected: str) -> None:
    _, body = render(make_alert(title="**x** [y](javascript:z) <b>"), fmt, "{title}")
    assert body == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{nope}", "unknown template field {nope}"),
        ("{title.__class__}", "unknown template field"),
        ("{0}", "unknown template field"),
        ("{}", "unknown template field"),
        ("{title!r}", "conversions are not allowed"),
        ("{title:{rule}}", "nested"),
        ("{title", "syntax"),
        ("oops }", "syntax"),
        ("{title:d}", "template error"),
        ("  ", "empty"),
    ],
)
def test_bad_templates(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        check_template(template)
    with pytest.raises(ValueError, match=re.escape(message)):
        render(make_alert(), "text", template)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{title}", TITLE),
        ("{{x}} {link}", f"{{x}} {LINK}"),
        ("{rule:>20}", " " * 9 + "nk-in-kursk"),
        ("{feed}: {terms}", "bbc-world: North Korean, Kursk"),
    ],
)
def test_good_templates(template: str, expected: str) -> None:
    check_template(template)
    assert render(make_alert(), "text", template)[1] == expected


# -- digests -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("count", "reason"), [(1, "burst"), (12, "quiet hours"), (500, "burst")])
def test_digest_lists_every_alert(fmt: str, count: int, reason: str) -> None:
    alerts = [make_alert(title=f"Story {i:04d} about North Korean troops") for i in range(count)]
    title, body = render_digest(alerts, fmt, reason)
    noun = "alert" if count == 1 else "alerts"
    assert title == f"newsalert digest: {count} {noun} ({reason})"
    for i in range(count):
        assert f"Story {i:04d} about" in body
    assert body.count("nk-in-kursk") == count
    assert body.count(LINK) == count
    if fmt != "text":
        assert len(re.findall(BOLD[fmt], body)) == count  # first snippet of each


def test_empty_digest() -> None:
    assert render_digest([], "text", "hourly digest") == (
        "newsalert digest: 0 alerts (hourly digest)",
        "no alerts",
    )


# -- hostile feed text ---------------------------------------------------------

HOSTILE = [
    "<!channel> hi",
    "<!here|here> and <!everyone>",
    "@here look",
    "ping@channel and @everyone",
    "<@U024BE7LH> and <#C123|general> and <@&123456> <!subteam^S1>",
    "**bold** [x](javascript:alert(1))",
    "<script>alert(1)</script><img src=x onerror=alert(1)>",
    "evil \u202egnp.exe\u202c and \u2066isolate\u2069 \u200eLRM \u061c",
    "bell\x07 esc\x1b[31m nul\x00 c1\x85\x9b tab\tnew\nline",
    "zero\u200bwidth \ufeffbom \u2060joiner \U000e0041tag",
]
PINGABLE = re.compile(
    r"<[!@#]|@(?:here|channel|everyone)|!(?:here|channel|everyone)", re.IGNORECASE
)
INVISIBLE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff"
    "\U000e0000-\U000e007f]"
)


def visible(s: str) -> str:
    """Return ``s`` without our own defusing zero-width spaces."""
    return s.replace("\u200b", "")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_text_cannot_ping(fmt: str, hostile: str) -> None:
    alert = replace(make_alert(title=hostile, summary=hostile), watchlist_name=hostile)
    title, body = render(alert, fmt)
    for out in (title, body, render_digest([alert], fmt, hostile)[1]):
        assert not PINGABLE.search(out), out
        # The words are still there for a reader, only defused.
        for word in re.findall(r"[A-Za-z0-9]{3,}", hostile):
            assert word in visible(out), (word, out)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_text_has_no_invisible_characters(fmt: str, hostile: str) -> None:
    alert = make_alert(title=hostile, summary=hostile, content=hostile)
    for out in render(alert, fmt):
        assert not INVISIBLE.search(out.replace("\u200b", "").replace("\n", "")), repr(out)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_markdown_stays_text(hostile: str) -> None:
    title, body = render(make_alert(title=hostile), "markdown", "{title}")
    assert not re.search(r"(?<!\\)[<*\[]", body), body  # every special is escaped
    assert "](" not in title.replace("]\u200b(", "")  # the title carries no link
    assert "<" not in title and ">" not in title  # nor a tag, whatever apprise does with it


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_html_stays_text(hostile: str) -> None:
    _, body = render(make_alert(title=hostile), "html", "{title}")
    assert "<" not in body and ">" not in body


@pytest.mark.parametrize("link", ["javascript:alert(1)", "data:text/html,<script>", "/relative"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_unsafe_links_are_dropped(fmt: str, link: str) -> None:
    _, body = render(make_alert(link=link), fmt)
    assert link not in body and "href" not in body and "](" not in body


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_markdown_through_apprise(hostile: str) -> None:
    """Check the escaping against the converters apprise really applies."""
    _, body = render(make_alert(title=hostile, summary=hostile), "markdown")
    with warnings.catch_warnings():
        # apprise 2.3.0 imports the deprecated imghdr; not our warning to fix.
        warnings.simplefilter("ignore", DeprecationWarning)
        import apprise
        from apprise.conversion import markdown_to_html

        as_html = markdown_to_html(body)
        slack = apprise.Apprise.instantiate("slack://T1A2B3C4D/B1A2B3C4D/abcdefghijklmnopqrstuvw")
        as_slack = slack.dialect_convert(body, apprise.NotifyFormat.MARKDOWN)
    tags = re.findall(r"<[^>]*>", as_html)
    assert not [t for t in tags if re.search(r"script|img|javascript:|on\w+=", t)], tags
    assert not PINGABLE.search(as_slack), as_slack


# -- clean_text, safe_link ------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  a \n\n b\t c  ", "a b c"),
        ("a\x00b\x07c\x1bd\x7fe\x85f\x9bg", "abcdefg"),
        ("abc\u202edef\u202c", "abcdef"),
        ("\u2066iso\u2069 \u2067r\u2069 \u2068f\u2069", "iso r f"),
        ("x\u200ey\u200fz\u061c", "xyz"),
        ("zero\u200bwidth\ufeff\u2060", "zerowidth"),
        ("family 👨\u200d👩\u200d👧 ok", "family 👨\u200d👩\u200d👧 ok"),
        ("stray \u200d joiner\u200d", "stray joiner"),
        ("no-break\u00a0space\u2028line", "no-break space line"),
        ("lone \ud800 surrogate", "lone surrogate"),
        ("café Kyiv Київ", "café Kyiv Київ"),
    ],
)
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://example.com/a", "https://example.com/a"),
        ("HTTP://Example.COM/a?b=1&c=2#frag", "http://example.com/a?b=1&c=2#frag"),
        ("  https://example.com/x  ", "https://example.com/x"),
        ("https://example.com/a b", "https://example.com/a%20b"),
        ("https://example.com/a)b(c", "https://example.com/a%29b%28c"),
        ('https://example.com/"><script>', "https://example.com/%22%3E%3Cscript%3E"),
        ("https://example.com/a\\b]c[`", "https://example.com/a%5Cb%5Dc%5B%60"),
        ("https://example.com/%zz%41", "https://example.com/%25zz%41"),
        ("https://user:pw@example.com/", "https://example.com/"),
        ("https://example.com:8443/p", "https://example.com:8443/p"),
        ("https://bücher.de/ü", "https://xn--bcher-kva.de/%C3%BC"),
        ("https://[::1]/x", "https://[::1]/x"),
        ("javascript:alert(1)", ""),
        ("JavaScript:alert(1)", ""),
        ("javascript://example.com/%0Aalert(1)", ""),
        ("java\nscript:alert(1)", ""),
        ("\x01javascript:alert(1)", ""),
        ("data:text/html;base64,PHNjcmlwdD4=", ""),
        ("file:///etc/passwd", ""),
        ("vbscript:msgbox", ""),
        ("/relative/path", ""),
        ("//evil.example/x", ""),
        ("https:///nohost", ""),
        ("http:example.com", ""),
        ("https://example.com:99999/", ""),
        ("", ""),
    ],
)
def test_safe_link(url: str, safe: str) -> None:
    assert safe_link(url) == safe


# -- redaction -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "redacted", "secrets"),
    [
        (
            "https://hooks.slack.com/services/T000/B000/XXXXXXXX",
            "https://hooks.slack.com/services/****",
            ["T000", "B000", "XXXXXXXX"],
        ),
        ("slack://TokenA/TokenB/TokenC/#chan", "slack://****", ["TokenA", "TokenB", "TokenC"]),
        (
            "mailtos://user:pass@example.com?to=desk@example.com",
            "mailtos://user:****@example.com?to=desk@example.com",
            ["pass"],
        ),
        ("tgram://123456:ABCDEF/12345", "tgram://****", ["123456", "ABCDEF"]),
        ("json://127.0.0.1:8080/path?x=secret", "json://127.0.0.1:8080/path?x=****", ["secret"]),
        (
            "https://discord.com/api/webhooks/1234567890/abcDEF_token",
            "https://discord.com/api/webhooks/****",
            ["1234567890", "abcDEF_token"],
        ),
        ("discord://1234567890/abcDEFtoken", "discord://****", ["1234567890", "abcDEFtoken"]),
        ("pbul://o.gn5kj6nfhv736I7jC3cj3QLRiyhgl98b", "pbul://****", ["gn5kj6nfhv736I7jC3"]),
        ("ntfys://ntfy.sh/mysecrettopic", "ntfys://ntfy.sh/****", ["mysecrettopic"]),
        ("ntfy://mysecrettopic", "ntfy://****", ["mysecrettopic"]),
        (
            "json://localhost/hook?format=markdown&token=abcd1234&overflow=split",
            "json://localhost/hook?format=markdown&token=****&overflow=split",
            ["abcd1234"],
        ),
        ("https://APIKEY123@api.example.com/v1", "https://****@api.example.com/****", ["APIKEY1"]),
        ("xml://host.example.com/a?Zk9x3bQ", "xml://host.example.com/a?****", ["Zk9x3bQ"]),
        ("xml://example.com/a?Zk9x3bQ=1&verify", "xml://example.com/a?****&verify", ["Zk9x"]),
        ("https://example.com/a#tok3n", "https://example.com/a#****", ["tok3n"]),
        ("twilio://AC123:authtok@15551234567/15557654321", "twilio://****", ["authtok"]),
        ("mailto://u:p%40ss@example.com", "mailto://u:****@example.com", ["p%40ss"]),
        ("not a url secretvalue", "****", ["secretvalue"]),
        ("", "****", []),
    ],
)
def test_redact_url(url: str, redacted: str, secrets: list[str]) -> None:
    out = redact_url(url)
    assert out == redacted
    for secret in secrets:
        assert secret not in out


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        ("token abcd1234 failed", ["abcd1234"], "token **** failed"),
        ("pw p@ss/word in url p%40ss%2Fword", ["p@ss/word"], "pw **** in url ****"),
        ("short abc stays", ["abc"], "short abc stays"),
        ("long secretXYZ and secret", ["secret", "secretXYZ"], "long **** and ****"),
        ("nothing", ["", "zzzz"], "nothing"),
    ],
)
def test_redact_text(text: str, secrets: list[str], expected: str) -> None:
    assert redact_text(text, secrets) == expected
