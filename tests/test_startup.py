"""`--help` and TAB completion must not pay for alpaca-py (pandas) or pydantic; trading commands not for pandas."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import cli_env

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


DATA_ONLY = ("pandas", "numpy")


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "args",
    [
        ["status", "-o", "json"],
        ["reconcile", "--state", "{state}", "--init", "-o", "json"],
        ["submit", "AAPL", "buy", "--qty", "1", "--yes", "-o", "json"],
        ["cancel", "--all", "--yes", "-o", "json"],
        ["tail", "trade-updates", "-o", "json", "--duration", "1"],
        ["submit", "AAPL", "buy", "--qty", "1", "--take-profit", "9999", "--stop-loss", "1", "--yes", "-o", "json"],
        ["orders", "--status", "all", "--nested", "-o", "json"],
        ["positions", "-o", "json"],
        ["close", "--all", "--yes", "-o", "json"],
        ["replace", "6f1f2a52-1f0e-4b8e-9a51-3c2d0f3b9e11", "--qty", "2", "-o", "json"],
        ["activities", "-o", "csv"],
        ["clock", "-o", "json"],
        ["calendar", "-o", "json"],
        ["assets", "AAPL", "-o", "json"],
        ["bars", "AAPL", "BTC/USD", "--start", "2026-11-24", "--end", "2026-11-24T10:00:00Z", "-o", "json"],
        ["quote", "AAPL", "-o", "json"],
    ],
    ids=[
        *("status", "reconcile", "submit", "cancel", "tail", "bracket", "orders", "positions", "close", "replace"),
        *("activities", "clock", "calendar", "assets", "bars", "quote"),
    ],
)
def test_one_shot_commands_never_load_pandas(sandbox: Any, tmp_path: Path, args: list[str]) -> None:
    """alpaca-py's trading package imports pandas for one validator, its data models import it
    outright; the bridge keeps it out (`bridge/deferred.py`, the data routes through the base REST
    client), so a one-shot command -- trading, account or market data -- loads no pandas or numpy."""
    args = [arg.replace("{state}", str(tmp_path / "state.json")) for arg in args]
    env = cli_env(tmp_path, sandbox.url)
    loaded = imported_modules([*args, "--sandbox"], env)
    assert "alpaca_cli.bridge.rest" in loaded  # it did talk to the broker
    assert not {name.split(".")[0] for name in loaded} & set(DATA_ONLY)
