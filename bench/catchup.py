"""10,000 orders the state file believes open have closed at the broker: what it costs to learn it.

Two measures, each against a bare `requests` script in the same run:

- `reconcile --state F` after the broker canceled all 10,000: how many
  requests reach the sandbox, and how many it refuses with 429, under its
  default rate limit (200 a minute, as Alpaca). Counted by the sandbox
  itself (`/admin/stats`). The baseline fetches the same listings with no
  tool around it; a request per vanished order would be 10,000 more.
- `tail trade-updates --state F --count 10000` after all 10,000 filled while
  no tail ran: the catch-up prints one recovered `fill` line per order and
  stops. The figure is the child's CPU (user + system, from `getrusage`),
  start to exit; the baseline fetches the same pages and writes one JSON line
  per filled order.
"""

from __future__ import annotations

import json
import resource
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import SandboxProcess, admin, alpaca_cli, peak_rss_mb

NAME = "catchup"
DESCRIPTION = "10,000 believed-open orders closed at the broker: reconcile's requests and 429s, tail's catch-up CPU"
ORDERS = 10_000
POSITIONS = 2_000
RUNS = 3
REQUEST_TARGET = 60
CPU_TARGET_S = 2.0
BARE_LINES = "bare requests: the same pages, a line per fill"
TAIL = f"alpaca-cli tail --state catch-up, {ORDERS:,} missed fills"
KEYS = {"APCA-API-KEY-ID": "SANDBOXKEY", "APCA-API-SECRET-KEY": "SANDBOXSECRET"}

# The least a client needs to learn what became of orders it believed open: account,
# positions, the open listing, and the closed listing since the oldest of them.
_BARE_PAGES = """
import json, sys, requests
from datetime import datetime, timedelta
base, since, lines = sys.argv[1], sys.argv[2], sys.argv[3] == "lines"
session = requests.Session()
session.headers.update({"APCA-API-KEY-ID": "SANDBOXKEY", "APCA-API-SECRET-KEY": "SANDBOXSECRET"})
session.get(base + "/v2/account", timeout=30).json()
session.get(base + "/v2/positions", timeout=30).json()

def listing(status, after=None):
    seen, until = {}, None
    while True:
        params = {"status": status, "limit": 500, "direction": "desc"}
        if after is not None:
            params["after"] = after
        if until is not None:
            params["until"] = until
        page = session.get(base + "/v2/orders", params=params, timeout=30).json()
        fresh = [o for o in page if o["id"] not in seen]
        seen.update((o["id"], o) for o in fresh)
        if len(page) < 500 or not fresh:
            return list(seen.values())
        oldest = min(datetime.fromisoformat(o["submitted_at"].replace("Z", "+00:00")) for o in page)
        until = (oldest + timedelta(microseconds=1)).isoformat()

listing("open")
closed = listing("closed", since)
out = sys.stdout
for order in closed:
    if lines and order["status"] == "filled":
        out.write(json.dumps({"type": "fill", "order_id": order["id"], "qty": order["filled_qty"],
                              "price": order["filled_avg_price"], "order": order}) + "\\n")
print(len(closed), file=sys.stderr)
"""


def _oldest_believed(state: Path) -> str:
    """One microsecond before the oldest `submitted_at` the state file holds (the listing's `after`)."""
    from datetime import datetime, timedelta

    orders = json.loads(state.read_text())["open_orders"].values()
    oldest = min(datetime.fromisoformat(o["submitted_at"].replace("Z", "+00:00")) for o in orders)
    return (oldest - timedelta(microseconds=1)).isoformat()


def _init_state(cli: str, sandbox: SandboxProcess, state: Path) -> None:
    init = subprocess.run(
        [cli, "reconcile", "--sandbox", "--state", str(state), "--init", "-o", "json"],
        env=sandbox.env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if init.returncode != 0:
        raise RuntimeError(f"reconcile --init failed: {init.stderr.strip()}")


def _stats(url: str) -> tuple[int, int]:
    """(REST requests so far, of them refused with 429), as the sandbox counts them."""
    stats = admin(url, "GET", "/admin/stats")
    rest = sum(n for route, n in stats["requests"].items() if " /v2/" in route)
    return rest, stats["rate_limited"]


def _vanished() -> list[dict[str, Any]]:
    """reconcile after the broker canceled every order the state believes open, rate limit on."""
    cli = alpaca_cli()
    with SandboxProcess("--tick-interval", "60") as sandbox:  # default rate limit: 200 a minute
        admin(sandbox.url, "POST", "/admin/seed", {"open_orders": ORDERS, "positions": POSITIONS})
        state = sandbox.home / "state.json"
        _init_state(cli, sandbox, state)
        since = _oldest_believed(state)
        cancel = urllib.request.Request(sandbox.url + "/v2/orders", method="DELETE", headers=KEYS)
        with urllib.request.urlopen(cancel, timeout=120):
            pass
        if admin(sandbox.url, "GET", "/admin/stats")["open_orders"] != 0:
            raise RuntimeError("the sandbox still holds open orders after canceling all")
        rows = []
        for case, argv in (
            ("bare requests: the same listings", [sys.executable, "-c", _BARE_PAGES, sandbox.url, since, "count"]),
            (
                f"alpaca-cli reconcile, {ORDERS:,} believed open now canceled",
                [cli, "reconcile", "--sandbox", "--state", str(state), "-o", "json"],
            ),
        ):
            before = _stats(sandbox.url)
            started = time.perf_counter()
            result = subprocess.run(argv, env=sandbox.env, capture_output=True, text=True, timeout=600)
            seconds = time.perf_counter() - started
            after = _stats(sandbox.url)
            row: dict[str, Any] = {
                "case": case,
                "requests": after[0] - before[0],
                "rate_limited_429": after[1] - before[1],
                "median_ms": round(seconds * 1000, 1),
                "metric": "requests",
            }
            if argv[0] == cli:
                if result.returncode != 1:  # drift found: 10,000 orders closed
                    raise RuntimeError(f"reconcile exited {result.returncode}: {result.stderr.strip()}")
                summary = json.loads(result.stdout.splitlines()[-1])
                row["canceled_seen"] = summary["by_kind"].get("order_canceled", 0)
                row["not_placed"] = summary["by_kind"].get("order_missing_at_broker", 0)
                row["baseline"] = rows[0]["case"]
                row["target"] = f"<= {REQUEST_TARGET} requests, 0 x 429"
                meets = row["requests"] <= REQUEST_TARGET and row["rate_limited_429"] == 0
                row["meets"] = "yes" if meets else "NO"
            elif result.returncode != 0:
                raise RuntimeError(f"bare script failed: {result.stderr.strip()}")
            rows.append(row)
    return rows


def _cpu_run(argv: list[str], env: dict[str, str]) -> tuple[float, float, int, int]:
    """(CPU seconds, wall seconds, lines on stdout, exit code) of one child run to its end."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert child.stdout is not None
    lines = sum(1 for _ in child.stdout)
    code = child.wait(timeout=600)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, lines, code


def _tail_catchup() -> list[dict[str, Any]]:
    """tail --state after every order it believes open filled while it was away."""
    cli = alpaca_cli()
    with SandboxProcess("--tick-interval", "60", "--rate-limit", "0", "--always-open") as sandbox:
        # Sell limits spread over 10 held symbols; raising those prices fills them all at the next step.
        admin(sandbox.url, "POST", "/admin/seed", {"open_orders": ORDERS, "positions": 10})
        believed = sandbox.home / "believed.json"
        _init_state(cli, sandbox, believed)
        since = _oldest_believed(believed)
        positions = urllib.request.Request(sandbox.url + "/v2/positions", headers=KEYS)
        with urllib.request.urlopen(positions, timeout=30) as answer:
            symbols = [p["symbol"] for p in json.load(answer)]
        for symbol in symbols:
            admin(sandbox.url, "POST", "/admin/price", {"symbol": symbol, "price": 100_000})
        admin(sandbox.url, "POST", "/admin/step", {"n": 2})
        if admin(sandbox.url, "GET", "/admin/stats")["open_orders"] != 0:
            raise RuntimeError("the seeded orders did not all fill")
        state = sandbox.home / "state.json"
        tool_argv = [cli, "tail", "trade-updates", "--sandbox", "--state", str(state), "--count", str(ORDERS)]
        tool_argv += ["-o", "json"]
        cases = {
            BARE_LINES: [sys.executable, "-c", _BARE_PAGES, sandbox.url, since, "lines"],
            TAIL: tool_argv,
        }
        samples: dict[str, list[tuple[float, float, int, int]]] = {case: [] for case in cases}
        for _ in range(RUNS):
            for case, argv in cases.items():
                shutil.copyfile(believed, state)  # every tail run starts from the same belief
                samples[case].append(_cpu_run(argv, sandbox.env))
        shutil.copyfile(believed, state)
        tool_rss = peak_rss_mb(tool_argv, sandbox.env, runs=1)
    rows = []
    for case, runs in samples.items():
        if any(code != 0 or lines != ORDERS for _, _, lines, code in runs):
            raise RuntimeError(f"{case}: runs ended {[(code, lines) for _, _, lines, code in runs]}, not 10,000 lines")
        cpu = statistics.median(c for c, _, _, _ in runs)
        row: dict[str, Any] = {
            "case": case,
            "runs": len(runs),
            "cpu_s": round(cpu, 2),
            "min_cpu_s": round(min(c for c, _, _, _ in runs), 2),
            "median_ms": round(statistics.median(w for _, w, _, _ in runs) * 1000, 1),
            "lines": ORDERS,
            "metric": "cpu_s",
        }
        if case == TAIL:
            row["peak_rss_mb"] = tool_rss
            row["baseline"] = BARE_LINES
            row["target"] = f"<= {CPU_TARGET_S} s CPU"
            row["meets"] = "yes" if cpu <= CPU_TARGET_S else "NO"
        rows.append(row)
    return rows


def run() -> list[dict[str, Any]]:
    return _vanished() + _tail_catchup()
