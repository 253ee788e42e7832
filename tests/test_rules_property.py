"""Property test: the Engine agrees with a tiny, obviously correct evaluator.

Documents are random words from a small vocabulary with random separators;
queries are random trees (AND/OR/NOT/phrases/prefixes/NEAR/field scopes),
rendered fully parenthesised. The reference tokenises with one regex and
evaluates the tree directly, word by word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.errors import QueryError
from worker.rules import Engine, RuleSpec, validate

VOCAB = ["kursk", "korean", "koreans", "north", "army", "arm", "kyiv", "troops"]
FIELDS = ["title", "content"]
SEPARATORS = [" ", "  ", "-", ", ", "'", " — ", ".\n"]


@dataclass(frozen=True)
class Q:
    op: str  # word prefix phrase and or not near scope
    args: tuple = ()


def render(q: Q) -> str:
    if q.op == "word":
        return q.args[0].upper() if q.args[1] else q.args[0]
    if q.op == "prefix":
        return q.args[0] + "*"
    if q.op == "phrase":
        return '"' + " ".join(q.args) + '"'
    if q.op in ("and", "or"):
        glue = " OR " if q.op == "or" else " "
        return "(" + glue.join(render(c) for c in q.args) + ")"
    if q.op == "not":
        return "-" + render(q.args[0])
    if q.op == "near":
        return f"({render(q.args[1])} NEAR/{q.args[0]} {render(q.args[2])})"
    return f"{q.args[0]}:{render(q.args[1])}"


words = st.sampled_from(VOCAB)
leaf = st.one_of(
    st.tuples(words, st.booleans()).map(lambda a: Q("word", a)),
    st.sampled_from(["kor", "ar", "k", "troop"]).map(lambda p: Q("prefix", (p,))),
    st.lists(words, min_size=2, max_size=3).map(lambda ws: Q("phrase", tuple(ws))),
)
OPS = ["and", "or", "near", "scope", "not"]


@st.composite
def queries(draw: st.DrawFn, depth: int = 3, negations: bool = True) -> Q:
    """Draw a random query tree; NOT never appears under NEAR."""
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        return draw(leaf)
    op = draw(st.sampled_from(OPS if negations else OPS[:-1]))
    if op in ("and", "or"):
        n = draw(st.integers(2, 3))
        return Q(op, tuple(draw(queries(depth - 1, negations)) for _ in range(n)))
    if op == "near":
        sides = [draw(queries(depth - 1, negations=False)) for _ in range(2)]
        return Q(op, (draw(st.integers(0, 3)), *sides))
    if op == "scope":
        return Q(op, (draw(st.sampled_from(FIELDS)), draw(queries(depth - 1, negations))))
    return Q(op, (draw(queries(depth - 1, negations)),))


def _no_not_in_near(q: Q, inside: bool = False) -> bool:
    if q.op == "not" and inside:
        return False
    kids = [a for a in q.args if isinstance(a, Q)]
    return all(_no_not_in_near(k, inside or q.op == "near") for k in kids)


class Reference:
    """Evaluate a Q tree by brute force; occurrences are (field, first token, end token)."""

    def __init__(self, texts: dict[str, str]) -> None:
        self.texts = texts
        self.tokens = {
            f: [m.group().lower() for m in re.finditer("[A-Za-z]+", t)] for f, t in texts.items()
        }
        self.spans = {f: [m.span() for m in re.finditer("[A-Za-z]+", t)] for f, t in texts.items()}

    def ev(self, q: Q, fields: frozenset[str]) -> list | None:
        if q.op in ("word", "prefix", "phrase"):
            want = [q.args[0]] if q.op != "phrase" else list(q.args)
            occs = []
            for f in sorted(fields):
                toks = self.tokens[f]
                for i in range(len(toks) - len(want) + 1):
                    got = toks[i : i + len(want)]
                    ok = got[0].startswith(want[0]) if q.op == "prefix" else got == want
                    if ok:
                        occs.append((f, i, i + len(want), ((f, i, i + len(want)),)))
            return occs or None
        if q.op == "and":
            results = [self.ev(c, fields) for c in q.args]
            return None if any(r is None for r in results) else [o for r in results for o in r]
        if q.op == "or":
            results = [r for r in (self.ev(c, fields) for c in q.args) if r is not None]
            return [o for r in results for o in r] if results else None
        if q.op == "not":
            return [] if self.ev(q.args[0], fields) is None else None
        if q.op == "scope":
            return self.ev(q.args[1], fields & {q.args[0]})
        n, left, right = q.args[0], self.ev(q.args[1], fields), self.ev(q.args[2], fields)
        if left is None or right is None:
            return None
        occs = [
            (a[0], min(a[1], b[1]), max(a[2], b[2]), a[3] + b[3])
            for a in left
            for b in right
            if a[0] == b[0] and max(b[1] - a[2], a[1] - b[2]) <= n
        ]
        return occs or None

    def highlight_spans(self, occs: list) -> set[tuple[str, int, int]]:
        out = set()
        for occ in occs:
            for f, i, j in occ[3]:
                out.add((f, self.spans[f][i][0], self.spans[f][j - 1][1]))
        return out


doc = st.lists(st.tuples(words, st.sampled_from(SEPARATORS), st.booleans()), max_size=12).map(
    lambda ws: "".join((w.title() if cap else w) + sep for w, sep, cap in ws)
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(q=queries(), title=doc, content=doc)
def test_engine_agrees_with_reference(q: Q, title: str, content: str) -> None:
    assert _no_not_in_near(q)
    spec = RuleSpec("w", "r", query=render(q))
    try:
        validate(spec)
    except QueryError as exc:
        # The only rejections the generator allows: a rule true without its terms,
        # and nested scopes that exclude each other.
        assert "none of its terms" in exc.message or "scope" in exc.message
        return
    texts = {"title": title, "content": content}
    ref = Reference(texts)
    expected = ref.ev(q, frozenset(FIELDS))
    matches = Engine([spec]).match(texts)
    assert bool(matches) is (expected is not None), render(q)
    if matches:
        got = {(h.field, h.start, h.end) for h in matches[0].highlights}
        assert got == ref.highlight_spans(expected), render(q)
        for h in matches[0].highlights:
            assert texts[h.field][h.start : h.end] == h.text


@settings(max_examples=200, deadline=None)
@given(q=queries(negations=False), title=doc, content=doc)
def test_engine_with_many_rules_agrees(q: Q, title: str, content: str) -> None:
    """The same rule among unrelated ones fires exactly as it does alone."""
    texts = {"title": title, "content": content}
    others = [RuleSpec("x", f"o{i}", query=w) for i, w in enumerate(VOCAB)]
    spec = RuleSpec("w", "r", query=render(q))
    try:
        validate(spec)
    except QueryError as exc:
        assert "scope" in exc.message
        return
    alone = Engine([spec]).match(texts)
    together = [m for m in Engine([*others, spec]).match(texts) if m.watchlist == "w"]
    assert alone == together
    assert bool(alone) is (Reference(texts).ev(q, frozenset(FIELDS)) is not None)
