"""`stream quotes|trades|bars,quotes,...` end to end: the real entry point against the sandbox."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from helpers import cli_env, json_lines, run_cli

from alpaca_cli import health

pytestmark = pytest.mark.timeout(60)
QUOTE_KEYS = ["type", "symbol", "t", "bid", "bid_size", "ask", "ask_size"]
TRADE_KEYS = ["type", "symbol", "t", "price", "size", "id"]


def no_data_connections(sandbox: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while sandbox.admin("GET", "/admin/streams")["data"]:
        assert time.monotonic() < deadline, "a data connection outlived its test"
        time.sleep(0.02)


@pytest.fixture
def env(sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    no_data_connections(sandbox)
    monkeypatch.setenv("ALPACA_CLI_STATE_DIR", str(tmp_path / "state"))
    return cli_env(tmp_path, sandbox.url)


def test_quotes_and_trades_lines_follow_the_contract(env: dict[str, str]) -> None:
    result = run_cli("stream", "quotes,trades", "AAPL", "msft", "--sandbox", "--count", "40", env=env, timeout=30)
    assert result.returncode == 0, result.stderr
    lines = json_lines(result.stdout)
    assert len(lines) == 40
    assert {line["type"] for line in lines} == {"quote", "trade"}
    for line in lines:
        assert line["symbol"] in ("AAPL", "MSFT") and line["t"].endswith("Z")
        if line["type"] == "quote":
            assert list(line) == QUOTE_KEYS and line["bid"] < line["ask"]
        else:
            assert list(line) == TRADE_KEYS and line["price"] > 0 and line["size"] > 0
    assert result.stderr.strip().splitlines() == ["market-data stream connected (feed iex, 2 symbol(s))"]


def test_several_kinds_share_one_connection_and_one_health_file(sandbox: Any, env: dict[str, str]) -> None:
    result = run_cli("stream", "bars,quotes,trades", "SPY", "--sandbox", "--duration", "2", env=env, timeout=30)
    assert result.returncode == 0, result.stderr
    kinds = {line["type"] for line in json_lines(result.stdout)}
    assert kinds == {"bar", "quote", "trade"}
    bars = [line for line in json_lines(result.stdout) if line["type"] == "bar"]
    assert all(bar["source"] == "stream" and bar["updated"] is False for bar in bars)
    record = health.read("sandbox", "market-data")
    assert record is not None and record["stopped"] is True
    assert record["kinds"] == ["bars", "quotes", "trades"] and record["feeds"] == ["iex"]
    assert record["backfills"] == 0 and record["backfilled_bars"] == 0
    assert record["dropped_quotes"] == 0


def test_table_of_quotes_shows_bid_ask_and_spread(env: dict[str, str]) -> None:
    result = run_cli("stream", "trades,quotes", "AAPL", "--sandbox", "--count", "10", "-o", "table", env=env)
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if "symbol" in line)
    assert header.split() == ["symbol", "time", "last", "size", "bid", "ask", "spread", "age"]
    assert "quotes,trades · iex" in result.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["stream", "quotes", "AAPL", "--since", "2026-11-24"],  # --since fills in bars only
        ["stream", "bars", "AAPL", "--since", "2100-01-01"],
        ["stream", "bars,ticks", "AAPL"],
        ["stream", "quotes", "AA PL"],
        ["stream", "trades", "BTC/"],
    ],
)
def test_bad_input_is_exit_2_with_one_line(env: dict[str, str], argv: list[str]) -> None:
    result = run_cli(*argv, "--sandbox", env=env)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""


def test_the_command_knows_the_kinds_the_bridge_streams() -> None:
    """`stream`'s KINDS are repeated (its --help must not load the SDK): they must be the bridge's."""
    from alpaca_cli.bridge.marketdata import KINDS as BRIDGE_KINDS
    from alpaca_cli.commands.stream import KINDS, app

    assert KINDS == BRIDGE_KINDS
    assert sorted(command.name for command in app.registered_commands) == sorted(KINDS)  # one command each
