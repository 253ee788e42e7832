"""Parse rule queries and all/any/none lists into one expression tree.

Grammar, loosest first (so NOT binds tighter than NEAR, NEAR than AND, AND than OR)::

    or    := and ("OR" and)*
    and   := near (["AND"] near)*          adjacent terms are ANDed
    near  := unary ("NEAR/" n unary)*      at most n other words between them
    unary := ("NOT" | "-") unary | primary
    primary := "(" or ")" | field ":" primary | '"phrase"' | /regex/ | word

Decisions:

- Operators are upper case only; ``and``/``or``/``near`` in lower case are words.
- A word that the tokeniser splits (``North-Korean``, ``Kursk's``) is a phrase of
  its parts. ``*`` is allowed only at the end of a word or phrase (prefix of the
  last word).
- ``/regex/`` is RE2 syntax, case-insensitive, and runs over the *original*
  field text (not the normalised one), so highlights are exact and users match
  what they see; diacritics are therefore not folded for regexes.
- Aliases replace nothing: they add alternatives to the term they name, which
  keeps the user's term as the label of every highlight.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import re2

from worker.errors import QueryError
from worker.model import TEXT_FIELDS
from worker.rules.text import words

__all__ = ["And", "Leaf", "Near", "Node", "Not", "Or", "Regex", "Scope", "Words", "parse_query"]


@dataclass(frozen=True)
class Words:
    """Consecutive normalised tokens; with ``prefix`` the last one is a prefix.

    ``surface`` is the text as written (word forms are found from it); ``exact``
    marks a quoted term, which never matches other forms of its words. Neither
    changes which term this is, so aliases of ``Kursk`` apply to ``"Kursk"``.
    """

    tokens: tuple[str, ...]
    prefix: bool = False
    surface: str = field(default="", compare=False)
    exact: bool = field(default=False, compare=False)

    def key(self) -> str:
        """Return the substring that marks a match in a canonical field text."""
        return " " + " ".join(self.tokens) + ("" if self.prefix else " ")


@dataclass(frozen=True)
class Regex:
    """An RE2 pattern run over the original text."""

    source: str
    compiled: object = field(compare=False, hash=False, repr=False)


Pattern = Words | Regex


@dataclass(eq=False)
class Leaf:
    """A term as the user wrote it, with the patterns (itself plus aliases) that match it."""

    term: str
    label: str
    patterns: tuple[Pattern, ...]
    # Filled by the Engine: ids of the indexed word patterns and of the regexes.
    pids: tuple[int, ...] = ()
    rids: tuple[int, ...] = ()


@dataclass(eq=False)
class And:
    children: list[Node]
    label: str = "AND"


@dataclass(eq=False)
class Or:
    children: list[Node]
    label: str = "OR"


@dataclass(eq=False)
class Not:
    child: Node
    label: str = "NOT"


@dataclass(eq=False)
class Near:
    distance: int
    left: Node
    right: Node

    @property
    def label(self) -> str:
        return f"NEAR/{self.distance}"


@dataclass(eq=False)
class Scope:
    fields: frozenset[str]
    child: Node
    column: int = 1

    @property
    def label(self) -> str:
        return ",".join(f for f in TEXT_FIELDS if f in self.fields) + ":"


Node = Leaf | And | Or | Not | Near | Scope
Aliases = Mapping[object, tuple[Pattern, ...]]

_OPTIONS = re2.Options()
_OPTIONS.case_sensitive = False
_OPTIONS.log_errors = False


def compile_regex(source: str, column: int = 1) -> Regex:
    """Return a case-insensitive RE2 pattern; raise QueryError if RE2 rejects it."""
    if not source:
        raise QueryError("empty regex //", column)
    try:
        return Regex(source, re2.compile(source, _OPTIONS))
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise QueryError(f"invalid regex /{source}/: {detail}", column) from None


def parse_pattern(text: str, column: int = 1) -> Pattern:
    """Return the pattern of one term: ``word``, ``prefix*``, ``"a phrase"``, ``/regex/``."""
    if len(text) >= 2 and text[0] == "/" and text[-1] == "/":
        return compile_regex(text[1:-1], column)
    exact = len(text) >= 2 and text[0] == '"' and text[-1] == '"'
    if exact:
        text = text[1:-1]
    body = text.rstrip()
    prefix = body.endswith("*")
    if prefix:
        body = body[:-1]
    if "*" in body:
        raise QueryError(f"{text!r}: '*' is only allowed at the end of a word", column)
    tokens = tuple(words(body))
    if not tokens:
        raise QueryError(f"{text!r} has no letters or digits to match", column)
    if prefix and body and not body[-1].isalnum():
        raise QueryError(f"{text!r}: '*' must follow a letter or digit", column)
    return Words(tokens, prefix, body, exact)


def pattern_key(pattern: Pattern) -> object:
    """Return what identifies a term for alias lookup (its normalised form)."""
    return pattern.source if isinstance(pattern, Regex) else pattern


def compile_aliases(
    aliases: Iterable[tuple[str, Iterable[str]]],
) -> dict[object, tuple[Pattern, ...]]:
    """Return the parsed alternatives of each aliased term, keyed by the term's normalised form."""
    table: dict[object, tuple[Pattern, ...]] = {}
    for term, alternatives in aliases:
        try:
            key = pattern_key(parse_pattern(term))
            alts = tuple(parse_pattern(alt) for alt in alternatives)
        except QueryError as exc:
            raise QueryError(f"alias {term!r}: {exc.message}", 1) from None
        table[key] = table.get(key, ()) + alts
    return table


def make_leaf(text: str, aliases: Aliases, column: int = 1) -> Leaf:
    """Return the leaf for a term written as ``text``, expanded by its aliases."""
    pattern = parse_pattern(text, column)
    term = text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text
    extra = tuple(p for p in aliases.get(pattern_key(pattern), ()) if p != pattern)
    return Leaf(term=term, label=text, patterns=(pattern, *extra))


# -- lexer -----------------------------------------------------------------

_FIELD_RE = re.compile(r"([A-Za-z]+):")
_NEAR_RE = re.compile(r"NEAR/(\d+)")
_WORD_END = re.compile(r'[\s()"]')


@dataclass
class _Tok:
    kind: str  # ( ) AND OR NOT NEAR FIELD TERM EOF
    value: str
    col: int
    number: int = 0


def _lex(query: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(query)
    while i < n:
        c, col = query[i], i + 1
        if c.isspace():
            i += 1
        elif c in "()":
            toks.append(_Tok(c, c, col))
            i += 1
        elif c == '"':
            end = query.find('"', i + 1)
            if end < 0:
                raise QueryError("unterminated phrase: '\"' is never closed", col)
            stop = end + 1
            if stop < n and query[stop] == "*":
                stop += 1
            toks.append(_Tok("TERM", query[i:stop], col))
            i = stop
        elif c == "/":
            j = i + 1
            while j < n and query[j] != "/":
                j += 2 if query[j] == "\\" else 1
            if j >= n:
                raise QueryError("unterminated regex: '/' is never closed", col)
            toks.append(_Tok("TERM", query[i : j + 1], col))
            i = j + 1
        elif c == "-" and i + 1 < n and not query[i + 1].isspace():
            toks.append(_Tok("NOT", "-", col))
            i += 1
        elif m := _FIELD_RE.match(query, i):
            name = m.group(1)
            if name not in TEXT_FIELDS:
                raise QueryError(
                    f"unknown field {name + ':'!r}; use one of "
                    + ", ".join(f + ":" for f in TEXT_FIELDS),
                    col,
                )
            toks.append(_Tok("FIELD", name, col))
            i = m.end()
        else:
            m2 = _WORD_END.search(query, i)
            j = m2.start() if m2 else n
            toks.append(_word(query[i:j], col))
            i = j
    toks.append(_Tok("EOF", "", n + 1))
    return toks


def _word(word: str, col: int) -> _Tok:
    """Return the token of a bare word: an operator, ``NEAR/n`` or a term."""
    if word in ("AND", "OR", "NOT"):
        return _Tok(word, word, col)
    if word == "NEAR" or word.startswith("NEAR/"):
        near = _NEAR_RE.fullmatch(word)
        if not near:
            raise QueryError("NEAR needs a number, as in NEAR/5", col)
        return _Tok("NEAR", word, col, int(near.group(1)))
    return _Tok("TERM", word, col)


# -- parser ----------------------------------------------------------------

_STARTS = frozenset({"TERM", "(", "FIELD", "NOT"})


class _Parser:
    def __init__(self, query: str, aliases: Aliases) -> None:
        self.toks = _lex(query)
        self.pos = 0
        self.aliases = aliases

    def peek(self) -> _Tok:
        return self.toks[self.pos]

    def take(self) -> _Tok:
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def parse(self) -> Node:
        if self.peek().kind == "EOF":
            raise QueryError("empty query", 1)
        node = self.or_expr()
        tok = self.peek()
        if tok.kind == ")":
            raise QueryError("unbalanced parenthesis: ')' has no matching '('", tok.col)
        if tok.kind != "EOF":
            raise QueryError(f"unexpected {tok.value!r}", tok.col)
        return node

    def or_expr(self) -> Node:
        children = [self.and_expr()]
        while self.peek().kind == "OR":
            self.take()
            children.append(self.and_expr())
        return children[0] if len(children) == 1 else Or(children)

    def and_expr(self) -> Node:
        children = [self.near_expr()]
        while True:
            kind = self.peek().kind
            if kind == "AND":
                self.take()
            elif kind not in _STARTS:
                break
            children.append(self.near_expr())
        return children[0] if len(children) == 1 else And(children)

    def near_expr(self) -> Node:
        node = self.unary()
        while self.peek().kind == "NEAR":
            op = self.take()
            right = self.unary()
            for side in (node, right):
                if _has_not(side):
                    raise QueryError("NEAR cannot take a NOT or '-' operand", op.col)
            node = Near(op.number, node, right)
        return node

    def unary(self) -> Node:
        if self.peek().kind == "NOT":
            self.take()
            return Not(self.unary())
        return self.primary()

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind == "TERM":
            return make_leaf(tok.value, self.aliases, tok.col)
        if tok.kind == "(":
            if self.peek().kind == ")":
                raise QueryError("empty parentheses", tok.col)
            node = self.or_expr()
            if self.peek().kind != ")":
                raise QueryError("unbalanced parenthesis: '(' is never closed", tok.col)
            self.take()
            return node
        if tok.kind == "FIELD":
            if self.peek().kind not in _STARTS:
                raise QueryError(f"{tok.value}: needs a term or a group after it", tok.col)
            return Scope(frozenset({tok.value}), self.unary(), tok.col)
        if tok.kind == ")":
            raise QueryError("unbalanced parenthesis: ')' has no matching '('", tok.col)
        if tok.kind == "EOF":
            prev = self.toks[self.pos - 2] if self.pos >= 2 else tok
            raise QueryError(f"{prev.value} needs a term after it", prev.col)
        raise QueryError(f"{tok.value} needs a term before it", tok.col)


def _has_not(node: Node) -> bool:
    if isinstance(node, Not):
        return True
    if isinstance(node, (And, Or)):
        return any(_has_not(c) for c in node.children)
    if isinstance(node, Scope):
        return _has_not(node.child)
    if isinstance(node, Near):
        return _has_not(node.left) or _has_not(node.right)
    return False


def parse_query(query: str, aliases: Aliases | None = None) -> Node:
    """Return the tree of ``query``; raise QueryError with the 1-based column of the fault."""
    return _Parser(query, aliases or {}).parse()


def empty_value(node: Node) -> bool:
    """Return the value of ``node`` on a text in which none of its terms occur."""
    if isinstance(node, Leaf | Near):
        return False
    if isinstance(node, Not):
        return not empty_value(node.child)
    if isinstance(node, And):
        return all(empty_value(c) for c in node.children)
    if isinstance(node, Or):
        return any(empty_value(c) for c in node.children)
    return empty_value(node.child)


def check_scopes(node: Node, allowed: frozenset[str] = frozenset(TEXT_FIELDS)) -> None:
    """Raise QueryError when nested field scopes leave no field to search."""
    if isinstance(node, Scope):
        inner = allowed & node.fields
        if not inner:
            raise QueryError(
                f"field scope {node.label} is inside a scope that excludes it", node.column
            )
        check_scopes(node.child, inner)
    elif isinstance(node, (And, Or)):
        for child in node.children:
            check_scopes(child, allowed)
    elif isinstance(node, Not):
        check_scopes(node.child, allowed)
    elif isinstance(node, Near):
        check_scopes(node.left, allowed)
        check_scopes(node.right, allowed)
