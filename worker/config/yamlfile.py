"""Read YAML with the position of every key and value. The only module that imports ruamel.yaml.

ruamel's round-trip loader keeps positions but is pure Python: 500 watchlist
files holding 10,000 rules took 5 s to load. Here the document is composed
by ruamel's C parser (libyaml, through ``ruamel.yaml.clib``) into nodes that
carry their marks, and the nodes become plain ``dict``/``list`` subclasses
with an ``lc`` attribute shaped like ruamel's own (``lc.line``, ``lc.col``,
``lc.key(k)``, ``lc.value(k)``, ``lc.item(i)``), plus ``lc.style(k)`` for a
scalar's quoting. The same files load in about 0.4 s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.util import load_yaml_guess_indent

_TRUE = {"true", "yes", "on", "y"}
_FALSE = {"false", "no", "off", "n"}


class YamlSyntaxError(ValueError):
    """Raised when a text is not YAML; ``line`` and ``column`` are 0-based."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.line, self.column = line, column


@dataclass
class Positions:
    """Where a mapping or sequence and its parts are in the file (0-based)."""

    line: int
    col: int
    keys: dict[Any, tuple[int, int]] = field(default_factory=dict)
    values: dict[Any, tuple[int, int]] = field(default_factory=dict)
    styles: dict[Any, str | None] = field(default_factory=dict)

    def key(self, k: Any) -> tuple[int, int]:
        return self.keys[k]

    def value(self, k: Any) -> tuple[int, int]:
        return self.values[k]

    def item(self, i: int) -> tuple[int, int]:
        return self.values[i]

    def style(self, k: Any) -> str | None:
        """Return the quote character of a scalar value (``'`` or ``"``), else None."""
        return self.styles.get(k)


class Map(dict):  # type: ignore[type-arg]
    """A YAML mapping that knows where it and its keys and values are."""

    lc: Positions


class Seq(list):  # type: ignore[type-arg]
    """A YAML sequence that knows where it and its items are."""

    lc: Positions


class DuplicateKey(Exception):
    """A mapping repeats a key (YAML forbids it; libyaml does not check)."""

    def __init__(self, key: Any, line: int, column: int) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.line, self.column = line, column


def _scalar(node: ScalarNode) -> Any:
    value, tag = node.value, node.tag or ""
    if node.style in ("'", '"', "|", ">"):
        return value
    if tag.endswith(":null"):
        return None
    if tag.endswith(":bool"):
        return value.lower() in _TRUE if value.lower() in _TRUE | _FALSE else value
    if tag.endswith(":int"):
        try:
            return int(value.replace("_", ""), 0)
        except ValueError:
            return value
    if tag.endswith(":float"):
        try:
            return float(value.replace("_", ""))
        except ValueError:
            return value
    return value


def _mark(node: Node) -> tuple[int, int]:
    return node.start_mark.line, node.start_mark.column


def _build(node: Node | None) -> Any:
    if node is None:
        return None
    if isinstance(node, ScalarNode):
        return _scalar(node)
    if isinstance(node, SequenceNode):
        seq = Seq()
        seq.lc = Positions(*_mark(node))
        for i, child in enumerate(node.value):
            seq.append(_build(child))
            seq.lc.values[i] = _mark(child)
            seq.lc.styles[i] = getattr(child, "style", None)
        return seq
    if isinstance(node, MappingNode):
        mapping = Map()
        mapping.lc = Positions(*_mark(node))
        for key_node, value_node in node.value:
            key = _build(key_node)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                key = str(key)
            if key in mapping:
                raise DuplicateKey(key, *_mark(key_node))
            mapping[key] = _build(value_node)
            mapping.lc.keys[key] = _mark(key_node)
            mapping.lc.values[key] = _mark(value_node)
            mapping.lc.styles[key] = getattr(value_node, "style", None)
        return mapping
    raise YamlSyntaxError(f"unsupported YAML node {type(node).__name__}", *_mark(node))


def load(text: str) -> Any:
    """Parse one YAML document into ``Map``/``Seq``/scalars; raise ``YamlSyntaxError``."""
    try:
        return _build(YAML(typ="safe").compose(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line, mark.column) if mark else (0, 0)
        raise YamlSyntaxError(
            f"YAML syntax error: {exc.problem or exc.context}", line, col
        ) from None
    except DuplicateKey as exc:
        raise YamlSyntaxError(str(exc), exc.line, exc.column) from None


def roundtrip_load(text: str) -> tuple[Any, Callable[[Any, IO[str]], None]]:
    """Load YAML for editing; return it and a ``dump(data, stream)`` that keeps its
    comments, key order, quoting and indentation."""
    doc, indent, offset = load_yaml_guess_indent(text)
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.indent(
        mapping=2 if indent is None else max(indent - (offset or 0), 2),
        sequence=indent or 4,
        offset=offset or 2,
    )
    return doc, yaml.dump


def is_map(value: Any) -> bool:
    """Return whether a round-trip value is a mapping."""
    return isinstance(value, CommentedMap)


def is_seq(value: Any) -> bool:
    """Return whether a round-trip value is a sequence."""
    return isinstance(value, CommentedSeq)


def new_map(**items: Any) -> CommentedMap:
    """Return a mapping to insert into a round-trip document."""
    return CommentedMap(**items)


def new_seq(items: Iterable[Any] = (), *, flow: bool = False) -> CommentedSeq:
    """Return a sequence to insert into a round-trip document (``flow``: ``[a, b]``)."""
    seq = CommentedSeq(items)
    if flow:
        seq.fa.set_flow_style()
    return seq
