"""WebSub push: discovery, signatures, and the whole subscriber against a hub written from the W3C text.

Everything runs on loopback: a feed server, the test hub (tests/websubhub.py),
the real exporter serving the callback, the real poller and real Redis.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from configs import NK_WATCHLIST, write_config
from loopfeeds import Answer, FeedServer, local_feed
from websubhub import Hub, feed_body

from worker.config import Config, Feed
from worker.core import keys
from worker.core.metrics import read
from worker.poll import websub
from worker.poll.fetch import FetchResult
from worker.poll.poller import Poller
from worker.poll.subscriptions import _due
from worker.service.app import App, install
from worker.service.exporter import RedisCollector, serve
from worker.service.queue import enqueue_match
from worker.service.roles import drain
from worker.service.stats import collect, render_stats

T0 = 1_760_000_000.0


def result(body: bytes = b"", headers: dict[str, str] | None = None) -> FetchResult:
    url = "https://news.example.com/feeds/world.xml"
    return FetchResult(200, url, body, headers or {}, None, None, None, 0.0)


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        (
            {"link": '<https://hub.example/>; rel="hub", <https://x.example/f>; rel="self"'},
            b"",
            ("https://hub.example/", "https://x.example/f"),
        ),
        (
            {"link": "<https://hub.example/>; rel=hub"},
            b"",
            ("https://hub.example/", "https://news.example.com/feeds/world.xml"),
        ),
        (
            {},
            b'<feed xmlns="http://www.w3.org/2005/Atom"><link rel="hub" href="/hub"/>'
            b'<link href="https://x.example/f" rel="self"/></feed>',
            ("https://news.example.com/hub", "https://x.example/f"),
        ),
        (
            {},
            b"<rss><channel><atom:link rel='hub' href='https://hub.example/h'/></channel></rss>",
            ("https://hub.example/h", "https://news.example.com/feeds/world.xml"),
        ),
        (
            {},
            b'{"version": "https://jsonfeed.org/version/1.1", "feed_url": "https://x.example/j",'
            b' "hubs": [{"type": "WebSub", "url": "https://hub.example/j"}], "items": []}',
            ("https://hub.example/j", "https://x.example/j"),
        ),
        (
            {},
            b"<rss><channel><atom:link rel='self' href='https://x.example/f'/></channel></rss>",
            None,
        ),
        ({"link": '<https://x.example/next>; rel="next"'}, b"{not json", None),
    ],
    ids=[
        "link-header",
        "link-header-no-self",
        "atom",
        "rss-atom-link",
        "json-feed",
        "no-hub",
        "bad-json",
    ],
)
def test_hub_discovery(
    headers: dict[str, str], body: bytes, expected: tuple[str, str] | None
) -> None:
    assert websub.hub_of(result(body, headers)) == expected


@pytest.mark.parametrize("method", ["sha1", "sha256", "sha384", "sha512"])
def test_signature_methods(method: str) -> None:
    body = b"<rss/>"
    good = hmac.new(b"s3cret", body, getattr(hashlib, method)).hexdigest()
    assert websub._signed("s3cret", body, f"{method}={good}")
    assert not websub._signed("s3cret", body + b" ", f"{method}={good}")
    assert not websub._signed("other", body, f"{method}={good}")
    assert not websub._signed("s3cret", body, "")
    assert not websub._signed("s3cret", body, f"md5={good}")


@pytest.mark.parametrize(
    ("sub", "wanted", "now", "expected"),
    [
        ({"state": "offered"}, True, T0, "subscribe"),
        ({"state": "offered", "next_try": str(T0 + 60)}, True, T0, None),  # backing off
        (
            {"state": "requested", "next_try": str(T0 + 600)},
            True,
            T0,
            None,
        ),  # awaiting verification
        ({"state": "requested", "next_try": str(T0 - 1)}, True, T0, "subscribe"),  # never verified
        ({"state": "active", "renew_at": str(T0 + 5)}, True, T0, None),
        ({"state": "active", "renew_at": str(T0 - 5)}, True, T0, "subscribe"),  # renew
        ({"state": "active", "renew_at": str(T0 - 5), "next_try": str(T0 + 9)}, True, T0, None),
        ({"state": "denied", "next_try": str(T0 + 60)}, True, T0, None),
        (
            {"state": "unsubscribing", "lease_until": str(T0 + 99)},
            True,
            T0,
            "subscribe",
        ),  # re-added
        ({"state": "active"}, False, T0, "unsubscribe"),
        ({"state": "requested"}, False, T0, "unsubscribe"),
        ({"state": "offered"}, False, T0, "forget"),
        ({"state": "denied"}, False, T0, "forget"),
        (
            {"state": "unsubscribing", "lease_until": str(T0 + 99), "next_try": str(T0 + 9)},
            False,
            T0,
            None,
        ),
        (
            {"state": "unsubscribing", "lease_until": str(T0 + 99), "next_try": str(T0 - 1)},
            False,
            T0,
            "unsubscribe",
        ),
        ({"state": "unsubscribing", "lease_until": str(T0 - 1)}, False, T0, "forget"),  # lapsed
    ],
)
def test_what_a_subscription_needs(
    sub: dict[str, str], wanted: bool, now: float, expected: str | None
) -> None:
    assert _due(sub, wanted, now) == expected


# -- the subscriber against the test hub ----------------------------------------


class Env:
    """A feed naming the hub, the hub, and the exporter serving our callback."""

    def __init__(self, client: redis.Redis, lease: int) -> None:
        self.client = client
        self.server = FeedServer()
        self.hub = Hub(lease_seconds=lease)
        self.topic = self.server.url("/world.xml")
        self.items: list[tuple[str, str, float]] = [
            (f"old-{i}", f"Old story {i}", time.time() - 3600 + i) for i in range(3)
        ]
        self.server.answers["/world.xml"] = lambda: Answer(self.body(), etag=True)
        self.exporter = serve(client, 0, RedisCollector(client, dict, lambda: "test"))
        self.callback = f"http://127.0.0.1:{self.exporter.server_address[1]}"

    def body(self) -> bytes:
        return feed_body(self.items, hub=self.hub.url, topic=self.topic)

    def add(self, guid: str, title: str) -> None:
        self.items.append((guid, title, time.time()))

    def close(self) -> None:
        self.exporter.shutdown()
        self.exporter.server_close()
        self.hub.close()
        self.server.close()


@pytest.fixture
def env(redis_client: redis.Redis) -> Iterator[Env]:
    e = Env(redis_client, lease=3)
    yield e
    e.close()


def config(env: Env, *feeds: Feed) -> Config:
    return Config(
        root="",
        version="t",
        feeds=feeds,
        watchlists=(),
        destinations={},
        allow_private_networks=True,
        websub_callback=env.callback,
    )


async def until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Wait for ``check()`` to be truthy (bounded); return its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(check)
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {check}")


async def polling(poller: Poller, scenario: Callable[[], Any]) -> None:
    """Run the poller's loop (WebSub upkeep every 0.2 s) around ``scenario``."""
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop, push_every=0.2))
    try:
        await scenario()
    finally:
        stop.set()
        await task


def new_items(client: redis.Redis, feed_id: str) -> int:
    return read(client, "items").get((feed_id, "new"), 0)


def test_subscribe_verify_push_forge_renew_and_unsubscribe(
    env: Env, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    feed = local_feed("world", env.topic, min_interval=600.0, max_interval=3600.0)
    poller = Poller(redis_client, config(env, feed), enqueue=enqueue_match, parse_workers=0)
    asyncio.run(poller.poll_all())  # the first poll discovers the hub and marks the items seen
    assert websub.record(redis_client, "world")["hub"] == env.hub.url

    async def scenario() -> None:
        # §5.1/§5.3: we ask, the hub verifies, we echo its challenge.
        sub = (await until(lambda: env.hub.subscribers(env.topic)))[0]
        first = env.hub.requests[0]
        assert first["hub.mode"] == "subscribe" and first["hub.topic"] == env.topic
        assert first["hub.callback"].startswith(env.callback + "/websub/world/")
        assert 0 < len(first["hub.secret"].encode()) < 200
        assert env.hub.verifications[0]["confirmed"]
        assert websub.pushing(redis_client, "world", time.time())
        # The challenge is echoed only for what we asked for.
        assert not env.hub.verify(sub.callback, "subscribe", "http://127.0.0.1:9/other.xml")[
            "confirmed"
        ]
        assert not env.hub.verify(sub.callback, "unsubscribe", env.topic)["confirmed"]
        assert not env.hub.verify(
            sub.callback.replace("/world/", "/other/"), "subscribe", env.topic
        )["confirmed"]
        fetches = env.server.count("/world.xml")

        # §8: a forged push is refused (2xx, as the spec asks), logged, and nothing is queued.
        env.add("forged-1", "Forged story")
        assert await asyncio.to_thread(env.hub.publish, env.topic, env.body(), forge=True) == [202]
        await asyncio.sleep(0.5)
        assert new_items(redis_client, "world") == 0
        assert redis_client.llen(keys.WEBSUB_INBOX) == 0
        assert read(redis_client, "websub")[("world", "forged")] == 1
        assert any("X-Hub-Signature" in r.getMessage() for r in caplog.records)
        env.items.pop()

        # Signed but unreadable content is dropped with a log line; the loop goes on.
        assert await asyncio.to_thread(env.hub.publish, env.topic, b"not a feed") == [202]
        await until(lambda: any("pushed content dropped" in r.getMessage() for r in caplog.records))

        # §7: a signed push is taken through the poll path, without a fetch.
        env.add("pushed-1", "Pushed story")
        assert await asyncio.to_thread(env.hub.publish, env.topic, env.body()) == [202]
        await until(lambda: new_items(redis_client, "world") == 1)
        assert redis_client.exists(keys.item(websub_item_id(redis_client)))
        assert env.server.count("/world.xml") == fetches
        assert float(websub.record(redis_client, "world")["last_push"]) > 0

        # Lease renewal before the 3 s lease runs out, same callback, hub verifies again.
        lease_until = float(websub.record(redis_client, "world")["lease_until"])
        await until(lambda: len(env.hub.requests) >= 2, timeout=6)
        assert env.hub.requests[1]["hub.callback"] == first["hub.callback"]
        await until(
            lambda: float(websub.record(redis_client, "world")["lease_until"]) > lease_until
        )
        assert websub.pushing(redis_client, "world", lease_until + 0.5)

    asyncio.run(polling(poller, scenario))

    # The feed leaves the config: we unsubscribe, the hub verifies, the record goes.
    gone = Poller(redis_client, config(env), enqueue=enqueue_match, parse_workers=0)

    async def unsubscribed() -> None:
        await until(lambda: not env.hub.subscribers(env.topic))
        await until(lambda: not redis_client.exists(keys.websub("world")))

    asyncio.run(polling(gone, unsubscribed))
    assert env.hub.requests[-1]["hub.mode"] == "unsubscribe"
    assert env.hub.verifications[-1] == {
        "mode": "unsubscribe",
        "topic": env.topic,
        "status": 200,
        "confirmed": True,
    }
    assert read(redis_client, "websub")[("world", "unsubscribed")] == 1


def websub_item_id(client: redis.Redis) -> str:
    """Return the id of the one item stored from the feed (the pushed one)."""
    ids = [k.decode().rsplit(":", 1)[1] for k in client.scan_iter(keys.item("*"))]
    assert len(ids) == 1, ids
    return ids[0]


def test_a_pushed_item_alerts_without_waiting_for_a_poll(
    env: Env, tmp_path: Path, redis_url: str, redis_client: redis.Redis, receiver: Any
) -> None:
    feeds = (
        "allow_private_networks: true\n"
        f"websub: {{callback: '{env.callback}'}}\n"
        "defaults: {min_interval: 10m, max_interval: 1h, fulltext: never}\n"
        f"feeds:\n  - id: world\n    url: {env.topic}\n"
    )
    root = write_config(
        tmp_path / "config",
        feeds=feeds,
        destinations=f"hook:\n  url: json://127.0.0.1:{receiver.port}/alerts\n",
        watchlists={"nk": NK_WATCHLIST.format(notify="[hook]")},
    )
    app = App(root, redis_url=redis_url, var_dir=tmp_path / "var")
    install(app)
    poller = Poller(app.redis, app.config(), enqueue=enqueue_match, parse_workers=0)
    asyncio.run(poller.poll_all())

    async def scenario() -> None:
        await until(lambda: websub.pushing(redis_client, "world", time.time()))
        fetches = env.server.count("/world.xml")
        env.add("kursk-1", "North Korean soldiers captured in Kursk")
        await asyncio.to_thread(env.hub.publish, env.topic, env.body())
        await until(lambda: new_items(redis_client, "world") == 1)
        await asyncio.to_thread(drain, app, 20)
        assert env.server.count("/world.xml") == fetches  # no poll was needed

    asyncio.run(polling(poller, scenario))
    assert len(receiver.received) == 1
    assert "Kursk" in receiver.received[0]["body"]["title"]
    data = collect(app)
    (row,) = data["feeds"]
    assert row["websub"]["state"] == "active" and row["websub"]["last_push"] > time.time() - 60
    assert re.search(r"world .* active \d+s ago", render_stats(data))


def test_a_hub_that_stops_pushing_is_covered_by_the_safety_net_poll(
    env: Env, redis_client: redis.Redis
) -> None:
    env.hub.lease_seconds = 3600
    feed = local_feed("world", env.topic, min_interval=1.0, max_interval=2.0)
    poller = Poller(redis_client, config(env, feed), enqueue=enqueue_match, parse_workers=0)
    asyncio.run(poller.poll_all())

    async def scenario() -> None:
        await until(lambda: websub.pushing(redis_client, "world", time.time()))
        env.add("quiet-1", "Story the hub never pushed")  # and the hub says nothing
        await until(lambda: new_items(redis_client, "world") == 1, timeout=8)
        state = redis_client.hgetall(keys.feed_state("world"))
        assert float(state[b"poll_interval"]) == 2.0  # polled at max_interval while pushed
        assert b"last_push" not in state

    asyncio.run(polling(poller, scenario))
    assert env.hub.deliveries == []


def test_without_a_callback_nothing_is_subscribed(env: Env, redis_client: redis.Redis) -> None:
    feed = local_feed("world", env.topic, min_interval=1.0)
    plain = Config(
        root="",
        version="t",
        feeds=(feed,),
        watchlists=(),
        destinations={},
        allow_private_networks=True,
    )
    poller = Poller(redis_client, plain, enqueue=enqueue_match, parse_workers=0)

    async def scenario() -> None:
        await until(lambda: env.server.count("/world.xml") >= 1)
        await asyncio.sleep(0.5)

    asyncio.run(polling(poller, scenario))
    assert env.hub.requests == []
    assert not redis_client.exists(keys.WEBSUB_FEEDS, keys.websub("world"))


def test_the_callback_refuses_strangers(env: Env, redis_client: redis.Redis) -> None:
    status, _ = websub.answer(
        redis_client,
        "GET",
        "/websub/world/" + "0" * 32,
        "hub.mode=subscribe&hub.topic=x&hub.challenge=c",
        {},
        b"",
        T0,
    )
    assert status == 404
    status, _ = websub.answer(redis_client, "POST", "/nothing", "", {}, b"", T0)
    assert status == 404
    assert websub.records(redis_client) == {}
