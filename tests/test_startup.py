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


def test_help_loads_only_the_command_it_shows() -> None:
    """The root group imports a command's module only when that command is asked for."""
    commands = {name for name in imported_modules(["--help"]) if name.startswith("alpaca_cli.commands.")}
    assert commands == set()
    commands = {name for name in imported_modules(["tail", "--help"]) if name.startswith("alpaca_cli.commands.")}
    assert commands == {"alpaca_cli.commands.tail"}


def test_the_top_level_help_lines_are_the_commands_own() -> None:
    """`cli.COMMANDS` repeats each command's one-line help so `--help` need not import it."""
    from alpaca_cli.cli import COMMANDS, app, load_command

    eager = [info.name for info in (*app.registered_commands, *app.registered_groups)]
    assert not eager, f"{eager}: add them to cli.COMMANDS, or --help and TAB would not list them"
    for name, (_, _, line) in COMMANDS.items():
        command = load_command(name)
        assert command.name == name
        assert command.get_short_help_str(limit=10_000) == line, f"cli.COMMANDS[{name!r}] is stale"


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


def test_the_exit_leaves_the_heap_to_the_os() -> None:
    """`cli` freezes the collector at exit: the teardown would otherwise free every object of
    pydantic's and alpaca-py's class cycles one by one (~40 ms of a `status`, bench/status.py).
    An atexit handler registered before the import runs after the freeze, and sees it."""
    probe = "import atexit, gc; atexit.register(lambda: print(gc.get_freeze_count())); import alpaca_cli.cli"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 0


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


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "args",
    [
        ["status", "-o", "json"],
        ["reconcile", "--state", "{state}", "--init", "-o", "json"],
        ["positions", "-o", "json"],
    ],
    ids=["status", "reconcile", "positions"],
)
def test_reading_commands_never_load_the_trading_package(sandbox: Any, tmp_path: Path, args: list[str]) -> None:
    """Reads go through alpaca-py's base REST client: `alpaca.trading` (some hundred pydantic
    models, ~45 ms) loads only for a write, a calendar or an asset call, or the trade stream."""
    args = [arg.replace("{state}", str(tmp_path / "state.json")) for arg in args]
    loaded = imported_modules([*args, "--sandbox"], cli_env(tmp_path, sandbox.url))
    assert "alpaca.common.rest" in loaded  # it did talk to the broker through the SDK
    assert not [name for name in loaded if name.startswith("alpaca.trading")]


@pytest.mark.timeout(120)
def test_status_as_json_loads_neither_rich_nor_html(sandbox: Any, tmp_path: Path) -> None:
    """Rich draws tables only (~30 ms of imports), and `html` reads the title of an HTML error
    page only (bridge/translate.py): a `status -o json` that went well needs neither."""
    loaded = imported_modules(["status", "--sandbox", "-o", "json"], cli_env(tmp_path, sandbox.url))
    assert "alpaca_cli.bridge.rest" in loaded  # it did talk to the broker
    assert not {name.split(".")[0] for name in loaded} & {"rich", "html"}


@pytest.mark.timeout(120)
def test_stream_bars_never_loads_the_trading_stream_s_websocket_client(sandbox: Any, tmp_path: Path) -> None:
    """aiohttp's client (~100 ms of imports, ~8 MB) carries the trading stream only
    (bridge/websocket.py); the market-data stream stays on `websockets`."""
    loaded = imported_modules(
        ["stream", "bars", "AAPL", "--count", "1", "--sandbox", "-o", "json"], cli_env(tmp_path, sandbox.url)
    )
    assert "alpaca_cli.bridge.marketdata" in loaded  # it did stream
    assert not {"aiohttp", "alpaca_cli.bridge.websocket"} & loaded
