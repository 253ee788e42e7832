"""Item identity: canonical URLs, per-feed item ids and cross-feed story keys.

Pure functions, no I/O. Decisions:

- ``item_id`` is the identity of an item *within one feed* (the poller's
  seen-set). The feed id is mixed into every id, whatever it was derived
  from, so two feeds that both number their GUIDs ``1, 2, 3…`` never collide
  and an id is unique across the whole system (job ids, ``try --json``).
- Source of the id, first that applies: the GUID (any non-blank string,
  used verbatim: GUIDs are opaque, and canonicalising permalink GUIDs would
  merge ``page.html#a1`` and ``page.html#a2``, which some blogs use for
  separate posts), else the canonical link, else title + the raw
  published/updated date string.
  Items with none of these share one id per feed: the poller sees them once.
- ``story_key`` is the cross-feed key that syndicated copies share: a hash
  of the canonical link when the item has an http(s) link, else the item id
  (which cannot match anything in another feed, by design).
- Hashes are 16 hex chars (64 bits) of BLAKE2b: compact for Redis and far
  from colliding at the scale of one feed's history. A one-letter prefix in
  the hashed text keeps GUID-, link- and title-derived ids apart.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import unquote_plus, urljoin, urlsplit, urlunsplit

__all__ = [
    "TRACKING_PARAMS",
    "LinkResolver",
    "canonical_url",
    "http_link",
    "item_id",
    "story_key",
]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")

#: Query parameters that identify a campaign or a click, never the resource.
TRACKING_PARAMS: frozenset[str] = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "mc_cid",
        "mc_eid",
        "ref_src",
        "ref_url",
        "igshid",
        "_ga",
        "_gl",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "oly_anon_id",
        "oly_enc_id",
        "vero_id",
        "wt_mc",
        "cmpid",
        "at_medium",
        "at_campaign",
        "ito",
        "smid",
    }
)
_TRACKING_PREFIXES: tuple[str, ...] = ("utm_", "pk_", "mtm_")
_DEFAULT_PORTS: dict[str, int] = {"http": 80, "https": 443}


def _is_tracking(key: str) -> bool:
    key = key.lower()
    return key in TRACKING_PARAMS or key.startswith(_TRACKING_PREFIXES)


def canonical_url(url: str) -> str:
    """Return ``url`` normalised for comparison; non-http(s) URLs come back stripped only."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return url
    host = parts.hostname  # already lower-cased by urlsplit
    if ":" in host:
        host = f"[{host}]"
    netloc = host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{host}:{port}"
    # userinfo is dropped on purpose: it never names a different story.
    # Query segments are filtered without decoding/re-encoding so that the
    # remaining parameters keep their exact bytes and order.
    kept = [
        seg
        for seg in parts.query.split("&")
        if seg and not _is_tracking(unquote_plus(seg.split("=", 1)[0]))
    ]
    return urlunsplit((scheme, netloc, parts.path or "/", "&".join(kept), ""))


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def _is_http(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def item_id(
    feed_id: str, guid: str | None, link: str | None, title: str, published: str | None
) -> str:
    """Return the 16-hex-char id of an item of feed ``feed_id`` (see module docstring)."""
    guid = (guid or "").strip()
    link = (link or "").strip()
    if guid:
        key = "g" + guid
    elif link:
        key = "l" + canonical_url(link)
    else:
        key = "t" + title.strip() + "\x00" + (published or "").strip()
    return _digest(feed_id + "\x00" + key)


def story_key(link: str | None, id: str) -> str:
    """Return the key syndicated copies of a story share: canonical-link hash, else ``id``."""
    if link and _is_http(link.strip()):
        return _digest("u" + canonical_url(link))
    return id


def http_link(link: str | None, base: str) -> str:
    """Return ``link`` made absolute against ``base`` if it is http(s), else ``""``."""
    link = (link or "").strip()
    try:
        link = urljoin(base, link) if base and link else link
    except ValueError:
        return ""
    return link if link.lower().startswith(("http://", "https://")) else ""


class LinkResolver:
    """Resolve item links against the feed URL, else the channel's link; count failures."""

    def __init__(self, url: str, channel: str | None) -> None:
        self.base = url if http_link(url, "") else http_link(channel, "")
        self.unresolved = 0

    def __call__(self, raw: str) -> str:
        link = http_link(raw, self.base)
        self.unresolved += bool(raw.strip() and not link and not _SCHEME.match(raw.strip()))
        return link

    def note(self) -> list[str]:
        n = self.unresolved
        why = "no xml:base, http(s) feed URL or channel <link> to resolve them against"
        return [f"{n} relative item link(s) left empty: {why}"] if n else []
