"""Backfill: one trading day of minute bars for 100 symbols, under the sandbox's rate limit.

The sandbox (its own process, Alpaca's 200 requests a minute, its clock set
after the extended-hours close of 2026-11-24, so no live bar comes) serves the
day's history: 960 minutes of 4:00-20:00 New York time for 100 listed symbols.
Three processes fetch all of it, one after another:

- `alpaca-cli stream bars SYMBOLS --since DAY` -- the gap-free path itself: the
  backfill `stream bars` makes after a gap or on `--since`, printed as
  `"source":"backfill"` lines (it stops at `--count`, the day's bar count);
- `alpaca-cli bars SYMBOLS --start DAY --end ...` -- the export, the same paged call;
- the baseline: alpaca-py's `StockHistoricalDataClient.get_stock_bars`
  (raw data, the SDK's own paging), the same request, nothing else.

Figures: bars, requests (counted by the sandbox; far under the 200 a minute,
so none waits), seconds of wall time per process (start-up included).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from bench import SandboxProcess, admin, alpaca_cli

NAME = "backfill"
DESCRIPTION = "one trading day of minute bars for 100 symbols: stream bars --since, bars, alpaca-py; requests, seconds"
SYMBOLS = 100
START, END = "2026-11-24T09:00:00Z", "2026-11-25T01:00:00Z"  # 4:00 to 20:00 in New York (EST)
NOW = "2026-11-25T02:00:00Z"
BASELINE = "alpaca-py get_stock_bars (raw, SDK paging)"

_SDK = """
import sys
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame
client = StockHistoricalDataClient("SANDBOXKEY", "SANDBOXSECRET", raw_data=True, url_override=sys.argv[1])
request = StockBarsRequest(symbol_or_symbols=sys.argv[4:], timeframe=TimeFrame.Minute, start=sys.argv[2],
                           end=sys.argv[3], feed="iex")
bars = client.get_stock_bars(request)
print(sum(len(items) for items in bars.values()))
"""


def _requests(url: str) -> int:
    """Historical bar requests the sandbox answered so far."""
    return int(admin(url, "GET", "/admin/stats")["requests"].get("GET /v2/stocks/bars", 0))


def _timed(url: str, argv: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Wall seconds of one process, the requests it made, its stdout."""
    before = _requests(url)
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{argv[1:3]} exited {result.returncode}: {result.stderr[-300:]}")
    return seconds, _requests(url) - before, result.stdout


def run() -> list[dict[str, Any]]:
    cli = alpaca_cli()
    with SandboxProcess("--now", NOW) as sandbox:
        url, env = sandbox.url, sandbox.env
        listing = subprocess.run([cli, "assets", "--sandbox", "-o", "json"], env=env, capture_output=True, text=True)
        assets = [json.loads(line) for line in listing.stdout.splitlines() if line]
        symbols = [a["symbol"] for a in assets if a["tradable"] and "." not in a["symbol"]][:SYMBOLS]

        export_s, export_requests, out = _timed(
            url, [cli, "bars", *symbols, "--start", START, "--end", END, "--sandbox", "-o", "json"], env
        )
        bars = sum(1 for line in out.splitlines() if line)

        stream_argv = [cli, "stream", "bars", *symbols, "--since", START, "--sandbox", "-o", "json"]
        stream_s, stream_requests, out = _timed(url, [*stream_argv, "--stale-after", "0", "--count", str(bars)], env)
        lines = [json.loads(line) for line in out.splitlines() if line]
        backfilled = sum(1 for line in lines if line["source"] == "backfill")

        sdk_s, sdk_requests, out = _timed(url, [sys.executable, "-c", _SDK, url, START, END, *symbols], env)
        sdk_bars = int(out.strip())

    row = {"symbols": SYMBOLS, "rate_limit_per_min": 200}
    return [
        {"case": BASELINE, **row, "bars": sdk_bars, "requests": sdk_requests, "seconds": round(sdk_s, 2)},
        {
            "case": "alpaca-cli stream bars --since (the backfill)",
            **row,
            "bars": backfilled,
            "requests": stream_requests,
            "seconds": round(stream_s, 2),
            "baseline": BASELINE,
            "metric": "seconds",
        },
        {
            "case": "alpaca-cli bars (export, same paged call)",
            **row,
            "bars": bars,
            "requests": export_requests,
            "seconds": round(export_s, 2),
            "baseline": BASELINE,
            "metric": "seconds",
        },
    ]
