"""The values that flow through newsalert: Item → Match → Alert → Delivery. No I/O here.

Every value converts to and from a JSON-able dict, because that is what
travels through Redis and RQ.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

#: The text fields of an item that rules can search, in display order.
TEXT_FIELDS: tuple[str, ...] = ("title", "summary", "content", "article")


@dataclass(frozen=True, slots=True)
class Item:
    """One story from one feed, its text already plain (HTML stripped, entities decoded).

    ``id`` is the item's identity within newsalert (see ``worker.poll.identity``);
    ``story`` is the key that syndicated copies share (canonical link hash
    when the item has a link, else ``id``).
    """

    id: str
    feed: str
    title: str
    link: str = ""
    summary: str = ""
    content: str = ""
    article: str = ""
    published: float | None = None
    story: str = ""
    seen_at: float | None = None

    def text(self, name: str) -> str:
        """Return the text of field ``name`` (one of ``TEXT_FIELDS``)."""
        return str(getattr(self, name))

    def texts(self) -> dict[str, str]:
        """Return every non-empty text field by name."""
        return {name: self.text(name) for name in TEXT_FIELDS if self.text(name)}

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # flat: no deep copy

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Item:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True, slots=True)
class Highlight:
    """Why a rule fired: ``term`` matched ``text == item.text(field)[start:end]``."""

    field: str
    term: str
    text: str
    start: int
    end: int

    def to_dict(self) -> dict[str, Any]:
        # Spelled out: ``dataclasses.asdict`` deep-copies and cost as much as matching did
        # in ``try --json``.
        return {
            "field": self.field,
            "term": self.term,
            "text": self.text,
            "start": self.start,
            "end": self.end,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Highlight:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Match:
    """A rule of a watchlist that fired on an item."""

    watchlist: str
    rule: str
    highlights: tuple[Highlight, ...] = ()


def hit_record(item: Item, match: Match) -> dict[str, Any]:
    """Return the ``try --json`` object of one hit (a stable interface, DESIGN.md)."""
    return {
        "watchlist": match.watchlist,
        "rule": match.rule,
        "item": {"id": item.id, "title": item.title, "link": item.link, "feed": item.feed},
        "highlights": [h.to_dict() for h in match.highlights],
    }


_JSON = json.JSONEncoder(ensure_ascii=False)


def hit_lines(
    item: Item, matches: Iterable[Match], story: Callable[[Match], str] | None = None
) -> Iterator[str]:
    """Yield ``json.dumps(hit_record(item, m), ensure_ascii=False)`` for each of ``matches``.

    The item's part is encoded once for all its hits, and one encoder serves every
    line: with thousands of rules an item has dozens of hits, and building each line
    from scratch cost as much as matching.
    """
    encode = _JSON.encode
    head = ""
    for m in matches:
        if not head:
            head = encode(
                {"id": item.id, "title": item.title, "link": item.link, "feed": item.feed}
            )
        highlights = encode([h.to_dict() for h in m.highlights])
        tail = f', "story": {encode(story(m))}' if story is not None else ""
        yield (
            f'{{"watchlist": {encode(m.watchlist)}, "rule": {encode(m.rule)}, '
            f'"item": {head}, "highlights": {highlights}{tail}}}'
        )


def alert_rules(data: Mapping[str, Any]) -> tuple[str, ...]:
    """Return the rule ids of an alert's dict: ``rules``, or the older ``rule`` joined by ", "."""
    if "rules" in data:
        return tuple(str(r) for r in data["rules"])
    return tuple(r for r in str(data.get("rule", "")).split(", ") if r)


@dataclass(frozen=True, slots=True)
class Alert:
    """The rules of one watchlist that fired on an item, on their way to a destination."""

    watchlist: str
    watchlist_name: str
    rules: tuple[str, ...]
    item: Item
    highlights: tuple[Highlight, ...] = ()
    also_in: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if isinstance(self.rules, str):  # the old comma-joined form: each letter would count
            raise TypeError("Alert.rules is a tuple of rule ids, not a string")

    def to_dict(self) -> dict[str, Any]:
        return {
            "watchlist": self.watchlist,
            "watchlist_name": self.watchlist_name,
            "rules": list(self.rules),
            "item": self.item.to_dict(),
            "highlights": [h.to_dict() for h in self.highlights],
            "also_in": list(self.also_in),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        """Read ``to_dict``'s form, or the older one with ``rule``: the ids joined by ", "."""
        return cls(
            watchlist=data["watchlist"],
            watchlist_name=data.get("watchlist_name", data["watchlist"]),
            rules=alert_rules(data),
            item=Item.from_dict(data["item"]),
            highlights=tuple(Highlight.from_dict(h) for h in data.get("highlights", ())),
            also_in=tuple(data.get("also_in", ())),
        )


@dataclass(frozen=True, slots=True)
class Delivery:
    """One alert for one destination: a delivery job's payload, an outbox entry, a dead letter.

    ``id`` is deterministic (``worker.core.keys.delivery_id``) and names the delivery
    in the exactly-once ledger. The dict form keeps the key ``delivery`` for the id, as
    payloads queued in Redis by earlier versions have it; dead letters add ``reason``
    and ``failed_at`` to it, which ``from_dict`` ignores.
    """

    id: str
    destination: str
    alert: Alert
    urgent: bool = False
    story: str = ""  # ``worker.stories.storyid.story_id`` of the item ("": older payloads)

    def to_dict(self) -> dict[str, Any]:
        return {
            "delivery": self.id,
            "destination": self.destination,
            "story": self.story,
            "alert": self.alert.to_dict(),
            "urgent": self.urgent,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Delivery:
        return cls(
            id=data["delivery"],
            destination=data["destination"],
            alert=Alert.from_dict(data["alert"]),
            urgent=bool(data.get("urgent")),
            story=str(data.get("story") or ""),
        )
