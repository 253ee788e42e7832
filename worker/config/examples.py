"""Run every watchlist's ``examples`` against its own rules (``newsalert check``).

An example is matched as if its text were every field of an item, so a rule
scoped to ``title`` or ``content`` is exercised too. A failure names the
example and lists which terms did and did not match.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from worker.config import Config
from worker.model import TEXT_FIELDS
from worker.rules import Engine, explain


def _leaves(node: Any) -> Iterable[Any]:
    children = getattr(node, "children", None) or ()
    if not children:
        yield node
    for child in children:
        yield from _leaves(child)


def _terms(engine: Engine, texts: dict[str, str], watchlist: str) -> tuple[list[str], list[str]]:
    hit: dict[str, None] = {}
    miss: dict[str, None] = {}
    for expl in explain(engine, texts, watchlist):
        for leaf in _leaves(getattr(expl, "root", expl)):
            (hit if leaf.matched else miss)[str(leaf.label)] = None
    return list(hit), [m for m in miss if m not in hit]


def example_problems(
    config: Config, engine: Engine | None = None
) -> list[tuple[str, int, int, str]]:
    """Return a ``(path, line, col, message)`` for every example that misbehaves."""
    engine = engine or Engine(config.rule_specs())
    problems = []
    for wl in config.watchlists:
        cases = [(t, line, True) for t, line in wl.should_match]
        cases += [(t, line, False) for t, line in wl.should_not_match]
        for text, line, expected in cases:
            texts = dict.fromkeys(TEXT_FIELDS, text)
            fired = [m.rule for m in engine.match(texts, watchlists=[wl.id])]
            if bool(fired) == expected:
                continue
            hit, miss = _terms(engine, texts, wl.id)
            if expected:
                msg = (
                    f"example should match but no rule fired: {text!r} "
                    f"(matched: {', '.join(hit) or 'nothing'}; "
                    f"not matched: {', '.join(miss) or 'nothing'})"
                )
            else:
                msg = (
                    f"example should not match but rule {', '.join(fired)} fired: {text!r} "
                    f"(matched: {', '.join(hit) or 'nothing'})"
                )
            problems.append((wl.path, line or 1, 1, msg))
    return problems
