"""Check YAML documents against a schema and collect every problem with its position.

``Checker`` walks the ``Map``/``Seq`` values of ``worker.config.yamlfile`` (which
know their line and column) and records ``path:line:col: message`` problems
instead of stopping at the first; the converters turn config strings such as
``5m``, ``1/s`` and ``10MB`` into numbers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from worker.config.settings import SendRate
from worker.config.yamlfile import Map, Seq, YamlSyntaxError, load

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(s|m|h)\s*$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|kB|KB|KiB|MB|MiB|GB|GiB)?\s*$")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "kB": 1000,
    "KB": 1000,
    "KiB": 1024,
    "MB": 1000**2,
    "MiB": 1024**2,
    "GB": 1000**3,
    "GiB": 1024**3,
}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Problem = tuple[str, int, int, str]


def parse_duration(text: Any) -> float:
    """Return seconds for ``30s``, ``5m``, ``1h``, ``2d`` or a bare number of seconds."""
    m = _DURATION.match(str(text))
    if not m:
        raise ValueError(f"bad duration {text!r}: use e.g. 30s, 5m, 1h")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


def parse_rate(text: Any) -> SendRate:
    """Return (count, seconds) for ``1/s``, ``20/m``, ``100/h`` or ``5/10s``."""
    m = _RATE.match(str(text))
    per = int(m.group(2) or 1) * {"s": 1, "m": 60, "h": 3600}[m.group(3)] if m else 0
    if not m or int(m.group(1)) < 1 or per < 1:  # a zero period would divide by zero
        raise ValueError(f"bad rate {text!r}: use e.g. 1/s, 20/m, 100/h")
    return SendRate(int(m.group(1)), float(per))


def parse_size(text: Any) -> int:
    """Return bytes for ``10MB``, ``512KiB`` or a bare number of bytes."""
    m = _SIZE.match(str(text))
    if not m:
        raise ValueError(f"bad size {text!r}: use e.g. 10MB, 512KiB")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])


class Checker:
    """Collects problems while walking YAML nodes that remember their lines."""

    def __init__(self, root: Path, env: Mapping[str, str]) -> None:
        self.root = root
        self.env = env
        self.problems: list[Problem] = []

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)

    def error(self, path: Path, pos: tuple[int, int], message: str) -> None:
        self.problems.append((self.rel(path), pos[0] + 1, pos[1] + 1, message))

    def load(self, path: Path, *, required: bool = True) -> Any:
        if not path.is_file():
            if required:
                self.error(path, (0, 0), "file not found")
            return None
        try:
            return load(path.read_text(encoding="utf-8"))
        except YamlSyntaxError as exc:
            self.error(path, (exc.line, exc.column), str(exc))
        except (UnicodeDecodeError, OSError) as exc:
            self.error(path, (0, 0), f"cannot read: {exc}")
        return None

    @staticmethod
    def key_pos(node: Any, key: Any) -> tuple[int, int]:
        try:
            line, col = node.lc.key(key)
            return int(line), int(col)
        except (AttributeError, KeyError, TypeError):
            return Checker.pos(node)

    @staticmethod
    def value_pos(node: Any, key: Any) -> tuple[int, int]:
        try:
            if isinstance(node, Seq):
                line, col = node.lc.item(key)
            else:
                line, col = node.lc.value(key)
            return int(line), int(col)
        except (AttributeError, KeyError, TypeError, IndexError):
            return Checker.pos(node)

    @staticmethod
    def pos(node: Any) -> tuple[int, int]:
        lc = getattr(node, "lc", None)
        return (int(lc.line), int(lc.col)) if lc is not None and lc.line is not None else (0, 0)

    def mapping(
        self,
        path: Path,
        node: Any,
        what: str,
        allowed: set[str],
        required: frozenset[str] | set[str] = frozenset(),
    ) -> Map | None:
        """Check that ``node`` is a mapping with only ``allowed`` and all ``required`` keys."""
        if not isinstance(node, Map):
            self.error(path, self.pos(node), f"{what} must be a mapping")
            return None
        for key in node:
            if str(key) not in allowed:
                hint = ", ".join(sorted(allowed))
                self.error(
                    path,
                    self.key_pos(node, key),
                    f"unknown key {key!r} in {what} (allowed: {hint})",
                )
        for key in sorted(required - {str(k) for k in node}):
            self.error(path, self.pos(node), f"{what}: missing required key {key!r}")
        return node

    def strings(self, path: Path, node: Map, key: str) -> tuple[str, ...]:
        """Return a list-of-strings value (a lone string counts as a list of one)."""
        value = node.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        if isinstance(value, Seq) and all(isinstance(v, (str, int, float)) for v in value):
            return tuple(str(v) for v in value)
        self.error(path, self.value_pos(node, key), f"{key!r} must be a list of strings")
        return ()

    def convert(self, path: Path, node: Map, key: str, fn: Any, default: Any) -> Any:
        if key not in node or node[key] is None:
            return default
        try:
            return fn(node[key])
        except (ValueError, TypeError) as exc:
            self.error(path, self.value_pos(node, key), f"{key}: {exc}")
            return default

    def interpolate(self, path: Path, node: Any, key: Any, text: str) -> tuple[str, list[str]]:
        """Replace ``${VAR}`` / ``${VAR:-default}``; report missing variables by name."""
        secrets: list[str] = []

        def sub(m: re.Match[str]) -> str:
            value = self.env.get(m.group(1))
            if value is None:
                if m.group(2) is not None:
                    return m.group(2)
                self.error(
                    path, self.value_pos(node, key), f"environment variable {m.group(1)} is not set"
                )
                return ""
            secrets.append(value)
            return value

        return _ENV.sub(sub, text), [s for s in secrets if len(s) >= 4]


def positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"must be a whole number ≥ 0, not {value!r}")
    return value


def choice(options: tuple[str, ...]) -> Any:
    def check(value: Any) -> str:
        if str(value) not in options:
            raise ValueError(f"must be one of {', '.join(options)}, not {value!r}")
        return str(value)

    return check


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {value!r}")
    return value
