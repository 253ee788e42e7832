"""Explain why a rule did or did not fire: its tree, each node marked matched or not.

Every node is evaluated on its own (no short-circuit), so a failing example
still shows which of its terms matched and which did not. A word found by its
dictionary form (``languages:``) shows the form: ``Курском → курск``.

This module builds on ``engine``; the engine knows nothing of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from worker.rules.engine import ALL_FIELDS, Document, Engine, Occ, Rule, scope_fields
from worker.rules.query import And, Near, Node, Not, Or, Scope

__all__ = ["Explanation", "explain", "explain_rule", "render_explanation"]


@dataclass
class Explanation:
    """One node of an explanation tree; the root stands for the rule itself."""

    label: str
    matched: bool
    children: list[Explanation] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    watchlist: str = ""
    rule: str = ""


def _words(doc: Document, occs: list[Occ] | None) -> list[str]:
    """Return the words found, each once; one found only by its form as "word → form"."""
    words: dict[str, None] = {}
    for fi, a, b, _, forms in doc.found(occs or ()):
        text = doc.fields[fi].text[a:b]
        if "" not in forms:
            text += " → " + ", ".join(sorted(forms))
        words[text] = None
    return list(words)


def _node(doc: Document, node: Node, allowed: frozenset[int]) -> Explanation:
    occs = doc.evaluate(node, allowed)
    expl = Explanation(node.label, occs is not None, words=_words(doc, occs))
    if isinstance(node, (And, Or)):
        expl.children = [_node(doc, c, allowed) for c in node.children]
    elif isinstance(node, Not):
        expl.children = [_node(doc, node.child, allowed)]
    elif isinstance(node, Scope):
        expl.children = [_node(doc, node.child, allowed & scope_fields(node.fields))]
    elif isinstance(node, Near):
        expl.children = [_node(doc, node.left, allowed), _node(doc, node.right, allowed)]
    return expl


def explain_rule(doc: Document, rule: Rule) -> Explanation:
    """Return the explanation of ``rule`` on the scanned item ``doc``."""
    tree = _node(doc, rule.tree, ALL_FIELDS)
    return Explanation(
        label=f"rule {rule.id}",
        matched=tree.matched,
        children=[tree],
        words=tree.words,
        watchlist=rule.watchlist,
        rule=rule.id,
    )


def explain(
    engine: Engine, texts: Mapping[str, str], watchlist: str, rule: str | None = None
) -> list[Explanation]:
    """Return one explanation per rule of ``watchlist`` (or just ``rule``) on ``texts``."""
    doc = engine.scan(texts)
    return [explain_rule(doc, r) for r in engine.rules(watchlist, rule)]


def render_explanation(expl: Explanation, indent: int = 0) -> str:
    """Return ``expl`` as an indented tree, one node a line, marked ✓ or ✗ with its words."""
    line = "  " * indent + ("✓ " if expl.matched else "✗ ") + expl.label
    if expl.words:
        line += ": " + ", ".join(repr(w) for w in expl.words)
    return "\n".join([line] + [render_explanation(c, indent + 1) for c in expl.children])
