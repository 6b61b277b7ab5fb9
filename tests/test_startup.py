"""`--help` and TAB completion must not pay for alpaca-py (pandas) or pydantic."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HEAVY = ("alpaca", "pandas", "pydantic", "pydantic_settings", "aiohttp", "numpy")


def imported_modules(args: list[str], env: dict[str, str] | None = None) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "alpaca_cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=30,
    )
    names = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    assert names, result.stderr[-500:]
    return names


@pytest.mark.parametrize(
    "args",
    [["--help"], ["status", "--help"], ["sandbox", "serve", "--help"], ["--version"]],
)
def test_help_imports_nothing_heavy(args: list[str]) -> None:
    loaded = {name.split(".")[0] for name in imported_modules(args)}
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.parametrize(
    "env",
    [
        {"_ALPACA_CLI_COMPLETE": "complete_bash", "COMP_WORDS": "alpaca-cli st", "COMP_CWORD": "1"},
        {"_ALPACA_CLI_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "alpaca-cli status --"},
        {
            "_ALPACA_CLI_COMPLETE": "complete_fish",
            "_TYPER_COMPLETE_FISH_ACTION": "get-args",
            "_TYPER_COMPLETE_ARGS": "alpaca-cli sandbox serve --",
        },
    ],
    ids=["bash", "zsh", "fish"],
)
def test_completion_path_imports_nothing_heavy(env: dict[str, str]) -> None:
    loaded = {name.split(".")[0] for name in imported_modules([], env)}
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_version_and_module_entry_point() -> None:
    from alpaca_cli import __version__

    result = subprocess.run([sys.executable, "-m", "alpaca_cli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.strip() == f"alpaca-cli {__version__}"
