"""Match many rules against an item at a cost that does not grow with the rule count.

How: every word, phrase and prefix pattern of every rule goes into one
Aho–Corasick automaton over canonical field text (normalised tokens joined by
single spaces, see ``text``). ``" kursk "`` finds the whole word, ``" soldier"``
the prefix, ``" north korean "`` the phrase. Each field is scanned once; each
hit names a pattern, each pattern the rules that use it, and only those rules
are evaluated (validation guarantees a rule with no term present is false).

Regexes cannot be indexed: a rule with a regex term is evaluated for every
item, and each distinct regex runs at most once per field per item, only when
the evaluation reaches it.

NEAR/n holds when an occurrence of each side lies in the same field with at
most n other words between them (or overlapping). A group used as a NEAR
operand occurs wherever any of its matched terms occurs.

Word forms (``languages:``): each unquoted, non-prefix word pattern of a rule
with languages is also indexed by its dictionary form in each language, in one
automaton per language. An item's fields are laid out as dictionary forms, token
for token, only in the languages some rule asks for, and scanned once each; a
hit there lands on the same tokens as an exact hit would. An engine whose rules
ask for no language computes no forms.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

import ahocorasick

from worker.model import TEXT_FIELDS, Highlight, Match
from worker.rules.forms import forms_canonical
from worker.rules.query import (
    Aliases,
    And,
    Leaf,
    Near,
    Node,
    Not,
    Or,
    Regex,
    Scope,
    compile_aliases,
)
from worker.rules.spec import RuleSpec, build_tree
from worker.rules.text import Field

__all__ = ["ALL_FIELDS", "Document", "Engine", "Rule", "scope_fields"]

ALL_FIELDS = frozenset(range(len(TEXT_FIELDS)))
_SCOPE_CACHE: dict[frozenset[str], frozenset[int]] = {}

# A highlight before offsets are resolved: (kind "t" tokens | "c" chars, field, start, end,
# term, the dictionary form it was found by or "" for the term itself).
Mark = tuple[str, int, int, int, str, str]
# An occurrence: field, first token, token after the last, the marks that make it.
Occ = tuple[int, int, int, tuple[Mark, ...]]


@dataclass(eq=False)
class Rule:
    """A compiled rule: its place, its tree and its leaves."""

    index: int
    watchlist: str
    id: str
    tree: Node
    languages: tuple[str, ...] = ()
    # Sets of pattern ids: the rule can be true only if each set has a hit.
    groups: list[frozenset[int]] = field(default_factory=list)


def leaves(node: Node) -> Iterable[Leaf]:
    """Yield every leaf of ``node``."""
    if isinstance(node, Leaf):
        yield node
    elif isinstance(node, (And, Or)):
        for child in node.children:
            yield from leaves(child)
    elif isinstance(node, (Not, Scope)):
        yield from leaves(node.child)
    elif isinstance(node, Near):
        yield from leaves(node.left)
        yield from leaves(node.right)


def triggers(node: Node) -> frozenset[int] | None:
    """Return pattern ids of which one must occur for ``node`` to hold (None: no such set)."""
    if isinstance(node, Leaf):
        return None if node.rids else frozenset(node.pids)
    if isinstance(node, Or):
        sets = [triggers(c) for c in node.children]
        return None if any(t is None for t in sets) else frozenset().union(*sets)  # type: ignore[arg-type]
    if isinstance(node, And):
        found: list[frozenset[int]] = [t for t in map(triggers, node.children) if t is not None]
        return min(found, key=len) if found else None
    if isinstance(node, Near):
        sides: list[frozenset[int]] = [
            t for t in (triggers(node.left), triggers(node.right)) if t is not None
        ]
        return min(sides, key=len) if sides else None
    if isinstance(node, Scope):
        return triggers(node.child)
    return None


def required_groups(node: Node) -> list[frozenset[int]]:
    """Return the trigger sets that must all have a hit for ``node`` to hold."""
    if isinstance(node, Scope):
        return required_groups(node.child)
    if isinstance(node, And):
        return [g for c in node.children for g in required_groups(c)]
    if isinstance(node, Near):
        return required_groups(node.left) + required_groups(node.right)
    group = triggers(node)
    return [group] if group is not None else []


def scope_fields(names: frozenset[str]) -> frozenset[int]:
    """Return the indexes (in TEXT_FIELDS) of the fields named in ``names``."""
    if names not in _SCOPE_CACHE:
        _SCOPE_CACHE[names] = frozenset(i for i, f in enumerate(TEXT_FIELDS) if f in names)
    return _SCOPE_CACHE[names]


def _automaton(keys: Mapping[str, int]) -> ahocorasick.Automaton:
    automaton = ahocorasick.Automaton()
    for key, pid in keys.items():
        automaton.add_word(key, pid)
    if keys:
        automaton.make_automaton()
    return automaton


class Document:
    """One item scanned against an engine's index: pattern hits, lazily run regexes."""

    def __init__(self, engine: Engine, texts: Mapping[str, str]) -> None:
        self.engine = engine
        self.fields = [Field(texts.get(name) or "") for name in TEXT_FIELDS]
        self.hits: dict[int, list[tuple[int, int, int]]] = {}
        self._regex: dict[tuple[int, int], list[Occ]] = {}
        if not engine._keylen:
            return
        for fi, text_field in enumerate(self.fields):
            if len(text_field.canonical) <= 2:
                continue
            self._scan(engine._automaton, text_field.canonical, fi)
            for lang, automaton in engine._form_automata.items():
                self._scan(automaton, forms_canonical(text_field.text, lang), fi)

    def _scan(self, automaton: ahocorasick.Automaton, canon: str, fi: int) -> None:
        keylen, ntokens = self.engine._keylen, self.engine._ntokens
        # Hits arrive by end position; count spaces incrementally when starts ascend.
        last_pos = last_count = 0
        for end, pid in automaton.iter(canon):
            start = end - keylen[pid] + 1
            if start >= last_pos:
                last_count += canon.count(" ", last_pos, start)
            else:
                last_count = canon.count(" ", 0, start)
            last_pos = start
            self.hits.setdefault(pid, []).append((fi, last_count, last_count + ntokens[pid]))

    def regex_occs(self, rid: int, fi: int, term: str) -> list[Occ]:
        """Return the occurrences of regex ``rid`` in field ``fi`` (run once, then cached)."""
        key = (rid, fi)
        if key not in self._regex:
            text_field = self.fields[fi]
            occs: list[Occ] = []
            if text_field.text:
                pattern = self.engine._regexes[rid]
                starts: list[int] = []
                ends: list[int] = []
                for m in pattern.finditer(text_field.text):  # type: ignore[attr-defined]
                    cs, ce = m.span()
                    if cs == ce:
                        continue
                    if not ends:
                        starts = [s for s, _ in text_field.spans]
                        ends = [e for _, e in text_field.spans] or [0]
                    # The tokens the match overlaps, for NEAR distances.
                    ts = bisect_right(ends, cs)
                    te = bisect_left(starts, ce)
                    occs.append((fi, ts, max(ts, te), (("c", fi, cs, ce, term, ""),)))
            self._regex[key] = occs
        # The term label differs per leaf sharing a regex: relabel cached marks.
        return [(f, a, b, (("c", f, m[2], m[3], term, ""),)) for f, a, b, (m,) in self._regex[key]]

    def evaluate(self, node: Node, allowed: frozenset[int] = ALL_FIELDS) -> list[Occ] | None:
        """Return the occurrences that make ``node`` true ([] for a true NOT), or None if false."""
        if isinstance(node, Leaf):
            return self._leaf(node, allowed)
        occs: list[Occ]
        if isinstance(node, And):
            occs = []
            for child in node.children:
                got = self.evaluate(child, allowed)
                if got is None:
                    return None
                occs += got
            return occs
        if isinstance(node, Or):
            found = False
            occs = []
            for child in node.children:
                got = self.evaluate(child, allowed)
                if got is not None:
                    found = True
                    occs += got
            return occs if found else None
        if isinstance(node, Not):
            return [] if self.evaluate(node.child, allowed) is None else None
        if isinstance(node, Scope):
            return self.evaluate(node.child, allowed & scope_fields(node.fields))
        return self._near(node, allowed)

    def _leaf(self, node: Leaf, allowed: frozenset[int]) -> list[Occ] | None:
        """Return a term's occurrences in the allowed fields, or None if it has none."""
        occs: list[Occ] = []
        for pid in node.pids:
            form = self.engine._forms[pid]
            for fi, ts, te in self.hits.get(pid, ()):
                if fi in allowed:
                    occs.append((fi, ts, te, (("t", fi, ts, te, node.term, form),)))
        for rid in node.rids:
            for fi in sorted(allowed):
                occs += self.regex_occs(rid, fi, node.term)
        return occs or None

    def _near(self, node: Near, allowed: frozenset[int]) -> list[Occ] | None:
        """Return the pairs of occurrences within ``node.distance`` tokens, or None if none."""
        left = self.evaluate(node.left, allowed)
        if left is None:
            return None
        right = self.evaluate(node.right, allowed)
        if right is None:
            return None
        occs = []
        n = node.distance
        for lf, ls, le, lm in left:
            for rf, rs, re_, rm in right:
                if lf == rf and max(rs - le, ls - re_) <= n:
                    occs.append((lf, min(ls, rs), max(le, re_), lm + rm))
        return occs or None

    def found(self, occs: Iterable[Occ]) -> list[tuple[int, int, int, str, frozenset[str]]]:
        """Return each span of ``occs`` once, in field order: (field, start, end, term, forms).

        Offsets index the field's original text; ``forms`` holds the dictionary forms
        the span was found by, with "" when the term itself was found there.
        """
        seen: dict[tuple[int, int, int], tuple[str, set[str]]] = {}
        for occ in occs:
            for kind, fi, a, b, term, form in occ[3]:
                if kind == "t":
                    a, b = self.fields[fi].char_span(a, b)
                seen.setdefault((fi, a, b), (term, set()))[1].add(form)
        return [
            (fi, a, b, term, frozenset(forms)) for (fi, a, b), (term, forms) in sorted(seen.items())
        ]

    def highlights(self, occs: Iterable[Occ]) -> tuple[Highlight, ...]:
        """Return the highlights of ``occs``: exact offsets, one per span, in field order."""
        return tuple(
            Highlight(TEXT_FIELDS[fi], term, self.fields[fi].text[a:b], a, b)
            for fi, a, b, term, _ in self.found(occs)
        )


class Engine:
    """All rules of all watchlists, compiled once into one index."""

    def __init__(self, specs: Iterable[RuleSpec]) -> None:
        specs = list(specs)
        order: dict[str, int] = {}
        for spec in specs:
            order.setdefault(spec.watchlist, len(order))
        specs.sort(key=lambda s: order[s.watchlist])  # stable: rule order kept
        self._watchlists = list(order)
        alias_cache: dict[object, Aliases] = {}
        # Pattern ids by key: "" for exact keys, else the language of dictionary-form keys.
        self._pids: dict[str, dict[str, int]] = {}
        self._rids: dict[str, int] = {}
        self._keylen: list[int] = []
        self._ntokens: list[int] = []
        self._forms: list[str] = []  # per pattern id: its dictionary form, "" if exact
        self._regexes: list[object] = []
        self._rules: list[Rule] = []
        users: list[int] = []  # how many rules use each pattern: a proxy for how common it is
        for index, spec in enumerate(specs):
            if spec.aliases not in alias_cache:
                alias_cache[spec.aliases] = compile_aliases(spec.aliases)
            tree = build_tree(spec, alias_cache[spec.aliases])
            rule = Rule(index, spec.watchlist, spec.id, tree, spec.languages)
            self._rules.append(rule)
            for leaf in leaves(rule.tree):
                self._index_leaf(leaf, spec.languages)
                for pid in set(leaf.pids):
                    users += [0] * (pid + 1 - len(users))
                    users[pid] += 1
        # Each rule is triggered by its least used required group, then checked against
        # all its groups, and only then evaluated.
        self._triggered: list[list[int]] = [[] for _ in self._keylen]
        self._always: list[int] = []
        for rule in self._rules:
            rule.groups = required_groups(rule.tree)
            if not rule.groups:
                self._always.append(rule.index)
                continue
            trigger = min(rule.groups, key=lambda g: sum(users[p] for p in g))
            for pid in trigger:
                self._triggered[pid].append(rule.index)
        automata = {lang: _automaton(keys) for lang, keys in self._pids.items()}
        self._automaton = automata.pop("") if "" in automata else _automaton({})
        self._form_automata: dict[str, ahocorasick.Automaton] = automata

    def _pattern_id(self, lang: str, key: str, ntokens: int, form: str = "") -> int:
        keys = self._pids.setdefault(lang, {})
        pid = keys.get(key)
        if pid is None:
            pid = keys[key] = len(self._keylen)
            self._keylen.append(len(key))
            self._ntokens.append(ntokens)
            self._forms.append(form)
        return pid

    def _index_leaf(self, leaf: Leaf, languages: tuple[str, ...]) -> None:
        pids: list[int] = []
        rids: list[int] = []
        for pattern in leaf.patterns:
            if isinstance(pattern, Regex):
                if pattern.source not in self._rids:
                    self._rids[pattern.source] = len(self._regexes)
                    self._regexes.append(pattern.compiled)
                rids.append(self._rids[pattern.source])
                continue
            ntokens = len(pattern.tokens)
            pids.append(self._pattern_id("", pattern.key(), ntokens))
            if pattern.exact or pattern.prefix:
                continue
            for lang in languages:
                form = forms_canonical(pattern.surface, lang)
                pids.append(self._pattern_id(lang, form, ntokens, form.strip()))
        leaf.pids, leaf.rids = tuple(dict.fromkeys(pids)), tuple(dict.fromkeys(rids))

    @property
    def watchlists(self) -> list[str]:
        """Return the watchlist ids, in order."""
        return list(self._watchlists)

    @property
    def languages(self) -> frozenset[str]:
        """Return the languages whose word forms an item's text is laid out in (none: no cost)."""
        return frozenset(self._form_automata)

    def __len__(self) -> int:
        return len(self._rules)

    def rules(self, watchlist: str, rule: str | None = None) -> list[Rule]:
        """Return the compiled rules of ``watchlist`` (or its one rule ``rule``)."""
        return [
            r for r in self._rules if r.watchlist == watchlist and (rule is None or r.id == rule)
        ]

    def scan(self, texts: Mapping[str, str]) -> Document:
        """Return ``texts`` normalised and looked up in the index."""
        return Document(self, texts)

    def match(
        self,
        texts: Mapping[str, str],
        watchlists: Collection[str] | None = None,
        highlights: bool = True,
    ) -> list[Match]:
        """Return one Match per rule that fires on ``texts``, by watchlist then rule order.

        ``highlights=False`` leaves each Match's highlights empty, for callers that
        only count (``backtest`` over a whole archive).
        """
        doc = Document(self, texts)
        hit = set(doc.hits)
        candidates = set(self._always)
        for pid in hit:
            candidates.update(self._triggered[pid])
        matches = []
        for index in sorted(candidates):
            rule = self._rules[index]
            if watchlists is not None and rule.watchlist not in watchlists:
                continue
            if not all(hit.intersection(group) for group in rule.groups):
                continue
            occs = doc.evaluate(rule.tree)
            if occs is not None:
                marks = doc.highlights(occs) if highlights else ()
                matches.append(Match(rule.watchlist, rule.id, marks))
        return matches
