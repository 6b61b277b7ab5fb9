"""`orders` and `orders get` end to end: the real entry point against the sandbox, rate limit on.

Orders are placed straight on the sandbox's broker (no requests counted), each
test on symbols of its own, so counts and listings concern only what it made.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from helpers import assert_refused_before_sending, cli_env, json_lines, run_cli, served

pytestmark = pytest.mark.timeout(120)


def cli(sandbox: Any, tmp_path: Path, *args: str) -> Any:
    return run_cli(*args, "--sandbox", env=cli_env(tmp_path, sandbox.url))


def place(sandbox: Any, symbol: str, side: str = "buy", **extra: Any) -> dict[str, Any]:
    """A resting limit order far from the market (it stays open), placed without a request."""
    price = sandbox.call(lambda: sandbox.broker.price(symbol))
    limit = price / 2 if side == "buy" else price * 2
    body = {
        "symbol": symbol,
        "qty": "1",
        "side": side,
        "type": "limit",
        "time_in_force": "gtc",
        "limit_price": str(limit.quantize(price.__class__("0.01"))),
        "client_order_id": f"t-{uuid.uuid4().hex}",
        **extra,
    }
    return sandbox.call(lambda: sandbox.broker.submit(body))


BAD_INPUTS: list[list[str]] = [
    ["orders", "--status", "done"],
    ["orders", "--side", "hold"],
    ["orders", "--symbols", "AAPL,,MSFT"],
    ["orders", "--symbols", "BTC/USD"],
    ["orders", "--after", "yesterday"],
    ["orders", "--until", "2026-13-01"],
    ["orders", "--after", "2026-11-02", "--until", "2026-11-01"],
    ["orders", "--limit", "0"],
    ["orders", "--limit", "many"],
    ["orders", "--status", "all", "get", "6f1f2a52-1f0e-4b8e-9a51-3c2d0f3b9e11"],
    ["orders", "get"],
    ["orders", "get", "not-a-uuid"],
    ["orders", "get", "6f1f2a52-1f0e-4b8e-9a51-3c2d0f3b9e11", "--client-order-id", "x"],
    ["orders", "get", "--client-order-id", "x" * 129],
    ["orders", "frobnicate"],
]


@pytest.mark.parametrize("argv", BAD_INPUTS, ids=[f"bad{i}" for i in range(len(BAD_INPUTS))])
def test_bad_input_exits_2_with_one_line_and_sends_nothing(
    sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert_refused_before_sending(sandbox, tmp_path, monkeypatch, capfd, argv)


def test_listing_10000_orders_pages_500_at_a_time_under_the_rate_limit(sandbox: Any, tmp_path: Path) -> None:
    sandbox.reset()
    try:
        sandbox.admin("POST", "/admin/seed", {"open_orders": 10_000, "positions": 0})
        before = served(sandbox, "GET /v2/orders")
        result = cli(sandbox, tmp_path, "orders", "-o", "json")
        assert result.returncode == 0, result.stderr
        lines = json_lines(result.stdout)
        assert len(lines) == 10_000
        assert len({line["id"] for line in lines}) == 10_000
        assert all(line["type"] == "order" and line["status"] == "new" for line in lines)
        assert [line["submitted_at"] for line in lines] == sorted(line["submitted_at"] for line in lines)
        assert served(sandbox, "GET /v2/orders") - before == 21  # 20 full pages and the empty one that ends it

        newest = cli(sandbox, tmp_path, "orders", "--limit", "700", "-o", "json")
        assert [line["id"] for line in json_lines(newest.stdout)] == [line["id"] for line in lines[-700:]]
    finally:
        sandbox.reset()


def test_filters_reach_the_broker_and_the_range_is_exclusive(sandbox: Any, tmp_path: Path) -> None:
    buys = [place(sandbox, "KO") for _ in range(3)]
    sell = place(sandbox, "PEP", "sell")
    other = place(sandbox, "MCD")

    result = cli(sandbox, tmp_path, "orders", "--symbols", "ko,pep", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert [line["id"] for line in json_lines(result.stdout)] == [o["id"] for o in [*buys, sell]]

    sells = cli(sandbox, tmp_path, "orders", "--symbols", "KO,PEP,MCD", "--side", "sell", "-o", "json")
    assert [line["id"] for line in json_lines(sells.stdout)] == [sell["id"]]

    window = cli(
        sandbox,
        tmp_path,
        "orders",
        "--symbols",
        "KO,PEP,MCD",
        "--after",
        buys[0]["submitted_at"],
        "--until",
        other["submitted_at"],
        "-o",
        "json",
    )
    assert [line["id"] for line in json_lines(window.stdout)] == [buys[1]["id"], buys[2]["id"], sell["id"]]

    sandbox.call(lambda: sandbox.broker.cancel(other["id"]))
    closed = cli(sandbox, tmp_path, "orders", "--status", "closed", "--symbols", "MCD", "-o", "json")
    assert [(line["id"], line["status"]) for line in json_lines(closed.stdout)] == [(other["id"], "canceled")]
    assert json_lines(cli(sandbox, tmp_path, "orders", "--symbols", "MCD", "-o", "json").stdout) == []


def test_nested_listing_and_get_show_a_brackets_legs(sandbox: Any, tmp_path: Path) -> None:
    price = sandbox.call(lambda: sandbox.broker.price("NKE"))
    entry = place(
        sandbox,
        "NKE",
        order_class="bracket",
        time_in_force="day",
        take_profit={"limit_price": str((price * 2).quantize(price.__class__("0.01")))},
        stop_loss={"stop_price": str((price / 4).quantize(price.__class__("0.01")))},
    )
    flat = json_lines(cli(sandbox, tmp_path, "orders", "--status", "all", "--symbols", "NKE", "-o", "json").stdout)
    assert len(flat) == 3 and all("legs" not in line for line in flat)

    nested = json_lines(
        cli(sandbox, tmp_path, "orders", "--status", "all", "--symbols", "NKE", "--nested", "-o", "json").stdout
    )
    assert [line["id"] for line in nested] == [entry["id"]]
    assert nested[0]["order_class"] == "bracket"
    assert sorted(leg["order_type"] for leg in nested[0]["legs"]) == ["limit", "stop"]

    by_id = cli(sandbox, tmp_path, "orders", "get", entry["id"], "-o", "json")
    assert by_id.returncode == 0, by_id.stderr
    [shown] = json_lines(by_id.stdout)
    assert shown["id"] == entry["id"] and len(shown["legs"]) == 2

    by_client = cli(sandbox, tmp_path, "orders", "get", "--client-order-id", entry["client_order_id"], "-o", "json")
    assert json_lines(by_client.stdout) == [shown]

    table = cli(sandbox, tmp_path, "orders", "get", entry["id"], "-o", "table")
    assert table.returncode == 0, table.stderr
    assert entry["id"] in table.stdout and table.stdout.count("│ └ ") == 2


def test_get_takes_the_common_options_before_or_after_it(sandbox: Any, tmp_path: Path) -> None:
    order = place(sandbox, "HD")
    env = cli_env(tmp_path, sandbox.url)
    before = run_cli("orders", "--sandbox", "-o", "json", "get", order["id"], env=env)
    after = run_cli("orders", "get", order["id"], "--sandbox", "-o", "json", env=env)
    assert before.returncode == after.returncode == 0, before.stderr + after.stderr
    assert json_lines(before.stdout)[0]["id"] == json_lines(after.stdout)[0]["id"] == order["id"]
    assert json_lines(before.stdout)[0]["client_order_id"] == order["client_order_id"]


def test_unknown_order_is_a_clean_no(sandbox: Any, tmp_path: Path) -> None:
    missing = cli(sandbox, tmp_path, "orders", "get", str(uuid.uuid4()))
    assert missing.returncode == 1
    assert "not found" in missing.stderr
    unknown = cli(sandbox, tmp_path, "orders", "get", "--client-order-id", "never-used")
    assert unknown.returncode == 1
    assert "no order with client order id never-used" in unknown.stderr


def test_table_on_a_terminal_lists_the_orders(sandbox: Any, tmp_path: Path) -> None:
    orders = [place(sandbox, "LOW") for _ in range(2)]
    result = cli(sandbox, tmp_path, "orders", "--symbols", "LOW", "-o", "table")
    assert result.returncode == 0, result.stderr
    assert "Open orders" in result.stdout
    assert all(o["id"] in result.stdout for o in orders)
    empty = cli(sandbox, tmp_path, "orders", "--symbols", "TGT", "-o", "table")
    assert empty.returncode == 0 and empty.stdout == "" and "no orders" in empty.stderr
