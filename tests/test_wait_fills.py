"""`submit --wait` polling (another process holds the trade stream) reports each fill at its own
price and size, from the account's FILL activities, rather than one fill at the average."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers import cli_env, json_lines, run_cli, spawn_cli

from alpaca_cli.core import polled_events
from alpaca_cli.domain import Activity, Order


@pytest.mark.timeout(120)
def test_polling_reports_every_execution_at_its_exact_price(sandbox: Any, tmp_path: Path) -> None:
    env = cli_env(tmp_path, sandbox.url)
    sandbox.set_price("ON", 30)
    tail = spawn_cli("tail", "trade-updates", "--events", "stream", "--sandbox", "-o", "json", env=env)
    try:
        assert tail.stdout is not None
        for line in tail.stdout:  # tail holds the account's one stream once it says connected
            if json.loads(line).get("event") == "connected":
                break
        argv = ("submit", "ON", "buy", "--qty", "300", "--wait", "--timeout", "30", "--sandbox", "--yes", "-o", "json")
        result = run_cli(*argv, env=env)
    finally:
        tail.terminate()
        tail.communicate(timeout=30)
    assert result.returncode == 0, result.stderr
    assert "polling the order" in result.stderr
    lines = json_lines(result.stdout)
    fills = [line for line in lines if line["type"] == "trade_update" and line["event"] in ("fill", "partial_fill")]
    order_id = fills[-1]["order_id"]
    listed = json_lines(run_cli("activities", "--type", "FILL", "--sandbox", "-o", "json", env=env).stdout)
    executions = [(a["qty"], a["price"]) for a in listed if a["order_id"] == order_id]
    assert len(executions) == 3  # the sandbox fills at most 100 shares a step, each at that step's price
    assert [(f["qty"], f["price"]) for f in fills] == executions
    assert [f["filled_qty"] for f in fills] == [100, 200, 300]
    assert [f["event"] for f in fills] == ["partial_fill", "partial_fill", "fill"]
    assert len({f["id"] for f in fills}) == 3


AT = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)


def _order(status: str, filled: str, average: str | None) -> Order:
    return Order(
        "o1",
        "c1",
        "ON",
        "buy",
        "market",
        "day",
        status,
        AT,
        qty=Decimal(300),
        filled_qty=Decimal(filled),
        filled_avg_price=Decimal(average) if average else None,
    )


def _fill(qty: str, price: str, order_id: str = "o1") -> Activity:
    return Activity(f"a{qty}{price}", "FILL", at=AT, qty=Decimal(qty), price=Decimal(price), order_id=order_id)


FILLS = [_fill("100", "30"), _fill("7", "99", "other"), _fill("100", "31"), _fill("100", "32")]


def test_exact_fills_after_a_known_part_give_the_later_executions_with_their_order_as_they_left_it() -> None:
    events = polled_events(_order("partially_filled", "100", "30"), _order("filled", "300", "31"), fills=FILLS)
    assert [(e.event, e.qty, e.price, e.order.filled_qty, e.order.status) for e in events] == [
        ("partial_fill", 100, 31, 200, "partially_filled"),
        ("fill", 100, 32, 300, "filled"),
    ]
    assert events[0].order.filled_avg_price == Decimal("30.5")


@pytest.mark.parametrize(
    ("before", "fills"),
    [("0", FILLS[:3]), ("50", FILLS)],
    ids=["the feed lags the order", "the known part ends inside an execution"],
)
def test_fills_that_do_not_account_for_the_order_fall_back_to_the_average(before: str, fills: list[Activity]) -> None:
    events = polled_events(_order("partially_filled", before, "30"), _order("filled", "300", "31"), fills=fills)
    assert len(events) == 1
    assert (events[0].event, events[0].qty) == ("fill", 300 - int(before))
