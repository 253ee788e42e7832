"""A WebSub hub on 127.0.0.1, written from the W3C Recommendation (23 January 2018).

It does what §5 and §7 ask of a hub, and records everything so tests can check
the subscriber:

- §5.1 subscription request: a form POST with ``hub.callback``, ``hub.mode``
  (``subscribe``/``unsubscribe``), ``hub.topic`` and an optional ``hub.secret``
  (under 200 bytes) and ``hub.lease_seconds``; answered 202 Accepted, then
  verified asynchronously (400 for a malformed request).
- §5.3 verification of intent: a GET to the callback with ``hub.mode``,
  ``hub.topic``, ``hub.challenge`` and (subscribe) ``hub.lease_seconds``; the
  subscriber must answer 2xx with the challenge as the body, else the
  request is not acted on. A re-subscription renews the lease (and secret).
- §7 content distribution: a POST of the new feed body to every active
  callback of the topic, with ``Link`` headers (rel=hub, rel=self) and, when
  a secret was given, ``X-Hub-Signature: sha256=<HMAC of the body>`` (§8).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape


@dataclass
class Subscription:
    callback: str
    topic: str
    secret: str | None
    lease_seconds: int
    expires: float


@dataclass
class Hub:
    """The hub; ``url`` is its endpoint. Use ``close()`` when done."""

    lease_seconds: int = 3600
    requests: list[dict[str, str]] = field(default_factory=list)
    verifications: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    active: dict[tuple[str, str], Subscription] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                ok = (
                    form.get("hub.mode") in ("subscribe", "unsubscribe")
                    and form.get("hub.callback", "").startswith("http")
                    and form.get("hub.topic")
                    and len(form.get("hub.secret", "").encode()) < 200
                )
                self.send_response(202 if ok else 400)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if ok:
                    with hub.lock:
                        hub.requests.append(form)
                    threading.Thread(target=hub._verify, args=(form,), daemon=True).start()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hub"

    def verify(
        self, callback: str, mode: str, topic: str, lease: int | None = None
    ) -> dict[str, Any]:
        """Send one verification of intent (§5.3); return what the subscriber answered."""
        challenge = secrets.token_urlsafe(16)
        query = {"hub.mode": mode, "hub.topic": topic, "hub.challenge": challenge}
        if mode == "subscribe":
            query["hub.lease_seconds"] = str(lease or self.lease_seconds)
        sep = "&" if "?" in callback else "?"
        try:
            with urllib.request.urlopen(
                callback + sep + urllib.parse.urlencode(query), timeout=5
            ) as r:
                status, body = r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, ""
        seen = {"mode": mode, "topic": topic, "status": status}
        seen["confirmed"] = 200 <= status < 300 and body == challenge
        with self.lock:
            self.verifications.append(seen)
        return seen

    def _verify(self, form: dict[str, str]) -> None:
        mode, topic, callback = form["hub.mode"], form["hub.topic"], form["hub.callback"]
        lease = int(form.get("hub.lease_seconds") or self.lease_seconds)
        if not self.verify(callback, mode, topic, lease)["confirmed"]:
            return  # §5.3: a failed verification leaves everything as it was
        with self.lock:
            if mode == "subscribe":
                self.active[(topic, callback)] = Subscription(
                    callback, topic, form.get("hub.secret"), lease, time.time() + lease
                )
            else:
                self.active.pop((topic, callback), None)

    def publish(self, topic: str, body: bytes, *, forge: bool = False) -> list[int]:
        """Distribute ``body`` to every live subscriber of ``topic`` (§7); return their statuses."""
        with self.lock:
            subs = [s for s in self.active.values() if s.topic == topic and s.expires > time.time()]
        statuses = []
        for sub in subs:
            secret = (secrets.token_hex(16) if forge else sub.secret) or ""
            headers = {
                "Content-Type": "application/rss+xml",
                "Link": f'<{self.url}>; rel="hub", <{topic}>; rel="self"',
            }
            if sub.secret is not None:
                sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
                headers["X-Hub-Signature"] = f"sha256={sig}"
            req = urllib.request.Request(sub.callback, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    status = r.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            statuses.append(status)
            with self.lock:
                self.deliveries.append(
                    {"topic": topic, "status": status, "forged": forge, "at": time.time()}
                )
        return statuses

    def subscribers(self, topic: str) -> list[Subscription]:
        with self.lock:
            return [s for s in self.active.values() if s.topic == topic]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def feed_body(
    items: list[tuple[str, str, float]],
    *,
    hub: str | None,
    topic: str,
    link_base: str = "https://news.example.com/",
) -> bytes:
    """Return an RSS 2.0 feed of (guid, title, published) items that names ``hub`` (newest first)."""
    head = f'<atom:link rel="self" href="{escape(topic)}"/>'
    if hub:
        head += f'<atom:link rel="hub" href="{escape(hub)}"/>'
    entries = "".join(
        f'<item><title>{escape(title)}</title><guid isPermaLink="false">{escape(guid)}</guid>'
        f"<link>{escape(link_base + guid)}</link>"
        f"<pubDate>{formatdate(published, usegmt=True)}</pubDate></item>"
        for guid, title, published in sorted(items, key=lambda i: -i[2])
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>'
        f"<title>t</title><link>https://news.example.com/</link><description>d</description>"
        f"{head}{entries}</channel></rss>"
    ).encode()
