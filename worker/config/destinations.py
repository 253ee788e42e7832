"""The ``destinations.yaml`` section of a config: apprise URLs and how alerts are paced."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from worker.config.schedule import parse_digest, parse_quiet_hours
from worker.config.schema import (
    Checker,
    choice,
    parse_rate,
    positive_int,
)
from worker.config.settings import (
    MESSAGE_FORMATS,
    Destination,
)
from worker.config.templates import check_template
from worker.config.yamlfile import Map
from worker.core.redact import url_secrets


def _text(parse: Callable[[str], Any]) -> Callable[[Any], Any]:
    """Return a converter that passes a YAML value to ``parse`` as text."""
    return lambda value: parse(str(value))


def load_destinations(ld: Checker) -> dict[str, Destination]:
    path = ld.root / "destinations.yaml"
    doc = ld.load(path)
    if doc is None:
        return {}
    if not isinstance(doc, Map):
        ld.error(path, ld.pos(doc), "destinations.yaml must map destination names to settings")
        return {}
    allowed = {
        "url",
        "rate",
        "digest_after",
        "quiet_hours",
        "digest",
        "format",
        "tag",
        "template",
        "on_failure",
    }
    out: dict[str, Destination] = {}
    for name, node in doc.items():
        if ld.mapping(path, node, f"destination {name!r}", allowed, {"url"}) is None:
            continue
        url, secrets = ld.interpolate(path, node, "url", str(node.get("url") or ""))
        if "://" not in url and not any(
            p[3].startswith("environment variable") for p in ld.problems
        ):
            ld.error(
                path,
                ld.value_pos(node, "url"),
                f"destination {name!r}: url must be an apprise URL (scheme://…)",
            )
        out[str(name)] = Destination(
            name=str(name),
            url=url,
            # What ${ENV} put in, and what in the URL itself may be a credential.
            secrets=tuple(dict.fromkeys([*secrets, *url_secrets(url)])),
            rate=ld.convert(path, node, "rate", parse_rate, None),
            digest_after=ld.convert(path, node, "digest_after", positive_int, None),
            quiet_hours=ld.convert(path, node, "quiet_hours", _text(parse_quiet_hours), None),
            digest=ld.convert(path, node, "digest", _text(parse_digest), None),
            format=ld.convert(path, node, "format", choice(MESSAGE_FORMATS), None),
            tag=ld.convert(path, node, "tag", str, None),
            template=ld.convert(path, node, "template", _text(check_template), None),
            on_failure=ld.convert(path, node, "on_failure", str, None),
        )
    for name, node in doc.items():
        target = out.get(str(name)) and out[str(name)].on_failure
        if target and target not in out:
            ld.error(
                path,
                ld.value_pos(node, "on_failure"),
                f"on_failure: unknown destination {target!r}",
            )
    return out
