"""The tree stays `ruff` clean (lint and format), checked where CI runs the tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_is_clean(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "."], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]


def test_only_the_bridge_imports_alpaca() -> None:
    offenders = []
    for path in (ROOT / "alpaca_cli").rglob("*.py"):
        if path.parent.name == "bridge":
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            stripped = line.strip()
            if stripped.startswith(("import alpaca ", "import alpaca.", "from alpaca ", "from alpaca.")):
                offenders.append(f"{path.relative_to(ROOT)}: {stripped}")
    assert offenders == []


def _imports(path: Path) -> list[str]:
    """Every module `path` imports, at any depth (lazy imports inside functions too)."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
    return found


# What the pure core may import from the tool itself, and the one library it may use
# (pydantic, for the state document that crosses the trust boundary of a file).
CORE_MAY_IMPORT = ("alpaca_cli.core", "alpaca_cli.domain", "alpaca_cli.text")
CORE_LIBRARIES = ("pydantic",)


def test_the_core_imports_only_the_core_the_domain_text_and_the_standard_library() -> None:
    offenders = []
    for path in (ROOT / "alpaca_cli" / "core").rglob("*.py"):
        for name in _imports(path):
            top = name.split(".")[0]
            if top == "alpaca_cli":
                allowed = any(name == ok or name.startswith(ok + ".") for ok in CORE_MAY_IMPORT)
            else:
                allowed = top in sys.stdlib_module_names or top in CORE_LIBRARIES
            if not allowed:
                offenders.append(f"{path.relative_to(ROOT)}: {name}")
    for module in ("text.py", "domain.py"):  # what the core leans on is standard library only
        path = ROOT / "alpaca_cli" / module
        offenders += [
            f"{module}: {name}" for name in _imports(path) if name.split(".")[0] not in sys.stdlib_module_names
        ]
    assert offenders == []
