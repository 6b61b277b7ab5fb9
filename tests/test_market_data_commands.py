"""`bars` and `quote` end to end: the real entry point against the sandbox."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import assert_refused_before_sending, cli_env, json_lines, run_cli, served

pytestmark = pytest.mark.timeout(120)

BARS = "GET /v2/stocks/bars"
SNAPSHOTS = "GET /v2/stocks/snapshots"
# A day before the sandbox started (real minutes there): more than a page of bars for twelve symbols.
DAY = ("--start", "2026-11-24T00:00:00Z", "--end", "2026-11-24T23:59:00Z")
TWELVE = ("SPY", "QQQ", "IWM", "DIA", "AAPL", "MSFT", "NVDA", "AMZN", "GOOG", "META", "TSLA", "AMD")


def cli(sandbox: Any, tmp_path: Path, *args: str) -> Any:
    return run_cli(*args, "--sandbox", env=cli_env(tmp_path, sandbox.url))


def sandbox_bars(
    sandbox: Any, symbols: list[str], timeframe: str = "1Min"
) -> dict[tuple[str, datetime], dict[str, Any]]:
    """The sandbox's own answer for DAY, every page, keyed by (symbol, t), read with `requests`."""
    params: dict[str, Any] = {"symbols": ",".join(symbols), "timeframe": timeframe, "limit": 10000}
    params.update(start=DAY[1], end=DAY[3])
    headers = {"APCA-API-KEY-ID": sandbox.key_id, "APCA-API-SECRET-KEY": sandbox.secret_key}
    found: dict[tuple[str, str], dict[str, Any]] = {}
    while True:
        page = requests.get(f"{sandbox.url}/v2/stocks/bars", params=params, headers=headers, timeout=30).json()
        for symbol, items in page["bars"].items():
            for item in items:
                found[(symbol, datetime.fromisoformat(item["t"]))] = item
        if not page.get("next_page_token"):
            return found
        params["page_token"] = page["next_page_token"]


def test_bars_pages_through_a_day_of_many_symbols_with_one_request_per_page(sandbox: Any, tmp_path: Path) -> None:
    before = served(sandbox, BARS)
    result = cli(sandbox, tmp_path, "bars", *TWELVE, *DAY, "-o", "json")
    assert result.returncode == 0, result.stderr
    lines = json_lines(result.stdout)
    pages = served(sandbox, BARS) - before
    expected = sandbox_bars(sandbox, list(TWELVE))
    assert len(expected) > 10_000  # more than one page
    assert pages == -(-len(expected) // 10_000)  # grows with pages, not symbols
    keys = [(line["symbol"], datetime.fromisoformat(line["t"])) for line in lines]
    assert len(keys) == len(set(keys)) == len(expected)
    assert {line["type"] for line in lines} == {"bar"}
    assert {line["source"] for line in lines} == {"history"}
    assert not any(line["updated"] for line in lines)
    for line in lines[:50]:
        wire = expected[(line["symbol"], datetime.fromisoformat(line["t"]))]
        assert (line["o"], line["h"], line["l"], line["c"], line["v"]) == tuple(wire[k] for k in "ohlcv")
    for symbol in TWELVE:  # oldest first within each symbol
        times = [t for s, t in keys if s == symbol]
        assert times == sorted(times)


def test_bars_csv_has_a_header_and_one_row_per_bar(sandbox: Any, tmp_path: Path) -> None:
    result = cli(sandbox, tmp_path, "bars", "AAPL", "msft", *DAY, "--timeframe", "1Hour", "-o", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["symbol", "t", "o", "h", "l", "c", "v", "n", "vw"]
    expected = sandbox_bars(sandbox, ["AAPL", "MSFT"], "1Hour")
    assert {(row[0], datetime.fromisoformat(row[1])) for row in rows[1:]} == set(expected)
    assert len(rows) - 1 == len(expected)
    assert all("." not in row[6] for row in rows[1:])  # whole-share volumes, not 1668.0


def test_quote_prints_one_snapshot_line_per_symbol_in_one_request(sandbox: Any, tmp_path: Path) -> None:
    sandbox.set_price("AAPL", 190)
    sandbox.step(3)
    before = served(sandbox, SNAPSHOTS)
    result = cli(sandbox, tmp_path, "quote", "AAPL", "msft", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert served(sandbox, SNAPSHOTS) - before == 1
    lines = json_lines(result.stdout)
    assert [line["symbol"] for line in lines] == ["AAPL", "MSFT"]
    for line in lines:
        assert line["type"] == "snapshot"
        assert line["quote"]["bid"] < line["trade"]["price"] < line["quote"]["ask"]
        assert set(line["bar"]) == {"t", "o", "h", "l", "c", "v", "n", "vw"}
        assert line["trade"]["t"].endswith("Z")
    assert abs(lines[0]["trade"]["price"] - 190) < 190 * 0.05


def test_quote_of_an_unknown_symbol_is_exit_1_after_the_known_ones(sandbox: Any, tmp_path: Path) -> None:
    result = cli(sandbox, tmp_path, "quote", "AAPL", "ZZZZ", "-o", "json")
    assert result.returncode == 1
    assert [line["symbol"] for line in json_lines(result.stdout)] == ["AAPL"]
    assert "ZZZZ" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


BAD_INPUTS: list[list[str]] = [
    ["bars", "AAPL"],  # no --start
    ["bars", "AAPL", "--start", "yesterday"],
    ["bars", "AAPL", "--start", "2026-11-25", "--end", "2026-11-24"],
    ["bars", "AAPL", "--start", "2026-11-24", "--timeframe", "2Min"],
    ["bars", "AAPL", "--start", "2026-11-24", "-o", "xml"],
    ["bars", "BTC/", "--start", "2026-11-24"],
    ["quote", "NOT A SYMBOL"],
    ["quote", "AAPL", "--feed", "otc"],
    ["quote"],
]


@pytest.mark.parametrize("argv", BAD_INPUTS, ids=[f"bad{i}" for i in range(len(BAD_INPUTS))])
def test_bad_input_exits_2_with_one_line_and_sends_nothing(
    sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert_refused_before_sending(sandbox, tmp_path, monkeypatch, capfd, argv)
