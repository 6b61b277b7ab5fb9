"""`reconcile` against a sandbox holding 10,000 and 20,000 open orders and 2,000 positions.

The sandbox runs as its own process (`alpaca-cli sandbox serve`, market ticks
slowed to once a minute so it sits idle between requests), so its CPU is not
shared with the measured process's GIL. The measured command is the in-sync
case a cron job runs every morning: `alpaca-cli reconcile --state F -o json`
with F created by `--init` from the same sandbox, started from nothing.

Baseline, same run: a bare `requests` script doing the least the job needs
(account, positions, then every open order paged 500 at a time with `until`,
JSON-decoded and nothing else), so `ratio` is what the tool adds on top of the
paging itself. Then the same data in-process, to split the tool's time: the
state file's load (pydantic validation), the snapshot fetch through the
bridge (paging + mapping to domain types), and the pure `diff`.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import Case, SandboxProcess, admin, alpaca_cli, interleaved, peak_rss_mb, summarize

NAME = "reconcile"
DESCRIPTION = "reconcile -o json vs `sandbox serve` with 10,000 and 20,000 open orders, 2,000 positions; vs bare paging"
SIZES = (10_000, 20_000)
POSITIONS = 2_000
RUNS = 5
IN_PROCESS_RUNS = 5
TARGET_MS = 1_500  # for 10,000 orders, and at most 2x the bare client (issue 12)
TARGET_RATIO = 2.0

_BARE = """
import sys, requests
from datetime import datetime, timedelta
base = sys.argv[1]
session = requests.Session()
session.headers.update({"APCA-API-KEY-ID": "SANDBOXKEY", "APCA-API-SECRET-KEY": "SANDBOXSECRET"})
session.get(base + "/v2/account", timeout=30).json()
session.get(base + "/v2/positions", timeout=30).json()
seen, until = set(), None
while True:
    params = {"status": "open", "limit": 500, "direction": "desc"}
    if until is not None:
        params["until"] = until
    page = session.get(base + "/v2/orders", params=params, timeout=30).json()
    fresh = [o for o in page if o["id"] not in seen]
    seen.update(o["id"] for o in fresh)
    if len(page) < 500 or not fresh:
        break
    oldest = min(datetime.fromisoformat(o["submitted_at"]) for o in page)
    until = (oldest + timedelta(microseconds=1)).isoformat()
print(len(seen))
"""


def _median_ms(fn: Callable[[], Any], runs: int = IN_PROCESS_RUNS) -> tuple[float, Any]:
    """Median wall time of `fn()` in ms, and its last result."""
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1), result


def _in_process(url: str, state: Path) -> dict[str, float]:
    """Load, fetch and diff the same data inside this process, each timed alone."""
    from alpaca_cli import statefile
    from alpaca_cli.bridge import Broker
    from alpaca_cli.config import load_settings, resolve
    from alpaca_cli.core import State, diff

    connection = resolve(load_settings(sandbox=True, sandbox_url=url))
    local = statefile.load(state)
    # Parsed afresh each time: `statefile.load` keeps the last document a process read.
    load_ms, _ = _median_ms(lambda: State.model_validate_json(state.read_bytes()))

    async def fetch() -> Any:
        async with Broker(connection) as broker:
            return await broker.snapshot(local.open_orders)

    fetch_ms, snapshot = _median_ms(lambda: asyncio.run(fetch()))
    diff_ms, differences = _median_ms(lambda: diff(local, snapshot))
    if differences:
        raise RuntimeError(f"expected an in-sync state, diff found {len(differences)} differences")
    return {"load": load_ms, "fetch": fetch_ms, "diff": diff_ms}


def _check(argv: list[str], env: dict[str, str], expected_orders: int) -> None:
    """One run with output kept: the tool must be in sync and see every order; so must the bare script."""
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    if argv[0] == sys.executable:
        seen = int(result.stdout.strip() or 0)
    else:
        if result.returncode != 0:
            raise RuntimeError(f"reconcile exited {result.returncode}: {result.stderr.strip()}")
        seen = json.loads(result.stdout.splitlines()[-1])["open_orders"]
    if seen != expected_orders:
        raise RuntimeError(f"{argv[0]} saw {seen} open orders, the sandbox holds {expected_orders}")


def _size(orders: int) -> list[dict[str, Any]]:
    cli = alpaca_cli()
    # A load test of listing and comparing 10,000 orders, not of pacing: the rate limit is off.
    with SandboxProcess("--tick-interval", "60", "--rate-limit", "0") as sandbox:
        admin(sandbox.url, "POST", "/admin/reset", {})
        admin(sandbox.url, "POST", "/admin/seed", {"open_orders": orders, "positions": POSITIONS})
        env = sandbox.env
        state = sandbox.home / "state.json"
        written = sandbox.home / "written.json"
        init = subprocess.run(
            [cli, "reconcile", "--sandbox", "--state", str(state), "--init", "-o", "json"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if init.returncode != 0:
            raise RuntimeError(f"reconcile --init failed: {init.stderr.strip()}")
        shutil.copyfile(state, written)
        bare = f"bare requests: page {orders:,} orders"
        tool = f"alpaca-cli reconcile -o json, {orders:,} orders"
        write = f"alpaca-cli reconcile --write -o json, {orders:,} orders"
        cases: dict[str, Case] = {
            bare: ([sys.executable, "-c", _BARE, sandbox.url], env),
            tool: ([cli, "reconcile", "--sandbox", "--state", str(state), "-o", "json"], env),
            write: ([cli, "reconcile", "--sandbox", "--state", str(written), "--write", "-o", "json"], env),
        }
        for argv, case_env in cases.values():
            _check(list(argv), dict(case_env or {}), orders)
        samples = interleaved(cases, RUNS, warmup=1)
        rss = {case: peak_rss_mb(*argv_env, runs=2) for case, argv_env in cases.items()}
        parts = _in_process(sandbox.url, state)
        state_mb = round(state.stat().st_size / 2**20, 1)
    rows = [
        summarize(case, runs, baseline=None if case == bare else bare, rss_mb=rss[case])
        for case, runs in samples.items()
    ]
    tool_ms = next(row["median_ms"] for row in rows if row["case"] == tool)
    if orders == SIZES[0]:
        bare_ms = rows[0]["median_ms"]
        rows[1]["target_met"] = "yes" if tool_ms < TARGET_MS and tool_ms <= TARGET_RATIO * bare_ms else "NO"
    rows[1]["state_file_mb"] = state_mb
    for part, label in (
        ("load", "load the state file (validate)"),
        ("fetch", "snapshot fetch (paging + mapping)"),
        ("diff", "pure diff"),
    ):
        rows.append(
            {
                "case": f"  in-process, {orders:,}: {label}",
                "runs": IN_PROCESS_RUNS,
                "median_ms": parts[part],
                "per_1k_orders_ms": round(parts[part] / (orders / 1000), 2),
                "share_of_tool_pct": round(100 * parts[part] / tool_ms, 1),
            }
        )
    return rows


def run() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for orders in SIZES:
        rows += _size(orders)
    return rows
