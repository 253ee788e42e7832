"""The stage packages import downwards only, and nothing in ``worker/`` grows too large.

Layers, lowest first: ``model``/``errors``, ``core``, ``rules``, ``config``, ``poll``,
``stories``, ``deliver``, ``service``, ``commands``, ``cli``. A module may import its own layer and any
layer below it, never one above (ARCHITECTURE.md draws the map).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WORKER = Path(__file__).resolve().parents[1] / "worker"
LAYERS = ["model", "errors", "core", "rules", "config", "poll", "stories", "deliver", "service"]
RANK = {name: i for i, name in enumerate(LAYERS)} | {
    "errors": 0,
    "jobs": len(LAYERS) - 1,  # the alias of service.jobs
    "commands": len(LAYERS),
    "cli": len(LAYERS) + 1,
}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _layer(module: str) -> str | None:
    """Return the layer of a dotted ``worker.…`` module name (None for the package root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _module_name(path: Path, root: Path = WORKER) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """Return every ``worker.…`` module ``path`` imports, with its line."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("worker.")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("worker"):
            if node.module == "worker":
                found += [(node.lineno, f"worker.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def _sources(root: Path = WORKER) -> list[Path]:
    return sorted(root.rglob("*.py"))


def _violations(root: Path = WORKER) -> list[str]:
    problems = []
    for path in _sources(root):
        own = _layer(_module_name(path, root))
        if own is None or own not in RANK:
            continue
        for line, target in _imports(path):
            other = _layer(target)
            if other in RANK and RANK[other] > RANK[own]:
                rel = path.relative_to(root.parent)
                problems.append(f"{rel}:{line}: {own} imports {target} ({other} is higher)")
    return problems


def test_every_module_belongs_to_a_layer() -> None:
    stray = [
        str(p.relative_to(WORKER.parent))
        for p in _sources()
        if _layer(_module_name(p)) not in RANK and _module_name(p) != "worker"
    ]
    assert stray == []


def test_imports_point_down() -> None:
    assert _violations() == []


def test_a_layering_breach_is_seen(tmp_path: Path) -> None:
    """The checker itself: upward imports in either spelling are reported, downward ones not."""
    core = tmp_path / "worker" / "core"
    core.mkdir(parents=True)
    (core / "bad.py").write_text(
        "from worker.service.app import App\nfrom worker import deliver\nfrom worker.core import keys\n"
    )
    assert _violations(tmp_path / "worker") == [
        "worker/core/bad.py:1: core imports worker.service.app (service is higher)",
        "worker/core/bad.py:2: core imports worker.deliver (deliver is higher)",
    ]


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(WORKER.parent)))
def test_modules_and_functions_stay_small(path: Path) -> None:
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path.name} is over {MAX_MODULE_LINES}"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []
