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
