"""Dry runs for ``try`` and ``explain``: feeds from files, URLs or the config, no Redis.

Decisions:

- A SOURCE that names a file is a saved feed. Its relative item links resolve
  against ``xml:base``, else the channel's own ``<link>``; when neither exists
  the link is left empty and a warning line says so.
- A SOURCE that fails (no such file, unreachable URL, not a feed) stops the
  command with one line and exit code 4, as before.
- With no SOURCE, every configured feed is tried: all are fetched at once by
  the poller's fetcher with the config's limits and private-address policy. A
  feed that fails is one line on stderr, the others are still matched, and the
  command exits 4 at the end so that a script notices.
- What a feed's parse noticed (a broken feed that kept what parsed, links
  left empty) is one ``warning:`` line on stderr per source.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from worker.core.logs import progress
from worker.errors import FailureReason, FeedError

if TYPE_CHECKING:
    from worker.config import Config
    from worker.poll.parse import ParsedFeed
    from worker.rules import Engine
    from worker.service.app import App
    from worker.stories.preview import RunStories

__all__ = ["feeds_to_try", "read_configured", "read_source", "write_hits", "write_stories"]


def read_source(app: App, source: str) -> ParsedFeed:
    """Parse a saved feed file or fetch and parse a feed URL (raises ``FeedError``)."""
    from worker.poll.parse import parse_feed

    path = Path(source)
    if path.is_file():
        return parse_feed(path.read_bytes(), feed_id=path.stem, url=path.resolve().as_uri())
    if "://" not in source:
        raise FeedError(f"{source}: no such file, and not a URL", reason=FailureReason.SCHEME)
    from worker.poll.fetch import FetchLimits, fetch_once

    config = app.config()
    res = fetch_once(
        source,
        limits=FetchLimits(**config.fetch),  # type: ignore[arg-type]
        allow_private=config.allow_private_networks,
    )
    feed = next((f.id for f in config.feeds if f.url == source), source)
    return parse_feed(res.body, feed_id=feed, url=res.url, headers=res.headers)


def read_configured(app: App) -> Iterator[tuple[str, ParsedFeed | FeedError]]:
    """Yield (feed id, parsed feed or its error) for every configured feed, fetched at once."""
    from worker.poll.fetch import Fetcher, FetchLimits, FetchResult
    from worker.poll.parse import parse_feed

    config = app.config()
    limits = FetchLimits(**config.fetch)  # type: ignore[arg-type]

    async def fetch_all() -> list[FetchResult | BaseException]:
        async with Fetcher(limits, config.allow_private_networks) as fetcher:
            fetches = (fetcher.fetch(f.url) for f in config.feeds)
            return await asyncio.gather(*fetches, return_exceptions=True)

    for feed, res in zip(config.feeds, asyncio.run(fetch_all()), strict=True):
        if isinstance(res, FeedError):
            yield feed.id, res
        elif isinstance(res, BaseException):
            raise res  # a bug, not the feed's fault: let it show
        else:
            try:
                yield (
                    feed.id,
                    parse_feed(res.body, feed_id=feed.id, url=res.url, headers=res.headers),
                )
            except FeedError as exc:
                yield feed.id, exc


def feeds_to_try(
    app: App, sources: Sequence[str], say: Callable[[str], None]
) -> Iterator[ParsedFeed]:
    """Yield the feeds of ``sources`` (none: every configured feed), telling ``say`` of trouble.

    A configured feed that fails is one ``say`` line; a ``FeedError`` after the
    last feed then reports how many failed.
    """
    failed = 0
    pairs = (
        ((s, read_source(app, s)) for s in progress(sources, "matching"))
        if sources
        else read_configured(app)
    )
    for name, feed in pairs:
        if isinstance(feed, FeedError):
            failed += 1
            say(f"newsalert: {name}: {feed}")
            continue
        if feed.warning:
            say(f"warning: {name}: {feed.warning}")
        yield feed
    if failed:
        raise FeedError(
            f"{failed} of {len(app.config().feeds)} feeds failed", reason=FailureReason.SOME
        )


def write_hits(
    engine: Engine, feed: ParsedFeed, out: IO[str], as_json: bool, stories: RunStories
) -> int:
    """Write ``feed``'s hits as ``try --json`` lines with their story, or keep them for text.

    Text output groups hits by story across feeds, so ``write_stories`` prints it
    once every feed was read. A hit of a shadow rule (matched and counted, never
    delivered) gets a last key ``"shadow": true`` in JSON, ``[shadow]`` in text.
    """
    from worker.model import hit_lines

    hits = [(item, engine.match(item.texts())) for item in feed.items]
    stories.add(item for item, matches in hits if matches)
    count = 0
    for item, matches in hits:
        count += len(matches)
        if as_json:
            lines = hit_lines(item, matches, stories.teller(item))
            for m, line in zip(matches, lines, strict=True):
                shadow = _shadow(stories.config, m.watchlist, m.rule)
                out.write(line[:-1] + ', "shadow": true}' if shadow else line)
                out.write("\n")
            continue
        for match in matches:
            stories.hits.setdefault(stories.story(item, match.watchlist), []).append((item, match))
    return count


def _shadow(config: Config, watchlist: str, rule: str) -> bool:
    wl = config.watchlist(watchlist)
    return bool(wl and wl.is_shadow(rule))


def write_stories(stories: RunStories, out: IO[str]) -> None:
    """Write the text output of ``try``: hits with snippets, grouped by story."""
    from worker.deliver.render import snippets
    from worker.model import Alert

    for sid, hits in stories.hits.items():
        feeds = {item.feed for item, _ in hits}
        if len({item.id for item, _ in hits}) > 1:
            out.write(f"◆ story {sid}: {len(hits)} hits from {len(feeds)} feeds, one alert\n")
        for item, match in hits:
            mark = " [shadow]" if _shadow(stories.config, match.watchlist, match.rule) else ""
            out.write(
                f"● {match.watchlist} / {match.rule}{mark}: {item.title}\n"
                f"  {item.link}  ({item.feed})\n"
            )
            alert = Alert(match.watchlist, match.watchlist, (match.rule,), item, match.highlights)
            for field, text in snippets(alert, "text"):
                out.write(f"    {field}: {text}\n")
