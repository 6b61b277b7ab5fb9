"""Crypto pairs end to end: `bars`, `quote` and `stream` send `BTC/USD` to Alpaca's crypto routes and stream."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import cli_env, health_record, json_lines, run_cli

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def env(sandbox: Any, tmp_path: Path) -> dict[str, str]:
    deadline = time.monotonic() + 10
    while sandbox.admin("GET", "/admin/streams")["data"]:
        assert time.monotonic() < deadline, "a data connection outlived its test"
        time.sleep(0.02)
    return cli_env(tmp_path, sandbox.url)


def served(sandbox: Any, prefix: str, suffix: str) -> int:
    """Requests served on the routes between `prefix` and `suffix` (the crypto location is a template)."""
    return sum(n for route, n in dict(sandbox.counts).items() if route.startswith(prefix) and route.endswith(suffix))


def test_bars_of_a_pair_and_a_stock_come_from_their_own_routes(sandbox: Any, env: dict[str, str]) -> None:
    crypto, stocks = served(sandbox, "GET /v1beta3/crypto/", "/bars"), served(sandbox, "GET /v2/stocks/", "/bars")
    result = run_cli(
        "bars", "btc/usd", "AAPL", "--start", "2026-11-24", "--end", "2026-11-24T02:00:00Z", "--sandbox", env=env
    )
    assert result.returncode == 0, result.stderr
    lines = json_lines(result.stdout)
    assert {line["symbol"] for line in lines} >= {"BTC/USD"}
    assert served(sandbox, "GET /v1beta3/crypto/", "/bars") == crypto + 1
    assert served(sandbox, "GET /v2/stocks/", "/bars") == stocks + 1
    pair = [line for line in lines if line["symbol"] == "BTC/USD"]
    # Around the clock (a Tuesday night, before the sandbox started: real minutes), 00:00 to 02:00 inclusive
    assert 100 <= len(pair) <= 121
    times = [datetime.fromisoformat(line["t"]) for line in pair]
    assert times == sorted(set(times))
    assert all(line["source"] == "history" for line in pair)


def test_quote_of_a_pair(sandbox: Any, env: dict[str, str]) -> None:
    result = run_cli("quote", "BTC/USD", "ETH/USD", "AAPL", "--sandbox", env=env)
    assert result.returncode == 0, result.stderr
    lines = json_lines(result.stdout)
    assert [line["symbol"] for line in lines] == ["BTC/USD", "ETH/USD", "AAPL"]
    for line in lines:
        assert line["quote"]["bid"] < line["quote"]["ask"] and line["trade"]["price"] > 0


def test_stream_of_a_pair_and_a_stock_opens_one_connection_each(sandbox: Any, env: dict[str, str]) -> None:
    result = run_cli("stream", "bars,quotes,trades", "BTC/USD", "AAPL", "--sandbox", "--duration", "3", env=env)
    assert result.returncode == 0, result.stderr
    lines = json_lines(result.stdout)
    for symbol in ("BTC/USD", "AAPL"):
        assert {line["type"] for line in lines if line["symbol"] == symbol} == {"bar", "quote", "trade"}, symbol
    connected = [line for line in result.stderr.splitlines() if "stream connected" in line]
    assert sorted(connected) == [
        "market-data stream connected (feed crypto, 1 symbol(s))",
        "market-data stream connected (feed iex, 1 symbol(s))",
    ]
    record = health_record(env, "market-data")
    assert record is not None and record["feeds"] == ["iex", "crypto"] and record["symbols"] == ["AAPL", "BTC/USD"]
