"""A watchlist's change-safety settings: ``shadow`` (watchlist or rule) and ``max_per_hour``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from worker.config.schema import Checker, boolean, positive_int
from worker.config.yamlfile import Map, Seq

#: Keys of a watchlist read here, and of a rule.
WATCHLIST_KEYS = frozenset({"shadow", "max_per_hour"})
RULE_KEYS = frozenset({"shadow"})


def _at_least_one(value: Any) -> int:
    if positive_int(value) < 1:
        raise ValueError(f"must be a whole number ≥ 1, not {value!r}")
    return int(value)


def safety_settings(ld: Checker, path: Path, doc: Map) -> dict[str, Any]:
    """Return the ``Watchlist`` fields ``shadow``, ``shadow_rules`` and ``max_per_hour``."""
    rules = doc.get("rules")
    shadow_rules = frozenset(
        str(node.get("id") or f"rule-{i + 1}")  # a rule's default id, as the rule loader gives it
        for i, node in enumerate(rules if isinstance(rules, Seq) else ())
        if isinstance(node, Map) and ld.convert(path, node, "shadow", boolean, False)
    )
    return {
        "shadow": ld.convert(path, doc, "shadow", boolean, False),
        "shadow_rules": shadow_rules,
        "max_per_hour": ld.convert(path, doc, "max_per_hour", _at_least_one, None),
    }
