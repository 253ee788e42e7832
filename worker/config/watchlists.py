"""A ``watchlists/<id>.yaml`` file of a config: its scope, aliases, rules and examples."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from worker.config.safety import RULE_KEYS, WATCHLIST_KEYS, safety_settings
from worker.config.schema import (
    Checker,
    boolean,
)
from worker.config.settings import (
    RULE_ID,
    Destination,
    StorySettings,
    Watchlist,
)
from worker.config.stories import load_stories
from worker.config.yamlfile import Map, Seq
from worker.errors import QueryError
from worker.model import TEXT_FIELDS
from worker.rules import RuleSpec, validate
from worker.rules.forms import check_languages


def load_aliases(ld: Checker, path: Path, node: Any) -> dict[str, tuple[str, ...]]:
    if node is None:
        return {}
    if not isinstance(node, Map):
        ld.error(path, ld.pos(node), "aliases must map a term to a list of alternatives")
        return {}
    return {str(term): ld.strings(path, node, term) for term in node}


def load_languages(ld: Checker, path: Path, node: Any, default: tuple[str, ...]) -> tuple[str, ...]:
    """Return the ``languages:`` of a mapping (``default`` without one); flag unknown codes."""
    if not isinstance(node, Map) or "languages" not in node:
        return default
    codes = ld.strings(path, node, "languages")
    seq = node.get("languages")
    known = []
    for i, code in enumerate(codes):
        problem = check_languages((code,))
        if problem:
            pos = ld.value_pos(seq, i) if isinstance(seq, Seq) else ld.value_pos(node, "languages")
            ld.error(path, pos, f"languages: {problem}")
        else:
            known.append(code)
    return tuple(dict.fromkeys(known))


def _load_rule(
    ld: Checker,
    path: Path,
    wid: str,
    node: Any,
    index: int,
    aliases: tuple[tuple[str, tuple[str, ...]], ...],
    languages: tuple[str, ...] = (),
) -> RuleSpec | None:
    allowed = {"id", "all", "any", "none", "query", "in", *RULE_KEYS}
    if ld.mapping(path, node, "rule", allowed) is None:
        return None
    fields = ld.strings(path, node, "in")
    for f in fields:
        if f not in TEXT_FIELDS:
            ld.error(
                path,
                ld.value_pos(node, "in"),
                f"unknown field {f!r} in 'in' (fields: {', '.join(TEXT_FIELDS)})",
            )
    if node.get("id") is not None and not RULE_ID.fullmatch(str(node["id"])):
        ld.error(
            path,
            ld.value_pos(node, "id"),
            f"bad rule id {str(node['id'])!r}: use only letters, digits, '_', '.' and '-'",
        )
    spec = RuleSpec(
        watchlist=wid,
        id=str(node.get("id") or f"rule-{index + 1}"),
        query=str(node["query"]) if node.get("query") is not None else None,
        all=ld.strings(path, node, "all"),
        any=ld.strings(path, node, "any"),
        none=ld.strings(path, node, "none"),
        fields=fields,
        aliases=aliases,
        languages=languages,
    )
    if spec.query is not None and (spec.all or spec.any or spec.none):
        ld.error(
            path, ld.pos(node), f"rule {spec.id!r}: use either 'query' or all/any/none, not both"
        )
        return None
    if spec.query is None and not (spec.all or spec.any):
        ld.error(path, ld.pos(node), f"rule {spec.id!r}: needs 'query', 'all' or 'any'")
        return None
    try:
        validate(spec)
    except QueryError as exc:
        if spec.query is not None:
            line, col = ld.value_pos(node, "query")
            # Offsets inside a plain or quoted scalar on one line map to columns.
            quoted = 1 if node.lc.style("query") in ("'", '"') else 0
            ld.error(
                path, (line, col + quoted + exc.column - 1), f"rule {spec.id!r}: {exc.message}"
            )
        else:
            ld.error(path, ld.pos(node), f"rule {spec.id!r}: {exc.message}")
        return None
    return spec


def _rules(
    ld: Checker,
    path: Path,
    wid: str,
    doc: Map,
    aliases: tuple[tuple[str, tuple[str, ...]], ...],
    languages: tuple[str, ...],
) -> tuple[RuleSpec, ...]:
    """Return a watchlist's rules, reporting a missing list and duplicate ids."""
    rules_node = doc.get("rules")
    rules: list[RuleSpec] = []
    if not isinstance(rules_node, Seq) or not rules_node:
        ld.error(path, ld.value_pos(doc, "rules"), "'rules' must be a non-empty list")
        return ()
    for i, node in enumerate(rules_node):
        spec = _load_rule(ld, path, wid, node, i, aliases, languages)
        if spec and any(r.id == spec.id for r in rules):
            ld.error(path, ld.pos(node), f"duplicate rule id {spec.id!r}")
        elif spec:
            rules.append(spec)
    return tuple(rules)


def _examples(ld: Checker, path: Path, doc: Map, key: str) -> tuple[tuple[str, int], ...]:
    """Return the ``examples:`` texts under ``key`` with their line numbers."""
    examples = doc.get("examples") or Map()
    if key == "should_match":  # check the mapping once
        ld.mapping(path, examples, "examples", {"should_match", "should_not_match"})
    if not isinstance(examples, Map):
        return ()
    texts = ld.strings(path, examples, key)
    seq = examples.get(key)
    return tuple(
        (t, ld.value_pos(seq, i)[0] + 1 if isinstance(seq, Seq) else 0) for i, t in enumerate(texts)
    )


def load_watchlist(
    ld: Checker,
    path: Path,
    shared_aliases: dict[str, tuple[str, ...]],
    destinations: Mapping[str, Destination],
    feed_ids: set[str],
    languages: tuple[str, ...] = (),
    stories: StorySettings | None = None,
) -> Watchlist | None:
    doc = ld.load(path)
    if doc is None:
        return None
    allowed = {"name", "notify", "feeds", "aliases", "rules", "examples", "urgent", "languages"}
    allowed |= {*WATCHLIST_KEYS, "stories"}
    if ld.mapping(path, doc, "watchlist", allowed, {"notify", "rules"}) is None:
        return None
    wid = path.stem
    notify = ld.strings(path, doc, "notify")
    for dest in notify:
        if dest not in destinations:
            ld.error(
                path,
                ld.value_pos(doc, "notify"),
                f"unknown destination {dest!r} (defined: {', '.join(destinations) or 'none'})",
            )
    scope = doc.get("feeds") or Map()
    ld.mapping(path, scope, "feeds scope", {"ids", "tags"})
    ids = ld.strings(path, scope, "ids") if isinstance(scope, Map) else ()
    for fid in ids:
        if fid not in feed_ids:
            ld.error(path, ld.value_pos(scope, "ids"), f"unknown feed id {fid!r}")
    aliases = {**shared_aliases, **load_aliases(ld, path, doc.get("aliases"))}
    alias_spec = tuple(sorted(aliases.items()))
    languages = load_languages(ld, path, doc, languages)
    rules = _rules(ld, path, wid, doc, alias_spec, languages)
    return Watchlist(
        id=wid,
        name=str(doc.get("name") or wid),
        path=ld.rel(path),
        notify=notify,
        rules=rules,
        feed_ids=ids,
        feed_tags=ld.strings(path, scope, "tags") if isinstance(scope, Map) else (),
        urgent=ld.convert(path, doc, "urgent", boolean, False),
        **safety_settings(ld, path, doc),
        stories=load_stories(ld, path, doc, stories or StorySettings()),
        should_match=_examples(ld, path, doc, "should_match"),
        should_not_match=_examples(ld, path, doc, "should_not_match"),
    )
