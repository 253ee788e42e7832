"""WebSub subscriber (W3C Recommendation, 23 January 2018): discovery, records, the callback.

Everything here works on Redis alone, so whichever process serves ``$PORT``
(the exporter) can answer hubs without loading the config. The outgoing side
(subscribe, renew, unsubscribe, taking pushed content in) is
``worker.poll.subscriptions``.

- **Discovery** (§4): a ``Link: <…>; rel="hub"`` header, else an
  ``<atom:link rel="hub">`` (or ``<link rel="hub">``) in the first 64 kB of the
  body, else a JSON Feed ``hubs`` entry. The topic is the ``rel="self"`` URL
  when the feed names one, else the URL fetched.
- **Records**: one hash per feed (``keys.websub``) holding the hub, topic,
  callback token, the subscription's own secret, ``mode`` (what we last asked
  for), ``state`` (offered → requested → active; denied; unsubscribing),
  ``lease_until``, ``renew_at`` and ``last_push``.
- **Callback** ``<websub.callback>/websub/<feed id>/<token>``: the token is
  random per record, so a callback URL cannot be guessed from a feed id.
- **Intent verification** (§5.3): ``hub.challenge`` is echoed only when
  ``hub.topic`` is the record's topic and ``hub.mode`` is what we last asked
  for; anything else is a 404. ``hub.lease_seconds`` sets when we renew
  (at ``RENEW_AT`` of the lease). ``hub.mode=denied`` is recorded and retried
  after ``DENIED_RETRY``.
- **Content distribution** (§7, §8): accepted only for an active
  subscription (else 410, which lets the hub drop it) and only with a
  matching ``X-Hub-Signature`` (HMAC of the raw body with the subscription's
  secret; sha1, sha256, sha384 or sha512). A missing or wrong signature is
  logged and counted and nothing is queued; as §8 requires, the hub still
  gets a 2xx, so it does not retry a forgery. Good content waits in
  ``keys.WEBSUB_INBOX`` for the poller, which parses it like a fetched body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urljoin

import redis

from worker.core import keys
from worker.core.metrics import incr

if TYPE_CHECKING:
    from worker.poll.fetch import FetchResult

__all__ = ["answer", "describe", "hub_of", "offer", "pushing", "record", "records"]

log = logging.getLogger("newsalert.websub")

#: Renew a subscription once this share of its lease has passed.
RENEW_AT = 0.8
#: A hub that denied a subscription is asked again after this long.
DENIED_RETRY = 6 * 3600.0
#: The lease assumed when a hub's verification names none (§5.3 says it must).
DEFAULT_LEASE = 86400.0
#: The largest pushed body taken (the fetcher's default ``max_bytes``).
MAX_PUSH = 10 * 1024 * 1024

_LINK = re.compile(r'<([^>]*)>\s*((?:;\s*[\w*-]+\s*=\s*(?:"[^"]*"|[^;,]*)\s*)*)')
_TAG = re.compile(rb"<(?:atom:)?link\b[^>]*>", re.IGNORECASE)
_ATTR = re.compile(rb"""\b(rel|href)\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
_PATH = re.compile(r"/websub/([A-Za-z0-9][A-Za-z0-9_.-]*)/([0-9a-f]{32})$")
_DIGESTS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384}
_DIGESTS["sha512"] = hashlib.sha512


def _header_links(value: str) -> dict[str, str]:
    """Return {rel: url} from a ``Link`` header (RFC 8288), first link per rel."""
    out: dict[str, str] = {}
    for m in _LINK.finditer(value):
        rel = re.search(r'rel\s*=\s*"?([^";]*)"?', m.group(2) or "")
        for name in rel.group(1).split() if rel else ():
            out.setdefault(name.lower(), m.group(1).strip())
    return out


def _body_links(body: bytes) -> dict[str, str]:
    """Return {rel: url} from the ``<link>``/``<atom:link>`` tags or JSON Feed ``hubs``."""
    head = body[:65536]
    if head.lstrip().startswith(b"{"):
        try:
            doc = json.loads(body)
            hubs = [h.get("url") for h in doc.get("hubs") or () if isinstance(h, dict)]
        except (ValueError, AttributeError):
            return {}
        found = {"hub": next((h for h in hubs if isinstance(h, str)), None)}
        found["self"] = doc.get("feed_url")
        return {k: v for k, v in found.items() if isinstance(v, str)}
    out: dict[str, str] = {}
    for tag in _TAG.finditer(head):
        attrs = {m.group(1).lower(): (m.group(2) or m.group(3)) for m in _ATTR.finditer(tag[0])}
        for name in attrs.get(b"rel", b"").decode(errors="replace").split():
            if attrs.get(b"href"):
                out.setdefault(name.lower(), attrs[b"href"].decode(errors="replace").strip())
    return out


def hub_of(res: FetchResult) -> tuple[str, str] | None:
    """Return (hub URL, topic URL) that a fetched feed names, or None when it names no hub."""
    links = _header_links(res.headers.get("link", ""))
    if "hub" not in links:
        links = {**_body_links(res.body), **links}
    if not links.get("hub"):
        return None
    return urljoin(res.url, links["hub"]), urljoin(res.url, links.get("self") or res.url)


def _text(raw: Mapping[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode(errors="replace") for k, v in raw.items()}


def record(client: redis.Redis, feed_id: str) -> dict[str, str]:
    """Return a feed's subscription record ({} when it has none)."""
    return _text(client.hgetall(keys.websub(feed_id)))


def records(client: redis.Redis) -> dict[str, dict[str, str]]:
    """Return every subscription record by feed id."""
    ids = sorted(m.decode() for m in client.smembers(keys.WEBSUB_FEEDS))
    with client.pipeline(transaction=False) as pipe:
        for fid in ids:
            pipe.hgetall(keys.websub(fid))
        found = pipe.execute()
    return {fid: _text(raw) for fid, raw in zip(ids, found, strict=True)}


def offer(client: redis.Redis, feed_id: str, hub: str, topic: str) -> None:
    """Remember the hub a feed names; ``subscriptions.maintain`` subscribes to it."""
    key = keys.websub(feed_id)
    known = [v.decode() if v else None for v in client.hmget(key, "hub", "topic")]
    if known == [hub, topic]:
        return
    # A new hub or topic starts over: the old subscription lapses with its lease.
    client.hset(key, mapping={"hub": hub, "topic": topic, "state": "offered", "next_try": 0})
    client.sadd(keys.WEBSUB_FEEDS, feed_id)
    log.info("feed %s: names WebSub hub %s (topic %s)", feed_id, hub, topic)


def pushing(client: redis.Redis, feed_id: str, now: float) -> bool:
    """Return whether a hub is pushing the feed to us now (active and within its lease)."""
    state, until = client.hmget(keys.websub(feed_id), "state", "lease_until")
    return state == b"active" and float(until or 0) > now


def _signed(secret: str, body: bytes, header: str) -> bool:
    """Return whether ``X-Hub-Signature: method=hex`` is the HMAC of ``body`` with ``secret``."""
    method, _, given = header.strip().partition("=")
    digest = _DIGESTS.get(method.lower())
    if digest is None or not secret:
        return False
    expected = hmac.new(secret.encode(), body, digest).hexdigest()
    return hmac.compare_digest(expected, given.strip().lower())


def _verify(
    client: redis.Redis, feed_id: str, sub: dict[str, str], query: str, now: float
) -> tuple[int, bytes]:
    """Answer a hub's verification of intent (§5.3) or its denial (§5.2)."""
    q = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
    mode, topic, challenge = q.get("hub.mode"), q.get("hub.topic"), q.get("hub.challenge")
    key = keys.websub(feed_id)
    if topic != sub.get("topic"):
        log.warning("feed %s: hub asked to verify a topic we did not ask for", feed_id)
        return 404, b"unknown topic\n"
    if mode == "denied":
        reason = q.get("hub.reason", "")[:200]
        client.hset(
            key, mapping={"state": "denied", "error": reason, "next_try": now + DENIED_RETRY}
        )
        incr(client, "websub", feed_id, "denied")
        log.warning("feed %s: the WebSub hub denied the subscription: %s", feed_id, reason)
        return 200, b""
    if mode != sub.get("mode") or not challenge:
        log.warning(
            "feed %s: hub asked to verify %r, we asked for %r", feed_id, mode, sub.get("mode")
        )
        return 404, b"not what we asked for\n"
    if mode == "unsubscribe":
        client.delete(key)
        client.srem(keys.WEBSUB_FEEDS, feed_id)
        incr(client, "websub", feed_id, "unsubscribed")
        log.info("feed %s: WebSub subscription ended", feed_id)
        return 200, challenge.encode()
    try:
        lease = max(float(q.get("hub.lease_seconds") or DEFAULT_LEASE), 1.0)
    except ValueError:
        lease = DEFAULT_LEASE
    mapping = {"state": "active", "lease_until": now + lease, "renew_at": now + RENEW_AT * lease}
    done = {"verified_at": now, "failures": 0, "error": "", "next_try": 0}  # nothing pending
    client.hset(key, mapping={**mapping, **done})
    incr(client, "websub", feed_id, "verified")
    log.info("feed %s: WebSub subscription verified, lease %.0fs", feed_id, lease)
    return 200, challenge.encode()


def _content(
    client: redis.Redis,
    feed_id: str,
    sub: dict[str, str],
    headers: Mapping[str, str],
    body: bytes,
    now: float,
) -> tuple[int, bytes]:
    """Take a hub's content distribution (§7) after checking its signature (§8)."""
    if sub.get("state") != "active":
        incr(client, "websub", feed_id, "unexpected")
        return 410, b"no live subscription\n"
    if not _signed(sub.get("secret", ""), body, headers.get("x-hub-signature", "")):
        incr(client, "websub", feed_id, "forged")
        log.warning(
            "feed %s: pushed content refused: missing or wrong X-Hub-Signature (%d bytes dropped)",
            feed_id,
            len(body),
            extra={"feed": feed_id},
        )
        return 202, b""
    kept = {k: v for k, v in headers.items() if k in ("content-type", "link")}
    message = {"feed": feed_id, "body": base64.b64encode(body).decode(), "headers": kept}
    with client.pipeline(transaction=False) as pipe:
        pipe.rpush(keys.WEBSUB_INBOX, json.dumps({**message, "at": now}))
        pipe.ltrim(keys.WEBSUB_INBOX, -keys.WEBSUB_INBOX_MAX, -1)
        pipe.hset(keys.websub(feed_id), "last_push", now)
        incr(pipe, "websub", feed_id, "push")
        pipe.execute()
    return 202, b""


def answer(
    client: redis.Redis,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
) -> tuple[int, bytes]:
    """Answer one request to the callback; return (HTTP status, body). Headers lower-case."""
    m = _PATH.search(path)
    sub = record(client, m.group(1)) if m else {}
    if not m or not hmac.compare_digest(sub.get("token", ""), m.group(2)):
        return 404, b"no such subscription\n"
    if method == "GET":
        return _verify(client, m.group(1), sub, query, now)
    if method == "POST":
        return _content(client, m.group(1), sub, headers, body, now)
    return 405, b"GET or POST\n"


def describe(sub: Mapping[str, Any]) -> dict[str, Any]:
    """Return the figures of a record that ``stats`` shows (no secret)."""

    def num(name: str) -> float | None:
        try:
            return float(sub[name])
        except (KeyError, ValueError):
            return None

    return {
        "state": sub.get("state"),
        "hub": sub.get("hub"),
        "lease_until": num("lease_until"),
        "last_push": num("last_push"),
        "error": sub.get("error") or None,
    }
