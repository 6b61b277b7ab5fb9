"""The unmodified alpaca-py SDK against the sandbox over real sockets: every REST route.

These pin the sandbox's wire faithfulness (the SDK's pydantic models accept
every object) and its Alpaca-shaped refusals (`APIError.status_code`, `.code`).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
    StopOrderRequest,
    TrailingStopOrderRequest,
)

from alpaca_cli.sandbox.server import SandboxThread

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def client(sandbox: Any) -> TradingClient:
    return TradingClient(sandbox.key_id, sandbox.secret_key, paper=True, url_override=sandbox.url)


@pytest.fixture(scope="module")
def data(sandbox: Any) -> StockHistoricalDataClient:
    return StockHistoricalDataClient(sandbox.key_id, sandbox.secret_key, url_override=sandbox.url)


def wait_final(sandbox: Any, order_id: str, timeout: float = 10) -> dict[str, Any]:
    """Block until the order reaches a final status; returns its wire dict."""
    done = threading.Event()

    def listener(event: dict[str, Any]) -> None:
        if event["order"]["id"] == order_id and event["order"]["status"] not in (
            "new",
            "partially_filled",
        ):
            done.set()

    def register() -> dict[str, Any]:
        sandbox.broker.listeners.append(listener)
        return sandbox.broker.get_order(order_id)

    try:
        if sandbox.call(register)["status"] in ("new", "partially_filled"):
            assert done.wait(timeout), f"order {order_id} did not finish"
    finally:
        sandbox.call(lambda: sandbox.broker.listeners.remove(listener))
    return sandbox.call(lambda: sandbox.broker.get_order(order_id))


def api_error(fn: Any, *args: Any) -> APIError:
    with pytest.raises(APIError) as info:
        fn(*args)
    return info.value


def test_account_clock_and_asset_shapes(client: TradingClient) -> None:
    account = client.get_account()
    assert account.status == "ACTIVE" and account.currency == "USD"
    assert float(account.buying_power) > 0 and account.account_number
    clock = client.get_clock()
    assert clock.is_open is True and clock.next_close < clock.next_open
    asset = client.get_asset("AAPL")
    assert asset.exchange == "NASDAQ" and asset.tradable


def test_market_order_by_qty_fills_and_shows_as_a_position(sandbox: Any, client: TradingClient) -> None:
    placed = client.submit_order(
        MarketOrderRequest(symbol="AAPL", qty=3, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    assert placed.status == OrderStatus.NEW and placed.symbol == "AAPL"
    assert wait_final(sandbox, str(placed.id))["status"] == "filled"
    got = client.get_order_by_id(placed.id)
    assert got.status == OrderStatus.FILLED and float(got.filled_qty) == 3
    position = client.get_open_position("AAPL")
    assert position.exchange == "NASDAQ" and float(position.qty) >= 3
    assert any(p.symbol == "AAPL" for p in client.get_all_positions())


def test_market_order_by_notional(sandbox: Any, client: TradingClient) -> None:
    placed = client.submit_order(
        MarketOrderRequest(symbol="MSFT", notional=250.5, side=OrderSide.BUY, time_in_force="day")
    )
    assert placed.notional == "250.5" and placed.qty is None
    final = wait_final(sandbox, str(placed.id))
    assert final["status"] == "filled"
    shares = float(final["filled_qty"])
    assert shares * float(final["filled_avg_price"]) == pytest.approx(250.5, abs=0.01)


@pytest.mark.parametrize(
    "request_",
    [
        LimitOrderRequest(symbol="IBM", qty=2, side="buy", time_in_force="gtc", limit_price=1.5),
        LimitOrderRequest(symbol="IBM", qty=0.5, side="buy", time_in_force="day", limit_price=1.25),
        StopOrderRequest(symbol="IBM", qty=1, side="buy", time_in_force="gtc", stop_price=99999),
        StopLimitOrderRequest(
            symbol="IBM", qty=1, side="buy", time_in_force="day", stop_price=99999, limit_price=99999.5
        ),
        TrailingStopOrderRequest(symbol="IBM", qty=1, side="sell", time_in_force="gtc", trail_price=5),
        TrailingStopOrderRequest(symbol="IBM", qty=1, side="sell", time_in_force="day", trail_percent=2.5),
    ],
    ids=["limit", "limit-fractional", "stop", "stop_limit", "trailing-price", "trailing-percent"],
)
def test_every_resting_order_type_round_trips(client: TradingClient, request_: Any) -> None:
    placed = client.submit_order(request_)
    assert placed.status == OrderStatus.NEW and placed.type == request_.type
    got = client.get_order_by_id(placed.id)
    assert got.client_order_id == placed.client_order_id and got.time_in_force == request_.time_in_force
    if request_.type == "trailing_stop":
        assert got.hwm is not None and got.stop_price is not None
    client.cancel_order_by_id(placed.id)
    assert client.get_order_by_id(placed.id).status == OrderStatus.CANCELED


def test_order_by_client_id_with_characters_needing_quoting(client: TradingClient) -> None:
    client_id = "my order/1 +a&b=c%d?é"
    placed = client.submit_order(
        LimitOrderRequest(symbol="KO", qty=1, side="buy", time_in_force="gtc", limit_price=1, client_order_id=client_id)
    )
    found = client.get_order_by_client_id(client_id)
    assert found.id == placed.id and found.client_order_id == client_id
    client.cancel_order_by_id(placed.id)


def test_list_filters_and_booleans(client: TradingClient) -> None:
    placed = client.submit_order(LimitOrderRequest(symbol="GE", qty=1, side="buy", time_in_force="gtc", limit_price=1))
    listed = client.get_orders(
        GetOrdersRequest(status=QueryOrderStatus.OPEN, symbols=["GE"], side=OrderSide.BUY, nested=True)
    )
    assert [o.id for o in listed] == [placed.id]
    assert client.get_orders(GetOrdersRequest(status="open", symbols=["GE"], side="sell")) == []
    client.cancel_order_by_id(placed.id)
    closed = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED, symbols=["GE"]))
    assert [o.id for o in closed] == [placed.id]


def test_list_pages_past_500_by_moving_until() -> None:
    with SandboxThread(port=0, seed=2, tick_interval=0.02) as sb:
        client = TradingClient(sb.sandbox.key_id, sb.sandbox.secret_key, url_override=sb.url)
        sb.admin("POST", "/admin/seed", {"open_orders": 1203, "positions": 40})
        seen: list[str] = []
        until = None
        pages = 0
        while True:
            page = client.get_orders(GetOrdersRequest(status="open", limit=500, until=until))
            if not page:
                break
            pages += 1
            seen.extend(str(o.id) for o in page)
            until = page[-1].submitted_at
        assert pages == 3 and len(seen) == len(set(seen)) == 1203
        assert sb.sandbox.request_counts["GET /v2/orders"] == 4
        assert len(client.get_all_positions()) == 40


def test_cancel_all_answers_207_with_every_order(client: TradingClient) -> None:
    ids = {
        client.submit_order(LimitOrderRequest(symbol="XOM", qty=1, side="buy", time_in_force="gtc", limit_price=1)).id
        for _ in range(3)
    }
    responses = client.cancel_orders()
    assert ids <= {r.id for r in responses} and {r.status for r in responses} == {200}
    assert client.get_orders(GetOrdersRequest(status="open")) == []


def test_cancel_refusals(client: TradingClient, sandbox: Any) -> None:
    err = api_error(client.cancel_order_by_id, "00000000-0000-4000-8000-000000000000")
    assert (err.status_code, err.code, err.message) == (404, 40410000, "order not found")
    placed = client.submit_order(MarketOrderRequest(symbol="AAPL", qty=1, side="buy", time_in_force="day"))
    wait_final(sandbox, str(placed.id))
    err = api_error(client.cancel_order_by_id, placed.id)
    assert err.status_code == 422


def test_unknown_order_is_404(client: TradingClient) -> None:
    err = api_error(client.get_order_by_id, "00000000-0000-4000-8000-000000000001")
    assert (err.status_code, err.code) == (404, 40410000)
    err = api_error(client.get_order_by_client_id, "never-used")
    assert (err.status_code, err.code) == (404, 40410000)


def test_duplicate_client_order_id_is_422(client: TradingClient, sandbox: Any) -> None:
    body = LimitOrderRequest(
        symbol="BA", qty=1, side="buy", time_in_force="gtc", limit_price=1, client_order_id="dup-1"
    )
    first = client.submit_order(body)
    err = api_error(client.submit_order, body)
    assert (err.status_code, err.code, err.message) == (422, 40010001, "client_order_id must be unique")
    assert sandbox.counts["POST /v2/orders"] >= 2
    client.cancel_order_by_id(first.id)


def test_insufficient_buying_power_is_403(client: TradingClient) -> None:
    err = api_error(
        client.submit_order,
        MarketOrderRequest(symbol="AAPL", qty=1_000_000, side="buy", time_in_force="day"),
    )
    assert (err.status_code, err.code, err.message) == (403, 40310000, "insufficient buying power")


def test_invalid_order_is_422(client: TradingClient) -> None:
    err = api_error(
        client.submit_order,
        LimitOrderRequest(symbol="AAPL", qty=1, side="buy", time_in_force="day", limit_price=10.001),
    )
    assert err.status_code == 422 and "sub-penny" in err.message


def test_bars_page_through_next_page_token(data: StockHistoricalDataClient, sandbox: Any) -> None:
    # A whole minute in the past: the minute under way has a bar only for symbols
    # that printed in it, and it may roll over between two pages.
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    bars = data.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols=["AAPL", "SPY"],
            timeframe=TimeFrame.Minute,
            start=end - timedelta(days=4),
            end=end,
        )
    )
    aapl, spy = bars.data["AAPL"], bars.data["SPY"]
    assert len(aapl) == len(spy) > 5000  # more than one 10,000-bar page in all
    assert sandbox.counts["GET /v2/stocks/bars"] >= 2
    stamps = [b.timestamp for b in aapl]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert all(b.trade_count is not None and b.vwap is not None for b in aapl)
    daily = data.get_stock_bars(
        StockBarsRequest(symbol_or_symbols="AAPL", timeframe=TimeFrame.Day, start=end - timedelta(days=10))
    )
    assert 9 <= len(daily.data["AAPL"]) <= 11


def test_keys_are_checked(sandbox: Any) -> None:
    wrong = TradingClient("SANDBOXKEY", "not-the-secret", url_override=sandbox.url)
    err = api_error(wrong.get_account)
    assert (err.status_code, err.code, err.message) == (401, 40110000, "request is not authorized")
    missing = requests.get(sandbox.url + "/v2/account", timeout=5)
    assert missing.status_code == 403 and missing.json() == {"message": "forbidden."}
    data = StockHistoricalDataClient("nope", "nope", url_override=sandbox.url)
    err = api_error(data.get_stock_bars, StockBarsRequest(symbol_or_symbols="AAPL", timeframe=TimeFrame.Minute))
    assert err.status_code == 401


def test_refuse_auth_fault(sandbox: Any, client: TradingClient) -> None:
    sandbox.set_faults(refuse_auth=True)
    err = api_error(client.get_clock)
    assert (err.status_code, err.code) == (401, 40110000)


def test_rest_status_fault_for_n_requests(sandbox: Any, client: TradingClient) -> None:
    sandbox.set_faults(rest_status=503, rest_count=2)
    for _ in range(2):
        err = api_error(client.get_account)
        assert err.status_code == 503 and err.code == 50310000
    assert client.get_account().status == "ACTIVE"


def test_retried_statuses_recover_within_the_sdk_retries(sandbox: Any) -> None:
    client = TradingClient(sandbox.key_id, sandbox.secret_key, url_override=sandbox.url)
    client._retry_wait = 0  # the retry path is under test, not its 3 s sleep
    before = sandbox.counts["GET /v2/clock"]
    sandbox.set_faults(rest_status=429, rest_count=2)
    assert client.get_clock().is_open
    assert sandbox.counts["GET /v2/clock"] - before == 3


def test_rest_count_zero_means_every_request_until_switched_off(sandbox: Any, client: TradingClient) -> None:
    sandbox.set_faults(rest_status=500, rest_count=0)
    for _ in range(3):
        assert api_error(client.get_all_positions).status_code == 500
    assert api_error(client.get_clock).status_code == 500
    sandbox.set_faults(rest_status=None)
    assert isinstance(client.get_all_positions(), list)


def test_drop_after_accept_records_the_order(sandbox: Any, client: TradingClient) -> None:
    sandbox.set_faults(drop_after_accept=1)
    before = sandbox.counts["POST /v2/orders"]
    with pytest.raises(requests.exceptions.ConnectionError):
        client.submit_order(
            LimitOrderRequest(
                symbol="JPM", qty=1, side="buy", time_in_force="gtc", limit_price=1, client_order_id="lost-1"
            )
        )
    assert sandbox.counts["POST /v2/orders"] == before + 1
    recorded = client.get_order_by_client_id("lost-1")
    assert recorded.status == OrderStatus.NEW
    assert sandbox.faults.drop_after_accept == 0
    client.cancel_order_by_id(recorded.id)


def test_admin_routes(sandbox: Any) -> None:
    assert sandbox.admin("GET", "/admin/faults")["rest_status"] is None
    changed = sandbox.set_faults(mute_data=True, drop_trading_every=2)
    assert changed["mute_data"] is True and changed["drop_trading_every"] == 2.0
    with pytest.raises(Exception) as bad:
        sandbox.set_faults(mute_data="yes")
    assert "422" in str(bad.value)
    assert sandbox.set_faults()["mute_data"] is True  # refused update changed nothing
    sandbox.set_price("AAPL", 123.45)
    assert sandbox.call(lambda: sandbox.broker.price("AAPL")) > 100
    assert sandbox.admin("POST", "/admin/step", {"n": 3}) == {"steps": 3}
    stats = sandbox.admin("GET", "/admin/stats")
    assert stats["requests"]["POST /admin/price"] >= 1 and "AAPL" in stats["symbols"]


def test_replace_order(client: TradingClient, sandbox: Any) -> None:
    placed = client.submit_order(LimitOrderRequest(symbol="GLD", qty=2, side="buy", time_in_force="gtc", limit_price=1))
    new = client.replace_order_by_id(placed.id, ReplaceOrderRequest(qty=3, limit_price=1.5))
    assert new.replaces == placed.id and float(new.qty) == 3 and float(new.limit_price) == 1.5
    assert client.get_order_by_id(placed.id).status == OrderStatus.REPLACED
    assert sandbox.counts["PATCH /v2/orders/{order_id}"] == 1
    client.cancel_order_by_id(new.id)


def test_close_positions(client: TradingClient, sandbox: Any) -> None:
    placed = client.submit_order(MarketOrderRequest(symbol="DIA", qty=4, side="buy", time_in_force="day"))
    wait_final(sandbox, str(placed.id))
    closing = client.close_position("DIA", ClosePositionRequest(qty="1"))
    assert closing.side == OrderSide.SELL and float(closing.qty) == 1
    wait_final(sandbox, str(closing.id))
    results = client.close_all_positions(cancel_orders=True)
    assert results and all(r.status == 200 for r in results)
    err = api_error(client.close_position, "NOPE")
    assert err.status_code == 404


def test_admin_halt_rejects_and_expire_ends_day_orders(client: TradingClient, sandbox: Any) -> None:
    sandbox.admin("POST", "/admin/halt", {"symbol": "AMD"})
    placed = client.submit_order(MarketOrderRequest(symbol="AMD", qty=1, side="buy", time_in_force="day"))
    assert wait_final(sandbox, str(placed.id))["status"] == "rejected"
    assert sandbox.admin("POST", "/admin/halt", {"symbol": "AMD", "halted": False}) == {"halted": []}
    day = client.submit_order(LimitOrderRequest(symbol="AMD", qty=1, side="buy", time_in_force="day", limit_price=1))
    assert sandbox.admin("POST", "/admin/expire")["expired"] >= 1
    assert client.get_order_by_id(day.id).status == OrderStatus.EXPIRED


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_serve_command_announces_serves_and_stops(signum: int, code: int) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "alpaca_cli",
            "sandbox",
            "serve",
            "--port",
            "0",
            "--seed",
            "3",
            "--key-id",
            "K1",
            "--secret-key",
            "S1",
            "--rest-status",
            "503",
            "--rest-count",
            "1",
            "--always-open",  # the test runs at any hour
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        lines: list[str] = []
        while not any(line.startswith("export ALPACA_CLI_SANDBOX_URL=") for line in lines):
            line = proc.stderr.readline()
            assert line, "".join(lines)
            lines.append(line)
        url = lines[-1].strip().split("=", 1)[1]
        assert any("K1" in line for line in lines) and any("S1" in line for line in lines)
        client = TradingClient("K1", "S1", url_override=url)
        assert api_error(client.get_clock).status_code == 503  # the --rest-count fault
        assert client.get_clock().is_open
        started = time.monotonic()
        proc.send_signal(signum)
        assert proc.wait(timeout=5) == code
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_admin_market_and_reset() -> None:
    with SandboxThread(port=0, seed=4, tick_interval=0.02) as sb:
        client = TradingClient(sb.sandbox.key_id, sb.sandbox.secret_key, url_override=sb.url)
        client.submit_order(LimitOrderRequest(symbol="NVDA", qty=1, side="buy", time_in_force="gtc", limit_price=1))
        assert sb.admin("POST", "/admin/market", {"open": False})["is_open"] is False
        assert client.get_clock().is_open is False
        sb.admin("POST", "/admin/faults", {"mute_data": True})
        account = sb.admin("POST", "/admin/reset", {"cash": 5000})
        assert account["cash"] == "5000" and sb.sandbox.faults.mute_data is False
        assert client.get_orders() == [] and client.get_all_positions() == []
        assert "NVDA" in sb.call(sb.sandbox.broker.symbols)  # still walks for open streams
