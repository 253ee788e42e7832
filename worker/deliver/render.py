"""Render alerts and digests as notification text: pure functions, no I/O.

Feed text is hostile until proven otherwise. Every value taken from a feed
goes through the same three steps before it reaches a message:

1. ``clean_text``: drop control, bidi and invisible format characters and
   collapse whitespace (so text can never start a new Markdown block);
2. neutralise mentions: a zero-width space (U+200B) goes after the ``<`` of
   ``<!…>``/``<@…>``/``<#…>``, after ``@`` in ``@here``-style words and after
   ``!`` in ``!channel``-style words, so Slack, Discord and friends never ping;
3. escape for the format: CommonMark backslash escapes for ``markdown``
   (apprise turns ``\\<`` into ``&lt;`` for both Slack and HTML e-mail, where
   ``&lt;`` would be shown literally in Slack), ``html.escape`` for ``html``,
   nothing for ``text``.

The notification *title* is plain text that stays inert in every format
(apprise may blend it into a Markdown or HTML body): ``<``/``>`` become
``‹``/``›`` and ``](`` is broken up, so it cannot carry a tag or a link.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

from worker.config.templates import TEMPLATE_FIELDS, check_template
from worker.core.redact import redact_text, redact_url
from worker.model import TEXT_FIELDS, Alert, Highlight

__all__ = [
    "FORMATS",
    "TEMPLATE_FIELDS",
    "check_template",
    "clean_text",
    "redact_text",
    "redact_url",
    "render",
    "render_digest",
    "safe_link",
]

FORMATS: tuple[str, ...] = ("markdown", "html", "text")


TITLE_MAX = 120  # notification title, characters
MAX_SNIPPETS = 5  # per alert; more highlights rarely add a reason
CONTEXT = 60  # characters of context either side of a highlight
DIGEST_CONTEXT = 40  # shorter in digests, which list every alert
ZWSP = "\u200b"

# Invisible format characters (Unicode Cf) that can reorder or hide text:
# bidi embeddings/overrides/isolates and marks, zero-width space and word
# joiners, BOM, soft hyphen, interlinear annotations, tag characters ("ASCII
# smuggling"), plus C0/C1 controls and lone surrogates (which would make the
# message unencodable). ZWJ/ZWNJ are handled apart: emoji and scripts need them.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f"
    "\u0890\u0891\u08e2\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064"
    "\u2066-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff\U000110bd\U000110cd"
    "\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f]"
)
# A joiner is harmless only alone and between two visible characters.
_STRAY_JOINER = re.compile(r"[\u200c\u200d]{2,}|(?<!\S)[\u200c\u200d]|[\u200c\u200d](?!\S)")
_SPACE = re.compile(r"\s+")

_SPECIALS = r"(?:here|channel|everyone|all|group|subteam|room)\b"
_MENTION = re.compile(
    r"<(?=[!@#])"  # Slack/Discord <!here> <@U123> <@&123> <#C123>
    rf"|@(?=(?i:{_SPECIALS}))"  # @here anywhere, even glued to a word
    r"|(?<![\w.+-])@(?=\w|$)"  # @someone, but not an e-mail address
    rf"|!(?=(?i:{_SPECIALS}))"  # apprise's Slack passthrough reads "!here>" as <!here>
)
# CommonMark specials; "_" only where it could open or close emphasis, "#"
# only where it could start a heading (other block markers need a line start,
# and feed text never starts a line in our layouts).
_MD_SPECIAL = re.compile(r"[\\`*\[\]<>|~]|(?<![^\W_])_|_(?![^\W_])|^#")

_LINK_SAFE = "/:;,=&?!$'+%~@.-_*"  # everything else in a path/query is percent-encoded


def clean_text(s: str) -> str:
    """Return ``s`` without control, bidi or invisible characters, whitespace collapsed."""
    return _clean(s).strip()


def _clean(s: str) -> str:
    """Return ``s`` cleaned like ``clean_text`` but with its edge spaces kept."""
    s = _INVISIBLE.sub("", s)
    s = _STRAY_JOINER.sub("", s)
    return _SPACE.sub(" ", s)


def _defang(s: str) -> str:
    """Return clean ``s`` with every mention made unable to ping."""
    return _MENTION.sub(lambda m: m.group() + ZWSP, _clean(s))


def _md(s: str) -> str:
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(), _defang(s))


def _html(s: str) -> str:
    return html.escape(_defang(s))


#: Escape feed text for each format; the result is safe to place in the body.
_ESCAPE: dict[str, Callable[[str], str]] = {"markdown": _md, "html": _html, "text": _defang}


def _inert(s: str) -> str:
    """Return ``s`` as a title that carries no tag, link or mention in any format."""
    s = _defang(s).strip().replace("<", "‹").replace(">", "›")
    return s.replace("](", "]" + ZWSP + "(")


def safe_link(url: str) -> str:
    """Return ``url`` if it is an absolute http(s) link, made safe to embed; else ``""``."""
    parts = urlsplit(clean_text(url).replace(" ", "%20"))
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return ""
    try:
        port = parts.port
        host = parts.hostname.encode("idna").decode("ascii")
    except (ValueError, UnicodeError):
        return ""
    if ":" in host:
        host = f"[{host}]"
    # Credentials in a link are a phishing trick (https://bank.com@evil.example).
    netloc = host if port is None else f"{host}:{port}"

    def enc(part: str) -> str:
        part = re.sub(r"%(?![0-9A-Fa-f]{2})", "%25", part)
        return quote(part, safe=_LINK_SAFE)

    link = f"{parts.scheme.lower()}://{netloc}{enc(parts.path)}"
    if parts.query:
        link += "?" + enc(parts.query)
    if parts.fragment:
        link += "#" + enc(parts.fragment)
    return link


def _when(published: float | None) -> str:
    if published is None:
        return ""
    try:
        return datetime.fromtimestamp(published, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, OSError, ValueError):
        return ""


def _truncate(s: str, limit: int) -> str:
    if len(s) <= limit:
        return s
    cut = s[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def _locate(alert: Alert, h: Highlight) -> tuple[int, int] | None:
    """Return where ``h`` is in its field, trusting offsets only when they agree."""
    text = alert.item.text(h.field) if h.field in TEXT_FIELDS else ""
    if h.text and 0 <= h.start < h.end <= len(text) and text[h.start : h.end] == h.text:
        return h.start, h.end
    found = text.find(h.text) if h.text else -1
    return (found, found + len(h.text)) if found >= 0 else None


def snippets(
    alert: Alert, fmt: str, context: int = CONTEXT, limit: int = MAX_SNIPPETS
) -> list[tuple[str, str]]:
    """Return up to ``limit`` ``(field, snippet)`` pairs, matches in bold, escaped for ``fmt``."""
    spans: dict[str, list[tuple[int, int]]] = {}
    for h in alert.highlights:
        where = _locate(alert, h)
        if where is not None and where not in spans.setdefault(h.field, []):
            spans[h.field].append(where)
    escape = _ESCAPE[fmt]
    bold = {"markdown": "**{}**", "html": "<b>{}</b>", "text": "{}"}[fmt]
    out: list[tuple[str, str]] = []
    for field in sorted(spans, key=TEXT_FIELDS.index):
        text, shown = alert.item.text(field), set[tuple[int, int]]()
        for start, end in sorted(spans[field]):
            if (start, end) in shown or len(out) >= limit:
                continue  # already in bold in an earlier window
            lo, hi = max(0, start - context), min(len(text), end + context)
            # Cut at word boundaries so no snippet starts or ends mid-word.
            # (Text without spaces, such as Chinese, is cut where it falls.)
            if lo > 0 and (gap := _SPACE.search(text, lo, start)):
                lo = gap.end()
            if hi < len(text) and (gaps := list(_SPACE.finditer(text, end, hi))):
                hi = gaps[-1].start()
            pieces: list[str] = []
            at = lo
            for s, e in sorted(spans[field]):
                if s >= at and e <= hi:
                    pieces += [escape(text[at:s]), bold.format(escape(text[s:e]).strip())]
                    shown.add((s, e))
                    at = e
            pieces.append(escape(text[at:hi]))
            body = _SPACE.sub(" ", "".join(pieces)).strip()
            snippet = ("…" if lo > 0 else "") + body + ("…" if hi < len(text) else "")
            if all(snippet != seen for _, seen in out):  # summary often repeats the content
                out.append((field, snippet))
    return out


def _snippet_block(pairs: list[tuple[str, str]], fmt: str) -> str:
    if fmt == "html":
        items = "".join(f"<li>{field}: {snip}</li>\n" for field, snip in pairs)
        return f"<ul>\n{items}</ul>" if items else ""
    return "\n".join(f"- {field}: {snip}" for field, snip in pairs)


def _link(title: str, link: str, fmt: str) -> str:
    """Return ``title`` linked to ``link``, both already escaped for ``fmt``."""
    if not link:
        return title
    if fmt == "markdown":
        return f"[{title}]({link})"
    if fmt == "html":
        return f'<a href="{link}">{title}</a>'
    return f"{title}\n{link}"


def _fields(alert: Alert, fmt: str, context: int = CONTEXT) -> dict[str, str]:
    """Return every ``TEMPLATE_FIELDS`` value of ``alert``, escaped for ``fmt``."""
    _check_format(fmt)
    esc, item = _ESCAPE[fmt], alert.item
    link = safe_link(item.link)
    terms = dict.fromkeys(h.term for h in alert.highlights if h.term)
    return {
        "title": esc(item.title).strip() or esc(item.id).strip(),
        "link": html.escape(link) if fmt == "html" else link,
        "feed": esc(item.feed).strip(),
        "published": _when(item.published),
        "watchlist": esc(alert.watchlist).strip(),
        "watchlist_name": esc(alert.watchlist_name or alert.watchlist).strip(),
        "rule": esc(", ".join(alert.rules)).strip(),
        "snippets": _snippet_block(snippets(alert, fmt, context), fmt),
        "also_in": ", ".join(esc(f).strip() for f in alert.also_in),
        "terms": ", ".join(esc(t).strip() for t in terms),
    }


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def _title(alert: Alert) -> str:
    return _truncate(_inert(f"[{alert.watchlist}] {alert.item.title or alert.item.id}"), TITLE_MAX)


def render(alert: Alert, fmt: str, template: str | None = None) -> tuple[str, str]:
    """Return the ``(title, body)`` of the notification for ``alert`` in ``fmt``."""
    f = _fields(alert, fmt)
    if template is not None:
        check_template(template)
        return _title(alert), template.format(**f)
    source = " · ".join(v for v in (f["feed"], f["published"]) if v)
    why = f"why: watchlist «{f['watchlist_name']}» / rule {f['rule']}"
    also = f"also in: {f['also_in']}" if f["also_in"] else ""
    head = [_link(f["title"], f["link"], fmt), source, why]
    if fmt == "html":
        sections = ["<p>" + "<br>\n".join(head) + "</p>", f["snippets"]]
        sections.append(f"<p>{also}</p>" if also else "")
    else:
        sections = ["\n".join(head), f["snippets"], also]
    return _title(alert), "\n\n".join(s for s in sections if s)


def _by_story(alerts: Sequence[Alert]) -> list[list[Alert]]:
    """Group alerts of one story (from different watchlists) so a digest lists it once."""
    groups: dict[tuple[str, int], list[Alert]] = {}
    for alert in alerts:
        story, n = alert.item.story or alert.item.id, 0
        # One watchlist has one alert per story; keep apart what says otherwise.
        while any(a.watchlist == alert.watchlist for a in groups.get((story, n), ())):
            n += 1
        groups.setdefault((story, n), []).append(alert)
    return list(groups.values())


def render_digest(alerts: Sequence[Alert], fmt: str, reason: str) -> tuple[str, str]:
    """Return one ``(title, body)`` that lists every one of ``alerts``."""
    _check_format(fmt)
    n = len(alerts)
    title = _truncate(_inert(f"newsalert digest: {n} alert{'s' * (n != 1)} ({reason})"), TITLE_MAX)
    entries = []
    for i, group in enumerate(_by_story(alerts), 1):
        alert = group[0]
        f = _fields(alert, fmt, DIGEST_CONTEXT)
        if fmt == "text":
            f["link"] = f"<{f['link']}>" if f["link"] else ""
            line = " ".join(v for v in (f["title"], f["link"]) if v)
        else:
            line = _link(f["title"], f["link"], fmt)
        line += " — " + " · ".join(v for v in (f["feed"], f["published"]) if v)
        for other in group:
            g = f if other is alert else _fields(other, fmt, DIGEST_CONTEXT)
            line += f" · «{g['watchlist_name']}» / {g['rule']}"
        if f["also_in"]:
            line += f" · {1 + len(alert.also_in)} outlets, also in: {f['also_in']}"
        first = snippets(alert, fmt, DIGEST_CONTEXT, limit=1)
        if fmt == "html":
            extra = f"<br>\n{first[0][0]}: {first[0][1]}" if first else ""
            entries.append(f"<li>{line}{extra}</li>")
        else:
            extra = f"\n   {first[0][0]}: {first[0][1]}" if first else ""
            entries.append(f"{i}. {line}{extra}")
    if not entries:
        return title, "no alerts"
    if fmt == "html":
        return title, "<ol>\n" + "\n".join(entries) + "\n</ol>"
    return title, "\n".join(entries)


def excerpt_article(alert: Alert, context: int = 200) -> Alert:
    """Return ``alert`` with its item's article cut to the text around its article highlights."""
    text = alert.item.article
    if not text:
        return alert
    windows: list[list[int]] = []
    for start, end in sorted(
        (h.start, h.end)
        for h in alert.highlights
        if h.field == "article" and 0 <= h.start < h.end <= len(text)
    ):
        lo, hi = max(0, start - context), min(len(text), end + context)
        if windows and lo <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], hi)
        else:
            windows.append([lo, hi])
    sep, at = " … ", 0
    parts: list[str] = []
    moves: list[tuple[int, int, int]] = []
    for lo, hi in windows:
        at += len(sep) if parts else 0
        moves.append((lo, hi, at - lo))
        parts.append(text[lo:hi])
        at += hi - lo

    def move(h: Highlight) -> Highlight:
        for lo, hi, shift in moves:
            if h.field == "article" and lo <= h.start and h.end <= hi:
                return replace(h, start=h.start + shift, end=h.end + shift)
        return h  # not in the article, or offsets that never agreed with it

    return replace(
        alert,
        item=replace(alert.item, article=sep.join(parts)),
        highlights=tuple(move(h) for h in alert.highlights),
    )
