"""`alpaca-cli demo -o json` end to end: the whole story, in order, in sync, exit 0, well under a minute."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.helpers import cli_env, json_lines, run_cli

STEPS = ["sandbox", "tail", "market", "limit", "cross", "large", "rejected", "gap", "drop", "status", "reconcile"]


@pytest.mark.timeout(90)
def test_demo_tells_the_whole_story_as_json_lines(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run_cli("demo", "-o", "json", env=cli_env(tmp_path), timeout=80)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-2000:]
    assert elapsed < 60
    lines = json_lines(result.stdout)
    assert all("type" in line for line in lines)

    chapters = [line["step"] for line in lines if line["type"] == "demo_step" and "title" in line]
    assert chapters == STEPS

    updates = [line for line in lines if line["type"] == "trade_update"]
    live = [u for u in updates if u["source"] == "stream"]
    assert {"new", "fill", "partial_fill"} <= {u["event"] for u in live}
    by_symbol = {u["symbol"]: u for u in live if u["event"] == "fill" and u["symbol"] in ("MSFT", "NVDA")}
    assert by_symbol["MSFT"]["price"] <= 415  # the limit filled at or under its price
    nvda = [u for u in live if u["symbol"] == "NVDA" and u["event"] in ("partial_fill", "fill")]
    assert sum(u["qty"] for u in nvda) == 500 and nvda[-1]["filled_qty"] == 500 and len(nvda) > 1

    refused = next(line for line in lines if line.get("step") == "refused")
    assert refused["status"] == 403 and "buying power" in refused["message"]
    assert not any(u["symbol"] == "TSLA" for u in updates)

    # The gap: the 15-share AAPL order was never delivered live, and came back from the broker.
    lost_id = next(line["order_id"] for line in lines if line.get("step") == "filled-unseen")
    assert not [u for u in live if u["order_id"] == lost_id]
    recovered = [u for u in updates if u["order_id"] == lost_id]
    assert recovered and all(u["source"] == "reconcile" for u in recovered)
    assert recovered[-1]["event"] == "fill" and recovered[-1]["qty"] == 15 and recovered[-1]["filled_qty"] == 15

    streams = [line for line in lines if line["type"] == "stream"]
    assert [s["event"] for s in streams if s["event"] in ("connected", "disconnected")][:3] == [
        "connected",
        "disconnected",
        "connected",
    ]

    status = next(line for line in lines if line["type"] == "status")
    assert status["environment"] == "sandbox" and status["positions"]["count"] == 3
    verdict = next(line for line in lines if line["type"] == "summary")
    assert verdict["in_sync"] is True and verdict["differences"] == 0

    summary = lines[-1]
    assert summary["type"] == "demo_summary"
    assert summary["in_sync"] is True and summary["reconnects"] >= 1
    assert summary["fills_recovered"] >= 1 and summary["fills_live"] == len([u for u in live if "fill" in u["event"]])
    assert summary["orders"] == 5 and summary["refused"] == 1
