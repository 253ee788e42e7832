"""Build small RSS documents for tests."""

from __future__ import annotations

from email.utils import formatdate
from xml.sax.saxutils import escape


def rss(items: list[dict[str, str]], title: str = "Test feed") -> bytes:
    """Return an RSS 2.0 document; each item may give title, link, guid, description, content."""
    parts = []
    for i, it in enumerate(items):
        content = it.get("content")
        parts.append(
            "<item>"
            f"<title>{escape(it['title'])}</title>"
            f"<link>{escape(it.get('link', f'https://news.example.com/story/{i}'))}</link>"
            f"<guid>{escape(it.get('guid', it.get('link', f'https://news.example.com/story/{i}')))}</guid>"
            f"<pubDate>{formatdate(1_760_000_000 + i * 60, usegmt=True)}</pubDate>"
            f"<description>{escape(it.get('description', ''))}</description>"
            + (f"<content:encoded><![CDATA[{content}]]></content:encoded>" if content else "")
            + "</item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">'
        f"<channel><title>{escape(title)}</title><link>https://news.example.com/</link>"
        f"<description>test</description>{''.join(parts)}</channel></rss>"
    ).encode()


def article_item(text: str, link: str) -> dict[str, str]:
    """Turn an article (title on the first line, body after) into a feed item."""
    title, _, body = text.strip().partition("\n")
    paragraphs = "".join(f"<p>{escape(p)}</p>" for p in body.split("\n") if p.strip())
    return {
        "title": title.strip(),
        "link": link,
        "description": body.strip()[:200],
        "content": paragraphs,
    }


UNRELATED = [
    {"title": "Central bank holds interest rates steady", "description": "Markets shrugged."},
    {"title": "South Korean team wins in Kursk friendly", "description": "A football match."},
    {"title": "Storm closes ports along the coast", "description": "Ferries were cancelled."},
]
