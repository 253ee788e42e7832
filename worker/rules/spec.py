"""A rule as configured (``RuleSpec``) and its translation into one expression tree.

``all``/``any``/``none`` are sugar: ``all`` is an AND of its terms, ``any`` an
OR that must hold when non-empty, each ``none`` term a NOT. In these lists a
term is written as in a query but unquoted words form a phrase
(``North Korean`` ≡ ``"North Korean"``). ``fields`` scopes the whole rule.

A rule must be unable to match a text that contains none of its terms
(``-football`` alone is rejected): this is what lets the engine evaluate
only the rules whose terms occur in an item.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.errors import QueryError
from worker.model import TEXT_FIELDS
from worker.rules.forms import check_languages
from worker.rules.query import (
    Aliases,
    And,
    Node,
    Not,
    Or,
    Scope,
    check_scopes,
    compile_aliases,
    empty_value,
    make_leaf,
    parse_query,
)

__all__ = ["RuleSpec", "build_tree", "validate"]


@dataclass(frozen=True)
class RuleSpec:
    """One rule of a watchlist: either a ``query`` or ``all``/``any`` (plus optional ``none``)."""

    watchlist: str
    id: str
    query: str | None = None
    all: tuple[str, ...] = ()
    any: tuple[str, ...] = ()
    none: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: Languages whose word forms the rule's unquoted terms match (``worker.rules.forms``).
    languages: tuple[str, ...] = ()


def _list_leaf(kind: str, term: str, aliases: Aliases) -> Node:
    try:
        return make_leaf(term.strip(), aliases)
    except QueryError as exc:
        raise QueryError(f"{kind} term {term!r}: {exc.message}", 1) from None


def build_tree(spec: RuleSpec, aliases: Aliases | None = None) -> Node:
    """Return the expression tree of ``spec``; raise QueryError if it is invalid."""
    if aliases is None:
        aliases = compile_aliases(spec.aliases)
    problem = check_languages(spec.languages)
    if problem:
        raise QueryError(problem, 1)
    unknown = [f for f in spec.fields if f not in TEXT_FIELDS]
    if unknown:
        raise QueryError(f"unknown field {unknown[0]!r}; use some of " + ", ".join(TEXT_FIELDS), 1)
    lists = spec.all or spec.any or spec.none
    if spec.query is not None:
        if lists:
            raise QueryError("a rule has either 'query' or all/any/none, not both", 1)
        tree = parse_query(spec.query, aliases)
    elif not (spec.all or spec.any):
        if spec.none:
            raise QueryError("'none' alone matches everything; add 'all' or 'any' terms", 1)
        raise QueryError("empty rule: give a 'query' or 'all'/'any' terms", 1)
    else:
        parts: list[Node] = [_list_leaf("all", t, aliases) for t in spec.all]
        if spec.any:
            anys = [_list_leaf("any", t, aliases) for t in spec.any]
            parts.append(anys[0] if len(anys) == 1 else Or(anys))
        parts += [Not(_list_leaf("none", t, aliases)) for t in spec.none]
        tree = parts[0] if len(parts) == 1 else And(parts)
    if spec.fields and set(spec.fields) != set(TEXT_FIELDS):
        tree = Scope(frozenset(spec.fields), tree)
    check_scopes(tree)
    if empty_value(tree):
        raise QueryError(
            "this rule would match items that contain none of its terms; add a positive term", 1
        )
    return tree


def validate(spec: RuleSpec) -> None:
    """Raise QueryError if ``spec`` is not a valid rule."""
    build_tree(spec)
