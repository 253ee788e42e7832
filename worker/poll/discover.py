"""Find the feeds of a web page, as Miniflux and FreshRSS do (``newsalert add-feed``).

Decisions:

- Every request goes through the poller's ``Fetcher``: the config's fetch
  limits and its private-address policy (``allow_private_networks``) apply to
  the page and to each candidate feed.
- A URL whose body parses as a feed is that feed. An HTML page names its feeds
  with ``<link rel="alternate">`` of type ``application/rss+xml``,
  ``application/atom+xml`` or ``application/feed+json``; their hrefs are
  resolved against the page's ``<base href>``, else its URL. Only when the
  page names none are the usual paths tried on its site: ``/feed``, ``/rss``,
  ``/rss.xml``, ``/atom.xml``, ``/index.xml``, ``/feed.json``.
- Each candidate is fetched and parsed; only those that parse are offered,
  in page order, each once (by canonical URL), with their title and item
  count. A candidate reached through a permanent redirect is offered at its
  new address, as the poller would record it.
- Anything else is a ``FeedError`` (exit code 4): not a feed and not HTML, an
  HTML page with no feed, an unreachable host, a refused private address.
- ``add_feed`` appends the chosen feed (the first, or ``--pick N``) through
  ``worker.poll.feedsfile``, as ``import-opml`` does; a feed already in the file
  (same canonical URL) is reported, not added again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

from worker.errors import FailureReason, FeedError
from worker.poll.feedsfile import AppendResult, NewFeed, append_feeds, fetch_policy
from worker.poll.fetch import Fetcher, FetchLimits, FetchResult
from worker.poll.identity import canonical_url, http_link
from worker.poll.parse import parse_feed

__all__ = ["FALLBACK_PATHS", "FEED_TYPES", "Added", "FoundFeed", "add_feed", "discover"]

FEED_TYPES = frozenset({"application/rss+xml", "application/atom+xml", "application/feed+json"})
FALLBACK_PATHS = ("/feed", "/rss", "/rss.xml", "/atom.xml", "/index.xml", "/feed.json")
_HTML_TYPES = ("text/html", "application/xhtml+xml")


@dataclass(frozen=True)
class FoundFeed:
    """A feed found at or from the given address."""

    url: str
    title: str
    items: int


class _FeedLinks(HTMLParser):
    """Collect ``<base href>`` and the hrefs of feed ``<link rel="alternate">`` tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base = ""
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "").strip() for k, v in attrs}
        if tag == "base" and a.get("href") and not self.base:
            self.base = a["href"]
        rels = a.get("rel", "").lower().split()
        kind = a.get("type", "").lower().split(";")[0].strip()
        if tag == "link" and "alternate" in rels and kind in FEED_TYPES and a.get("href"):
            self.hrefs.append(a["href"])


def feed_links(html: str, page_url: str) -> list[str]:
    """Return the absolute http(s) URLs of the feeds ``html`` links to, in page order."""
    parser = _FeedLinks()
    parser.feed(html)
    parser.close()
    base = http_link(parser.base, page_url) or page_url
    return [url for url in (http_link(h, base) for h in parser.hrefs) if url]


def _looks_html(res: FetchResult) -> bool:
    kind = res.headers.get("content-type", "").split(";")[0].strip().lower()
    head = res.body[:512].lstrip().lower()
    return kind in _HTML_TYPES or head.startswith((b"<!doctype html", b"<html"))


def _as_feed(res: FetchResult, url: str) -> FoundFeed:
    parsed = parse_feed(res.body, feed_id="add-feed", url=res.url, headers=res.headers)
    return FoundFeed(res.permanent_redirect or url, parsed.title, len(parsed.items))


async def _candidates(fetcher: Fetcher, urls: list[str]) -> list[FoundFeed | FeedError]:
    async def one(url: str) -> FoundFeed | FeedError:
        try:
            return _as_feed(await fetcher.fetch(url), url)
        except FeedError as exc:
            return exc

    return list(await asyncio.gather(*(one(u) for u in urls)))


async def _discover(url: str, fetcher: Fetcher) -> list[FoundFeed]:
    page = await fetcher.fetch(url)
    if not _looks_html(page):
        try:
            return [_as_feed(page, url)]
        except FeedError as exc:
            raise FeedError(
                f"{url}: neither a feed nor an HTML page ({exc})", reason=FailureReason.PARSE
            ) from None
    text = page.body.decode("utf-8", "replace")
    named = feed_links(text, page.url)
    tried = named or [urljoin(page.url, path) for path in FALLBACK_PATHS]
    results = await _candidates(fetcher, list(dict.fromkeys(tried)))
    found: dict[str, FoundFeed] = {}
    for result in results:
        if isinstance(result, FoundFeed):
            found.setdefault(canonical_url(result.url), result)
    if found:
        return list(found.values())
    if named:
        why = "; ".join(str(r) for r in results)
        raise FeedError(
            f"{url}: the feeds this page links to could not be read: {why}",
            reason=FailureReason.PARSE,
        )
    paths = ", ".join(FALLBACK_PATHS)
    raise FeedError(
        f"{url}: no feed found (the page links to none, and none of {paths} is one)",
        reason=FailureReason.PARSE,
    )


def discover(url: str, limits: FetchLimits, allow_private: bool) -> list[FoundFeed]:
    """Return the feeds at ``url`` (a feed, or a page linking to feeds); raise ``FeedError``."""
    if not http_link(url, ""):
        raise FeedError(f"{url}: not an http(s) URL", reason=FailureReason.URL)

    async def run() -> list[FoundFeed]:
        async with Fetcher(limits, allow_private) as fetcher:
            return await _discover(url, fetcher)

    return asyncio.run(run())


@dataclass(frozen=True)
class Added:
    """What ``add_feed`` found and did."""

    found: list[FoundFeed]
    chosen: FoundFeed
    result: AppendResult

    def report(self, url: str, where: Path) -> list[str]:
        """Return what to tell the user: the feeds found (when several) and what was done."""
        lines = []
        if len(self.found) > 1:
            lines.append(f"{url} links to {len(self.found)} feeds:")
            lines += [
                f"  {n}. {f.title or '(untitled)'} ({f.items} items)  {f.url}"
                for n, f in enumerate(self.found, 1)
            ]
        feed = self.chosen
        for _, held in self.result.already:
            lines.append(f"{feed.url} is already in {where} as {held!r}: nothing added")
        for fid in self.result.added:
            lines.append(f"added {fid}: {feed.title or feed.url} ({feed.items} items) to {where}")
            lines.append("its first poll remembers those items; alerts come for the ones after")
        return lines


def add_feed(config_dir: Path, url: str, feed: NewFeed, pick: int = 1) -> Added:
    """Discover the feeds at ``url`` and append the ``pick``-th (1-based) to ``feeds.yaml``.

    ``feed`` carries the id, tags and interval to give it; its URL and title are
    replaced by the discovered feed's.
    """
    fetch, allow_private = fetch_policy(config_dir)
    found = discover(url, FetchLimits(**fetch), allow_private)  # type: ignore[arg-type]
    if not 1 <= pick <= len(found):
        raise FeedError(f"--pick {pick}: {url} has {len(found)} feed(s)", reason=FailureReason.PICK)
    chosen = found[pick - 1]
    new = NewFeed(chosen.url, chosen.title, feed.id, feed.tags, feed.interval)
    return Added(found, chosen, append_feeds(config_dir, [new]))
