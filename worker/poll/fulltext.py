"""Fetch the full article of new items whose feed text is short, so rules match the whole story.

Decisions:

- **Which items.** Only new ones: the poller calls ``Articles.add`` on the
  items it is about to queue, never on seen ones. ``fulltext: always``
  fetches every item's link; ``auto`` (the default) only when the item's own
  title + summary + content has fewer than ``fulltext_min_words`` words;
  ``never`` never. Items without an http(s) link are left alone.
- **One fetcher, one policy.** Articles (and robots.txt, see
  ``worker.poll.robots``) go through the poller's own ``Fetcher``: the same size,
  time and redirect limits, the same SSRF guard and ``allow_private_networks``
  policy, the same per-host and global slots as feeds. The URL fetched is the
  canonical one (tracking parameters dropped).
- **Once per story.** Extracted text is cached by canonical URL for
  ``ARTICLE_TTL`` (a failure or "no text" for ``ARTICLE_MISS_TTL``). The
  first poller to want a URL takes its lock (``worker.core.locks``); any other (another
  feed syndicating the story, in this process or another) waits for the cache
  instead of fetching, so a syndicated story is fetched once.
- **Extraction** is trafilatura with ``favor_precision``: navigation, cookie
  banners, related-story blocks, comments and footers are dropped; trailing
  "PREV …"/"NEXT …" teasers and punctuation-only lines are trimmed
  afterwards, because a plain-text PREV/NEXT paragraph inside the article
  body passes trafilatura's filters. It runs in a worker process
  (``worker.core.pools.IdlePool``, started by the first article and stopped after a
  minute without one), so the poller never loads trafilatura and lxml (~30 MB)
  and its event loop keeps fetching meanwhile. Text is cut at
  ``MAX_ARTICLE_CHARS``.
- **Deadline.** Each item waits at most its feed's ``fulltext_deadline``
  (robots.txt, queueing, fetch and extraction included); then it is matched
  on its feed text and one log line with the feed id says so.
- **Back-off.** A host that answers 401/402/403/451, serves a page that looks
  paywalled, disallows everything in robots.txt (``HOST_REFUSED_TTL``), asks
  to slow down (429: Retry-After), or fails ``FAILURES_BEFORE_BACKOFF`` times
  within ``HOST_FAILURES_WINDOW`` (``HOST_FAILING_TTL``) is left alone: its
  items fall back to feed text. Each back-off is logged once (the ``SET NX``
  winner) and listed once in ``stats``.
- **Privacy.** The text serves matching only: it lives in the cache
  (``ARTICLE_TTL`` ≤ ``ITEM_TTL``) and in the new item's body until its match
  job ran (``ITEM_TTL``); alerts show the snippets around highlights, never
  the whole field (``worker.deliver.render.snippets``). ``worker.deliver.render.excerpt_article`` cuts the
  text down to the windows around an alert's highlights, for everything that
  outlives matching (delivery jobs, outboxes, dead letters).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import replace

import redis

from worker.config import Config, Feed
from worker.core import keys
from worker.core.locks import hold
from worker.core.metrics import incr
from worker.core.pools import IdlePool
from worker.core.retry import backoff
from worker.errors import FeedError
from worker.model import Item
from worker.poll.fetch import Fetcher, FetchHTTPError
from worker.poll.identity import canonical_url
from worker.poll.robots import DISALLOW_ALL, Robots, origin_of

__all__ = ["Articles", "extract_text", "looks_paywalled", "wants_article"]

log = logging.getLogger("newsalert.article")

MAX_ARTICLE_CHARS = 100_000
FAILURES_BEFORE_BACKOFF = 3
PAYWALL_MAX_WORDS = 150  # a paywalled page with more text than this still gave us the story
_REFUSING = {401, 402, 403, 451}
_MISSING = {404, 410}
_HTML_TYPES = ("text/html", "application/xhtml+xml", "text/plain")
# Teasers for other stories at the end of an article page, which survive
# extraction when they are plain paragraphs rather than links. Narrow on
# purpose: a last paragraph that starts "Next week…" is story.
_TRAILER = re.compile(
    r"^(?:PREV|NEXT)\b|^(?i:previous|next) (?i:article|story|post)\b"
    r"|^(?i:read more|related(?: stories)?|see also)\s*[:›»]"
)
_PAYWALL = re.compile(
    rb'"isAccessibleForFree"\s*:\s*"?false|class="[^"]*\b(?:paywall|subscriber-only|'
    rb"premium-content|meteredContent)\b|subscribe (?:now )?to (?:continue|read)",
    re.IGNORECASE,
)
_WORDS = re.compile(r"\w+")


def wants_article(feed: Feed, item: Item) -> bool:
    """Return whether ``item`` of ``feed`` should have its article fetched."""
    if feed.fulltext == "never" or item.article or not origin_of(canonical_url(item.link)):
        return False
    if feed.fulltext == "always":
        return True
    words = sum(len(_WORDS.findall(item.text(f))) for f in ("title", "summary", "content"))
    return words < feed.fulltext_min_words


def _trim(text: str) -> str:
    """Return extracted text without punctuation-only lines and trailing PREV/NEXT teasers."""
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if _WORDS.search(ln)]
    while lines and _TRAILER.match(lines[-1]):
        lines.pop()
    return "\n".join(lines)


def extract_text(html: bytes, url: str) -> str:
    """Return the main text of an article page as plain text ("" when there is none)."""
    import trafilatura  # only pollers with full-text feeds pay its import time

    text = trafilatura.extract(
        html,
        url=url,
        include_comments=False,
        include_tables=False,
        include_images=False,
        include_links=False,
        include_formatting=False,
        favor_precision=True,
    )
    return _trim(text or "")[:MAX_ARTICLE_CHARS]


def looks_paywalled(html: bytes, text: str) -> bool:
    """Return whether a page seems to hide its story behind a paywall."""
    return len(_WORDS.findall(text)) < PAYWALL_MAX_WORDS and bool(_PAYWALL.search(html[: 1 << 20]))


#: Shared by every Poller of the process (one per config round).
_EXTRACTOR = IdlePool(1)


class Articles:
    """Add article text to new items, sharing cache, robots and back-off state through Redis."""

    def __init__(
        self, client: redis.Redis, config: Config, *, extractor: IdlePool | None = None
    ) -> None:
        self.redis = client
        self.config = config
        self.robots = Robots(client)
        self.extractor = extractor or _EXTRACTOR

    async def add(self, fetcher: Fetcher, items: Sequence[Item]) -> list[Item]:
        """Return ``items`` with ``article`` filled where wanted and ready within the deadline."""
        out = list(items)
        wanted = [
            (i, feed)
            for i, it in enumerate(items)
            if (feed := self.config.feed(it.feed)) is not None and wants_article(feed, it)
        ]
        if not wanted:
            return out
        texts = await asyncio.gather(*(self._timed(fetcher, feed, items[i]) for i, feed in wanted))
        for (i, _), text in zip(wanted, texts, strict=False):
            if text:
                out[i] = replace(items[i], article=text)
        return out

    async def _timed(self, fetcher: Fetcher, feed: Feed, item: Item) -> str:
        """Return the article text of ``item``, or "" when it is unavailable or late."""
        canonical = canonical_url(item.link)
        state: dict[str, bool] = {}
        started = time.monotonic()
        try:
            async with asyncio.timeout(feed.fulltext_deadline):
                text = await self._article(fetcher, feed, canonical, state)
        except TimeoutError:
            log.warning(
                "feed %s: no article text within %.1fs for %s; matching on feed text",
                feed.id,
                feed.fulltext_deadline,
                canonical,
                extra={"feed": feed.id},
            )
            incr(self.redis, "articles", feed.id, "deadline")
            if state.get("fetching"):  # our own queueing is not the host's fault
                self._failed(origin_of(canonical), "no answer within the deadline")
            return ""
        except Exception:  # a bug here must not cost the item its match on feed text
            log.exception(
                "feed %s: article %s failed; matching on feed text",
                feed.id,
                canonical,
                extra={"feed": feed.id},
            )
            return ""
        log.debug(
            "feed %s: article %s: %d chars in %.2fs",
            feed.id,
            canonical,
            len(text),
            time.monotonic() - started,
            extra={"feed": feed.id},
        )
        return text

    async def _article(
        self, fetcher: Fetcher, feed: Feed, canonical: str, state: dict[str, bool]
    ) -> str:
        """Return the cached text, or fetch it under the URL's marker, or wait for whoever has it."""
        # Bounded in count as well as by the caller's deadline.
        for attempt in range(1, int(feed.fulltext_deadline / 0.05) + 3):
            cached = self.redis.get(keys.article(canonical))
            if cached is not None:
                incr(self.redis, "articles", feed.id, "cached")
                text: str = cached.decode()
                return text
            if self.redis.exists(keys.host_backoff(origin_of(canonical))):
                incr(self.redis, "articles", feed.id, "backed_off")
                return ""
            with hold(self.redis, keys.article_lock(canonical), keys.ARTICLE_LOCK_TTL) as ours:
                if ours:
                    state["fetching"] = True
                    text, outcome = await self._fetch(fetcher, canonical)
                    self.redis.set(
                        keys.article(canonical),
                        text,
                        ex=keys.ARTICLE_TTL if text else keys.ARTICLE_MISS_TTL,
                    )
                    incr(self.redis, "articles", feed.id, outcome)
                    return text
            await asyncio.sleep(backoff(0.05, attempt, 0.25))
        return ""

    async def _fetch(self, fetcher: Fetcher, url: str) -> tuple[str, str]:
        """Fetch and extract one article; return (text, outcome for the counters)."""
        origin = origin_of(url)
        allowed, host_allowed = await self.robots.allowed(fetcher, url)
        if not allowed:
            # An unreachable robots.txt (5xx) disallows everything only until its short-lived
            # answer expires; a refusal written in robots.txt leaves the host alone for hours.
            if not host_allowed and self.redis.get(keys.robots(origin)) != DISALLOW_ALL.encode():
                self._back_off(origin, "robots.txt disallows everything", keys.HOST_REFUSED_TTL)
            return "", "robots"
        try:
            res = await fetcher.fetch(url)
        except FetchHTTPError as exc:
            if exc.status in _REFUSING:
                self._back_off(origin, f"refused: HTTP {exc.status}", keys.HOST_REFUSED_TTL)
            elif exc.status == 429:
                self._back_off(
                    origin,
                    "HTTP 429 Too Many Requests",
                    int(exc.retry_after or keys.HOST_FAILING_TTL),
                )
            elif exc.status not in _MISSING:
                self._failed(origin, str(exc))
            return "", f"http_{exc.status}"
        except FeedError as exc:
            self._failed(origin, str(exc))
            return "", exc.reason
        ctype = res.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype and ctype not in _HTML_TYPES:
            return "", "not_html"
        text = await self.extractor.run(extract_text, res.body, res.url)
        if looks_paywalled(res.body, text):
            self._back_off(origin, "pages look paywalled", keys.HOST_REFUSED_TTL)
            return "", "paywall"
        self.redis.delete(keys.host_failures(origin))
        return text, "ok" if text else "empty"

    def _failed(self, origin: str, reason: str) -> None:
        """Count a failure of ``origin``; back it off once it keeps failing."""
        key = keys.host_failures(origin)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(key, 0, nx=True, ex=keys.HOST_FAILURES_WINDOW)  # the window opens once
            pipe.incr(key)
            count = int(pipe.execute()[1])
        if count >= FAILURES_BEFORE_BACKOFF:
            self._back_off(
                origin, f"keeps failing ({count} in a row): {reason[:200]}", keys.HOST_FAILING_TTL
            )

    def _back_off(self, origin: str, reason: str, seconds: int) -> None:
        """Leave ``origin`` alone for ``seconds``; log it once across all pollers."""
        seconds = max(1, min(int(seconds), keys.HOST_REFUSED_TTL))
        if not self.redis.set(keys.host_backoff(origin), reason, nx=True, ex=seconds):
            return
        self.redis.zadd(keys.HOSTS_BACKED_OFF, {origin: time.time() + seconds})
        self.redis.delete(keys.host_failures(origin))
        log.warning(
            "article host %s backed off for %ds: %s; its feeds fall back to feed text",
            origin,
            seconds,
            reason,
            extra={"host": origin},
        )
