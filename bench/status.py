"""`status` end to end against a sandbox in its own process, vs a bare `requests` script.

Both sides are whole processes started from nothing, doing the same four GETs
(account, clock, positions, open orders) against the same seeded sandbox, so
the ratio is what the CLI adds: alpaca-py's import, pydantic settings, the
mapping to our own types and the rendering. A third row does the same four
calls through alpaca-py's `TradingClient` with nothing else, to show how
much of that is the SDK itself.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from typing import Any

from bench import Case, SandboxProcess, alpaca_cli, interleaved, peak_rss_mb, summarize

NAME = "status"
DESCRIPTION = "alpaca-cli status against `sandbox serve` (20 positions, 100 open orders) vs bare requests"
RUNS = 15
OPEN_ORDERS = 100
POSITIONS = 20
BASELINE = "bare requests: 4 GETs"
TARGET_RATIO = 2.5  # status -o json (issue 12)

_REQUESTS = """
import sys, requests
session = requests.Session()
session.headers.update({"APCA-API-KEY-ID": "SANDBOXKEY", "APCA-API-SECRET-KEY": "SANDBOXSECRET"})
for path in ("/v2/account", "/v2/clock", "/v2/positions", "/v2/orders?status=open&limit=500&direction=desc"):
    answer = session.get(sys.argv[1] + path, timeout=10)
    answer.raise_for_status()
    answer.json()
"""

_SDK = """
import sys
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest
client = TradingClient("SANDBOXKEY", "SANDBOXSECRET", paper=True, url_override=sys.argv[1])
client.get_account(); client.get_clock(); client.get_all_positions()
client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500, direction="desc"))
"""


def _seed(url: str) -> None:
    """Give the account something to report: positions first, then resting orders."""
    body = json.dumps({"open_orders": OPEN_ORDERS, "positions": POSITIONS}).encode()
    request = urllib.request.Request(
        url + "/admin/seed", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30):
        pass


def run() -> list[dict[str, Any]]:
    cli = alpaca_cli()
    python = sys.executable
    # About 270 requests in half a minute, over Alpaca's 200 a minute: a 429 would fail the bare
    # script and make `status` wait, so the limit is off (it is not what this measures).
    with SandboxProcess("--rate-limit", "0") as sandbox:
        _seed(sandbox.url)
        env = {**sandbox.env, "COLUMNS": "160"}
        cases: dict[str, Case] = {
            BASELINE: ([python, "-c", _REQUESTS, sandbox.url], env),
            "alpaca-py TradingClient: 4 calls (ref)": ([python, "-c", _SDK, sandbox.url], env),
            "alpaca-cli status -o json": ([cli, "status", "--sandbox", "-o", "json"], env),
            "alpaca-cli status -o table": ([cli, "status", "--sandbox", "-o", "table"], env),
        }
        samples = interleaved(cases, RUNS, warmup=1)
        rss = {case: peak_rss_mb(*argv_env) for case, argv_env in cases.items()}
    rows = [
        summarize(case, runs, baseline=None if case == BASELINE else BASELINE, rss_mb=rss[case])
        for case, runs in samples.items()
    ]
    json_row, bare_row = rows[2], rows[0]
    json_row["target"] = f"<= {TARGET_RATIO}x"
    json_row["meets"] = "yes" if json_row["median_ms"] <= TARGET_RATIO * bare_row["median_ms"] else "NO"
    return rows
