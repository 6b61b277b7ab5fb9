"""No import circles: a module that needs another must not be needed by it, even for types only.

The graph is read from the source (an AST walk), so every import counts:
top-level, inside functions, and under `if TYPE_CHECKING:` (a circle kept
alive for annotations still ties the two modules into one).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "alpaca_cli"
# The packages whose modules must import each other without circles; widen to
# ("alpaca_cli",) to check the whole tool.
CHECKED_PACKAGES = ("alpaca_cli.sandbox",)


def module_names() -> dict[str, Path]:
    """Every module of `alpaca_cli` by dotted name (a package by its own name)."""
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of the tool that `name` imports anywhere in its source."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                out.add(submodule if submodule in known else base)
    return {m for m in out if m in known and m != name}


def circles(packages: tuple[str, ...], known: dict[str, Path]) -> list[list[str]]:
    """Strongly connected groups of more than one module among `packages` (Tarjan)."""
    inside = {n for n in known if any(n == p or n.startswith(p + ".") for p in packages)}
    graph = {n: imports_of(n, known[n], known) & inside for n in inside}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_checked_packages_have_no_import_circles() -> None:
    assert circles(CHECKED_PACKAGES, module_names()) == []


def test_the_walk_finds_a_circle_kept_alive_for_type_checking_only(tmp_path: Path) -> None:
    """The detector itself: two modules naming each other, one only under TYPE_CHECKING."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import thing\n")
    known = {"pkg": package / "__init__.py", "pkg.a": package / "a.py", "pkg.b": package / "b.py"}
    assert imports_of("pkg.a", known["pkg.a"], known) == {"pkg.b"}
    assert imports_of("pkg.b", known["pkg.b"], known) == {"pkg.a"}
    assert circles(("pkg",), known) == [["pkg.a", "pkg.b"]]
    (package / "b.py").write_text("import json\n")
    assert circles(("pkg",), known) == []


@pytest.mark.parametrize("package", CHECKED_PACKAGES)
def test_every_checked_package_exists(package: str) -> None:
    assert package in module_names()
