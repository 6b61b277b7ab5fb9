"""Fidelity: the sandbox's answers parse into the unmodified alpaca-py models, field for field.

Every object is fetched raw, then built with the SDK's own model class; the
raw JSON must carry every field the model defines (by its wire name), so a
script that reads any attribute gets a real value or an explicit null. Also
here: the trade stream on `/stream/`, real ids, the asset list and its
refusals, JSON errors on every path, and the flags and admin switches agreeing.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import queue
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.mappings import QUOTE_MAPPING, SNAPSHOT_MAPPING, TRADE_MAPPING
from alpaca.data.models import Quote, Snapshot, Trade
from alpaca.data.models.bars import Bar
from alpaca.data.requests import (
    StockBarsRequest,
    StockLatestBarRequest,
    StockLatestQuoteRequest,
    StockLatestTradeRequest,
    StockQuotesRequest,
    StockSnapshotRequest,
    StockTradesRequest,
)
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.models import (
    AccountConfiguration,
    Asset,
    Calendar,
    Clock,
    NonTradeActivity,
    Order,
    PortfolioHistory,
    Position,
    TradeAccount,
    TradeActivity,
    TradeUpdate,
    Watchlist,
)
from alpaca.trading.requests import (
    CreateWatchlistRequest,
    GetOrderByIdRequest,
    GetOrdersRequest,
    GetPortfolioHistoryRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    StopLossRequest,
    TakeProfitRequest,
    UpdateWatchlistRequest,
)
from alpaca.trading.stream import TradingStream
from pydantic import BaseModel

from alpaca_cli import cli
from alpaca_cli.commands import sandbox as sandbox_command
from alpaca_cli.sandbox.calendar import NEW_YORK
from alpaca_cli.sandbox.faults import Faults, Switch, readme_table, switches
from alpaca_cli.sandbox.server import SandboxThread

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def client(sandbox: Any) -> TradingClient:
    return TradingClient(sandbox.key_id, sandbox.secret_key, paper=True, url_override=sandbox.url)


@pytest.fixture(scope="module")
def data(sandbox: Any) -> StockHistoricalDataClient:
    return StockHistoricalDataClient(sandbox.key_id, sandbox.secret_key, url_override=sandbox.url)


def raw(sandbox: Any, path: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        sandbox.url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "APCA-API-KEY-ID": sandbox.key_id,
            "APCA-API-SECRET-KEY": sandbox.secret_key,
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wire_names(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def complete(model: type[BaseModel], body: dict[str, Any], removed: frozenset[str] = frozenset()) -> BaseModel:
    """Parse `body` with the SDK's model after checking it names every field the model has.

    `removed`: fields the model still defines but Alpaca's changelog says the API no longer sends.
    """
    missing = wire_names(model) - removed - set(body)
    assert not missing, f"{model.__name__} lacks {sorted(missing)}"
    assert not removed & set(body), f"{model.__name__} sends removed {sorted(removed & set(body))}"
    return model(**body)


def wait_for(sandbox: Any, check: Callable[[], bool], what: str, timeout: float = 10) -> None:
    """Poll `check` on the sandbox's own loop (no HTTP, so no rate-limit budget) until it holds."""
    deadline = time.monotonic() + timeout
    while not sandbox.call(check):
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def status_of(sandbox: Any, order_id: Any) -> str:
    return sandbox.call(lambda: sandbox.broker.get_order(str(order_id)))["status"]


def filled_order(client: TradingClient, sandbox: Any, symbol: str, qty: int = 3) -> Order:
    placed = client.submit_order(MarketOrderRequest(symbol=symbol, qty=qty, side="buy", time_in_force="day"))
    deadline = time.monotonic() + 10
    while client.get_order_by_id(placed.id).status != "filled":
        assert time.monotonic() < deadline, "order did not fill"
        time.sleep(0.05)
    return placed


def test_rest_objects_parse_into_the_sdk_models(sandbox: Any, client: TradingClient) -> None:
    order = filled_order(client, sandbox, "XOM")
    # Alpaca removed the pattern-day-trading fields from the account on 2026-07-06.
    pdt = frozenset({"daytrade_count", "daytrading_buying_power", "pattern_day_trader"})
    account = complete(TradeAccount, raw(sandbox, "/v2/account")[1], removed=pdt)
    assert account.status == "ACTIVE" and account.pending_transfer_out == "0"
    got = complete(Order, raw(sandbox, f"/v2/orders/{order.id}")[1])
    assert got.status == "filled" and got.ratio_qty is None
    position = complete(Position, raw(sandbox, "/v2/positions/XOM")[1])
    assert position.swap_rate == "1" and position.usd is not None
    assert position.usd.cost_basis == position.cost_basis
    complete(Clock, raw(sandbox, "/v2/clock")[1])
    days = raw(sandbox, "/v2/calendar?start=2026-12-21&end=2026-12-31")[1]
    assert [complete(Calendar, day).date.isoformat() for day in days][:4] == [
        "2026-12-21",
        "2026-12-22",
        "2026-12-23",
        "2026-12-24",
    ]
    asset = complete(Asset, raw(sandbox, "/v2/assets/AAPL")[1])
    assert asset.exchange == "NASDAQ" and asset.fractionable and asset.tradable
    bars = raw(sandbox, "/v2/stocks/bars?symbols=XOM&timeframe=1Day&limit=3&feed=iex")[1]["bars"]["XOM"]
    for body in bars:
        assert set(body) == {"t", "o", "h", "l", "c", "v", "n", "vw"} and isinstance(body["v"], int)
        assert Bar("XOM", body).volume == body["v"]


def test_cost_basis_is_qty_times_the_published_average(sandbox: Any, client: TradingClient) -> None:
    for price in ("101.37", "99.91", "100.03"):
        sandbox.set_price("KO", price)
        filled_order(client, sandbox, "KO", qty=7)
    position = client.get_open_position("KO")
    expected = (Decimal(position.qty) * Decimal(position.avg_entry_price)).quantize(Decimal("0.0001"))
    assert Decimal(position.cost_basis) == expected


def test_ids_are_random_uuid4s_that_never_repeat_across_resets(sandbox: Any, client: TradingClient) -> None:
    seen: set[str] = set()
    for _ in range(2):
        sandbox.reset()
        order = filled_order(client, sandbox, "JPM", qty=1)
        for value in (str(order.id), order.client_order_id):
            assert UUID4.match(value), value
            assert value not in seen
            seen.add(value)
    assert len(seen) == 4


def test_asset_list_filters_and_refusals(sandbox: Any, client: TradingClient) -> None:
    status, listed = raw(sandbox, "/v2/assets")
    assert status == 200 and len(listed) > 300
    for body in listed[:5]:
        complete(Asset, body)
    arca = raw(sandbox, "/v2/assets?exchange=ARCA&status=active")[1]
    assert "SPY" in {a["symbol"] for a in arca} and {a["exchange"] for a in arca} == {"ARCA"}
    inactive = raw(sandbox, "/v2/assets?status=inactive")[1]
    assert inactive and not any(a["tradable"] for a in inactive)
    crypto = raw(sandbox, "/v2/assets?asset_class=crypto")[1]
    assert {"BTC/USD", "ETH/USD"} <= {a["symbol"] for a in crypto} and {a["class"] for a in crypto} == {"crypto"}
    assert not any(a["shortable"] or a["marginable"] for a in crypto)
    complete(Asset, crypto[0])
    assert all(a["class"] == "us_equity" for a in listed)
    by_id = raw(sandbox, "/v2/assets/" + listed[0]["id"])[1]
    assert by_id["symbol"] == listed[0]["symbol"]
    assert raw(sandbox, "/v2/assets/ZZZZZ") == (404, {"code": 40410000, "message": "asset not found for ZZZZZ"})
    for symbol, message in (("ZZZZZ", 'asset "ZZZZZ" not found'), (inactive[0]["symbol"], "is not tradable")):
        with pytest.raises(APIError) as info:
            client.submit_order(MarketOrderRequest(symbol=symbol, qty=1, side="buy", time_in_force="day"))
        assert info.value.status_code == 422 and info.value.code == 40010001 and message in info.value.message


def test_unknown_paths_answer_json_errors(sandbox: Any) -> None:
    for path in ("/v2/nope", "/v3/nope", "/v3/calendar", "/nowhere", "/admin/nope"):
        assert raw(sandbox, path) == (404, {"code": 40410000, "message": "endpoint not found"}), path


@contextlib.contextmanager
def sdk_trade_stream(sandbox: Any, path: str) -> Iterator[queue.Queue[Any]]:
    """alpaca-py's own `TradingStream` on `path`, listening; yields the queue its updates land in."""
    updates: queue.Queue[Any] = queue.Queue()

    async def on_update(update: Any) -> None:
        updates.put(update)

    ws = "ws" + sandbox.url.removeprefix("http") + path
    stream = TradingStream(sandbox.key_id, sandbox.secret_key, paper=True, url_override=ws)
    stream.subscribe_trade_updates(on_update)
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while [c.get("streams") for c in sandbox.admin("GET", "/admin/streams")["trading"]] != [["trade_updates"]]:
            assert time.monotonic() < deadline, f"the SDK never listened on {path}"
            time.sleep(0.02)
        yield updates
    finally:
        while stream._loop is None:
            time.sleep(0.02)
        stream.stop()
        sandbox.admin("POST", "/admin/drop", {"stream": "trading"})
        thread.join(8)


def test_trade_stream_on_the_trailing_slash_path(sandbox: Any, client: TradingClient) -> None:
    with sdk_trade_stream(sandbox, "/stream/") as updates:
        order = client.submit_order(MarketOrderRequest(symbol="GE", qty=1, side="buy", time_in_force="day"))
        update = updates.get(timeout=10)
        assert str(update.order.id) == str(order.id) and update.event == "new"


def test_leg_updates_reach_the_sdk_trade_stream(sandbox: Any, client: TradingClient) -> None:
    filled_order(client, sandbox, "UNH", qty=2)
    # Nothing fills: the walk stays within 4 % of 500, far from both exits. (Halting the symbol
    # instead would have the next tick reject the fresh OCO before the test cancels it: flaky.)
    sandbox.set_price("UNH", 500)
    with sdk_trade_stream(sandbox, "/stream") as updates:
        oco = client.submit_order(
            LimitOrderRequest(
                symbol="UNH",
                qty=2,
                side=OrderSide.SELL,
                limit_price=550,
                time_in_force=TimeInForce.GTC,
                order_class=OrderClass.OCO,
                take_profit=TakeProfitRequest(limit_price=550),
                stop_loss=StopLossRequest(stop_price=450),
            )
        )
        client.cancel_order_by_id(oco.legs[0].id)
        seen = [updates.get(timeout=10) for _ in range(4)]
    assert [(u.event, u.order.id, u.order.order_class) for u in seen] == [
        ("new", oco.id, OrderClass.OCO),
        ("new", oco.legs[0].id, OrderClass.OCO),
        ("canceled", oco.legs[0].id, OrderClass.OCO),
        ("canceled", oco.id, OrderClass.OCO),
    ]


# ------------------------------------------------- flags and admin switches agree


def _serve_options(monkeypatch: pytest.MonkeyPatch, *flags: str) -> dict[str, Any]:
    """The Sandbox options `alpaca-cli sandbox serve` would start with, given these flags."""
    captured: dict[str, Any] = {}

    async def fake_serve(options: dict[str, Any]) -> int:
        captured.update(options)
        return 0

    monkeypatch.setattr(sandbox_command, "_serve", fake_serve)
    assert _exit_code("sandbox", "serve", *flags) == 0
    return captured


def _exit_code(*argv: str) -> int:
    with pytest.raises(SystemExit) as info:
        cli.main(list(argv))
    return int(info.value.code or 0)


def sample_flag(switch: Switch) -> tuple[list[str], Any]:
    """A flag of `sandbox serve` for one fault switch, and the value it sets."""
    if switch.kind is bool:
        return [switch.flag], True
    value = switch.kind(switch.high if switch.high is not None else (switch.low or 0) + 2)
    return [switch.flag, str(value)], value


def test_every_fault_switch_is_a_serve_flag_of_the_same_name_and_meaning(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert [s.name for s in switches()] == list(Faults().as_dict())
    for switch in switches():
        flags, value = sample_flag(switch)
        from_flag = _serve_options(monkeypatch, *flags)["faults"]
        from_admin = Faults()
        from_admin.update(**{switch.name: value})
        assert from_flag == from_admin != Faults(), switch.name
        assert sandbox.set_faults(**{switch.name: value})[switch.name] == value
        sandbox.call(sandbox.sandbox.faults.reset)


def test_the_readme_lists_every_fault_switch_as_the_fields_say() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert readme_table() in readme
    assert all(f"`{s.flag}" in readme_table() for s in switches())


def test_rest_count_zero_means_all_from_the_flag_and_the_admin_route(
    sandbox: Any, client: TradingClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_flag = _serve_options(monkeypatch, "--rest-status", "503", "--rest-count", "0")["faults"]
    sandbox.set_faults(rest_status=503, rest_count=0)
    assert sandbox.call(lambda: sandbox.sandbox.faults) == from_flag
    for _ in range(5):
        with pytest.raises(APIError) as info:
            client.get_account()
        assert info.value.status_code == 503
    sandbox.set_faults(rest_status=503, rest_count=2)
    statuses = [raw(sandbox, "/v2/clock")[0] for _ in range(3)]
    assert statuses == [503, 503, 200]


def test_serve_flags_for_the_clock_and_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    options = _serve_options(monkeypatch, "--always-open", "--rate-limit", "0", "--now", "2026-12-24T15:00:00Z")
    assert options["always_open"] is True and options["rate_limit"] == 0
    assert options["now"].isoformat() == "2026-12-24T15:00:00+00:00"
    strict = _serve_options(monkeypatch)
    assert strict["always_open"] is False and strict["market_closed"] is False and strict["rate_limit"] == 200
    assert _exit_code("sandbox", "serve", "--always-open", "--market-closed") == 2
    assert _exit_code("sandbox", "serve", "--now", "yesterday") == 2


def test_admin_clock_now_runs_on_from_the_given_instant() -> None:
    with SandboxThread(port=0, now=datetime.fromisoformat("2026-12-24T15:00:00Z")) as sb:
        state = sb.admin("GET", "/admin/clock")
        assert state["now"].startswith("2026-12-24T15:00") and state["clock"]["is_open"] is True
        moved = sb.admin("POST", "/admin/clock", {"now": "2026-12-25T15:00:00Z"})
        assert moved["clock"]["is_open"] is False and moved["clock"]["next_open"] == "2026-12-28T09:30:00-05:00"
        back = sb.admin("POST", "/admin/clock", {"now": None})
        assert abs(datetime.fromisoformat(back["now"]).timestamp() - time.time()) < 5


# ------------------------------------------------------------ market data


def halt(sandbox: Any, *symbols: str) -> None:
    """Freeze symbols (no prints) so answers fetched one after another agree; undone after the test."""
    for symbol in symbols:
        sandbox.admin("POST", "/admin/halt", {"symbol": symbol, "halted": True})


def test_latest_trades_quotes_and_bars_parse_into_the_sdk_models(
    sandbox: Any, client: TradingClient, data: StockHistoricalDataClient
) -> None:
    filled_order(client, sandbox, "PEP")
    halt(sandbox, "PEP", "WMT")
    both = ["PEP", "WMT"]  # PEP printed since the sandbox started; WMT only has history
    trades = data.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols=both))
    quotes = data.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols=both))
    bars = data.get_stock_latest_bar(StockLatestBarRequest(symbol_or_symbols=both))
    assert set(trades) == set(quotes) == set(bars) == set(both)
    for symbol in both:
        trade, quote = trades[symbol], quotes[symbol]
        assert quote.timestamp == trade.timestamp and quote.bid_price < trade.price < quote.ask_price
        assert bars[symbol].low <= trade.price <= bars[symbol].high
    for kind, key, model, mapping in (
        ("trades", "trade", Trade, TRADE_MAPPING),
        ("quotes", "quote", Quote, QUOTE_MAPPING),
        ("bars", "bar", Bar, {"t": 0, "o": 0, "h": 0, "l": 0, "c": 0, "v": 0, "n": 0, "vw": 0}),
    ):
        status, body = raw(sandbox, f"/v2/stocks/pep/{kind}/latest?feed=iex")
        assert status == 200 and body["symbol"] == "PEP" and set(body[key]) == set(mapping), kind
        model("PEP", body[key])
        status, many = raw(sandbox, f"/v2/stocks/{kind}/latest?symbols=PEP,ZZZZZ")
        assert status == 200 and set(many[kind]) == {"PEP"}, kind
        assert raw(sandbox, f"/v2/stocks/ZZZZZ/{kind}/latest") == (
            404,
            {"code": 40410000, "message": f"no {key} found for ZZZZZ"},
        )
    assert raw(sandbox, "/v2/stocks/trades/latest")[0] == 400
    assert raw(sandbox, "/v2/stocks/PEP/trades/latest?feed=nasdaq")[0] == 400


def test_snapshots_one_and_many(sandbox: Any, data: StockHistoricalDataClient) -> None:
    halt(sandbox, "KO", "MO")
    snapshots = data.get_stock_snapshot(StockSnapshotRequest(symbol_or_symbols=["KO", "MO"]))
    assert set(snapshots) == {"KO", "MO"}
    for snapshot in snapshots.values():
        assert None not in (snapshot.latest_trade, snapshot.latest_quote, snapshot.minute_bar)
        assert snapshot.daily_bar.timestamp > snapshot.previous_daily_bar.timestamp
        assert snapshot.latest_quote.bid_price < snapshot.latest_trade.price < snapshot.latest_quote.ask_price
    body = raw(sandbox, "/v2/stocks/KO/snapshot")[1]
    stock_keys = {"latestTrade", "latestQuote", "minuteBar", "dailyBar", "prevDailyBar"}
    assert stock_keys <= set(SNAPSHOT_MAPPING) and set(body) == {"symbol", *stock_keys}
    assert Snapshot("KO", body).latest_trade.price == snapshots["KO"].latest_trade.price
    assert raw(sandbox, "/v2/stocks/snapshots?symbols=KO,ZZZZZ")[1].keys() == {"KO"}
    assert raw(sandbox, "/v2/stocks/ZZZZZ/snapshot")[0] == 404


def test_historical_trades_and_quotes_page_and_follow_the_bars(sandbox: Any, data: StockHistoricalDataClient) -> None:
    halt(sandbox, "CL", "GIS")
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(minutes=20)
    symbols = ["CL", "GIS"]
    trades = data.get_stock_trades(StockTradesRequest(symbol_or_symbols=symbols, start=start, end=end)).data
    quotes = data.get_stock_quotes(StockQuotesRequest(symbol_or_symbols=symbols, start=start, end=end)).data
    bars = data.get_stock_bars(
        StockBarsRequest(symbol_or_symbols=symbols, timeframe=TimeFrame.Minute, start=start, end=end)
    ).data
    for symbol in symbols:
        assert len(trades[symbol]) >= 20 and len(quotes[symbol]) == len(trades[symbol])
        # Minutes are real minutes before the sandbox started, its bar interval since.
        starts = [bar.timestamp for bar in bars[symbol]]
        for trade, quote in zip(trades[symbol], quotes[symbol], strict=True):
            bar = bars[symbol][bisect.bisect_right(starts, trade.timestamp) - 1]
            assert bar.low <= trade.price <= bar.high and start <= trade.timestamp <= end
            assert quote.timestamp == trade.timestamp and quote.bid_price < trade.price < quote.ask_price
        inside = bars[symbol][1:-1]  # whole minutes of the window: every share of the bar printed
        volume = sum(t.size for t in trades[symbol] if inside[0].timestamp <= t.timestamp < bars[symbol][-1].timestamp)
        assert volume == sum(b.volume for b in inside)
        times = [t.timestamp for t in trades[symbol]]
        assert times == sorted(times) and len(set(times)) == len(times)
    # Paged by hand, 7 at a time: the same trades, none twice.
    window = f"start={start.isoformat().replace('+00:00', 'Z')}&end={end.isoformat().replace('+00:00', 'Z')}"
    paged: list[tuple[str, str]] = []
    token = ""
    for _ in range(40):
        status, page = raw(sandbox, f"/v2/stocks/trades?symbols=CL,GIS&{window}&limit=50{token}")
        assert status == 200 and sum(len(v) for v in page["trades"].values()) <= 50
        for symbol, items in page["trades"].items():
            for item in items:
                assert set(item) == set(TRADE_MAPPING)
                paged.append((symbol, item["t"]))
        if page["next_page_token"] is None:
            break
        token = "&page_token=" + page["next_page_token"]
    expected = [(s, t.timestamp) for s in symbols for t in trades[s]]
    assert [(s, datetime.fromisoformat(t.replace("Z", "+00:00"))) for s, t in paged] == expected
    status, one = raw(sandbox, f"/v2/stocks/CL/quotes?{window}&limit=3&sort=desc")
    assert status == 200 and one["symbol"] == "CL" and len(one["quotes"]) == 3 and one["next_page_token"]
    assert set(one["quotes"][0]) == set(QUOTE_MAPPING) and one["quotes"][0]["t"] > one["quotes"][2]["t"]
    assert raw(sandbox, f"/v2/stocks/CL/trades?{window}&limit=0")[0] == 422
    assert raw(sandbox, f"/v2/stocks/CL/trades?{window}&page_token=bogus")[0] == 422


def test_trades_follow_the_calendar_and_the_seed() -> None:
    """A strict sandbox on a Sunday: Friday's trades lie in its extended hours, none on the weekend."""
    sunday = datetime(2026, 12, 6, 17, 0, tzinfo=UTC)
    start, end = datetime(2026, 12, 4, 5, 0, tzinfo=UTC), datetime(2026, 12, 6, 17, 0, tzinfo=UTC)
    answers = []
    for seed in (11, 11, 12):
        with SandboxThread(port=0, seed=seed, now=sunday) as sb:
            market = StockHistoricalDataClient("SANDBOXKEY", "SANDBOXSECRET", url_override=sb.url)
            found = market.get_stock_trades(StockTradesRequest(symbol_or_symbols="IBM", start=start, end=end))
            answers.append([(t.timestamp, t.price, t.size) for t in found.data["IBM"]])
    same, again, other = answers
    assert same == again and same != other
    local = [t.astimezone(NEW_YORK) for t, _, _ in same]
    assert {t.date().isoformat() for t in local} == {"2026-12-04"}
    assert min(local).time() >= datetime(2026, 1, 1, 4).time() and max(local).time() < datetime(2026, 1, 1, 20).time()


# --------------------------------------------------------------- account


ACTIVITY_ID = re.compile(r"^\d{17}::[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_account_activities_are_fills_and_the_deposit_paged_by_id(sandbox: Any, client: TradingClient) -> None:
    sandbox.reset()
    placed = client.submit_order(MarketOrderRequest(symbol="KO", qty=250, side="buy", time_in_force="day"))
    wait_for(sandbox, lambda: sandbox.broker.get_order(str(placed.id))["status"] == "filled", "no fill")
    status, listed = raw(sandbox, "/v2/account/activities")
    assert status == 200 and [a["activity_type"] for a in listed] == ["FILL", "FILL", "FILL", "CSD"]
    for body in listed:
        assert ACTIVITY_ID.match(body["id"]), body["id"]
        model = TradeActivity if body["activity_type"] == "FILL" else NonTradeActivity
        complete(model, body)
    fills = [TradeActivity(**a) for a in listed[:3]][::-1]
    assert [(f.type.value, f.qty, f.cum_qty, f.leaves_qty) for f in fills] == [
        ("partial_fill", 100, 100, 150),
        ("partial_fill", 100, 200, 50),
        ("fill", 50, 250, 0),
    ]
    assert {str(f.order_id) for f in fills} == {str(placed.id)} and fills[-1].order_status == "filled"
    deposit = NonTradeActivity(**listed[-1])
    assert deposit.net_amount == 100000 and deposit.status == "executed"
    for direction, expected in (("desc", listed), ("asc", listed[::-1])):
        ids, token = [], ""
        while True:
            page = raw(sandbox, f"/v2/account/activities?direction={direction}&page_size=1{token}")[1]
            if not page:
                break
            ids.append(page[0]["id"])
            token = "&page_token=" + page[0]["id"]
        assert ids == [a["id"] for a in expected], direction
    assert [a["activity_type"] for a in raw(sandbox, "/v2/account/activities/CSD")[1]] == ["CSD"]
    assert len(raw(sandbox, "/v2/account/activities?activity_types=FILL,CSD")[1]) == 4
    assert len(raw(sandbox, "/v2/account/activities?category=trade_activity")[1]) == 3
    after = listed[1]["transaction_time"]
    assert [a["id"] for a in raw(sandbox, f"/v2/account/activities?after={after}")[1]] == [listed[0]["id"]]
    today = listed[0]["transaction_time"][:10]
    assert len(raw(sandbox, f"/v2/account/activities/FILL?date={today}")[1]) == 3
    assert raw(sandbox, "/v2/account/activities/NOPE") == (
        422,
        {"code": 40010001, "message": "invalid activity type: NOPE"},
    )
    assert raw(sandbox, "/v2/account/activities?page_size=101")[0] == 422
    assert raw(sandbox, "/v2/account/activities?page_token=nope")[0] == 422


def test_portfolio_history_agrees_with_the_account(sandbox: Any, client: TradingClient) -> None:
    filled_order(client, sandbox, "XOM")
    halt(sandbox, "XOM", "KO")
    daily = client.get_portfolio_history(GetPortfolioHistoryRequest(period="1W", timeframe="1D"))
    account = client.get_account()
    assert len(daily.timestamp) >= 3 and daily.timeframe == "1D"
    assert daily.equity[-1] == float(account.equity) and daily.base_value == float(account.last_equity)
    assert daily.profit_loss[-1] == pytest.approx(float(account.equity) - float(account.last_equity))
    status, body = raw(sandbox, "/v2/account/portfolio/history?period=1W&timeframe=1D")
    assert status == 200 and complete(PortfolioHistory, body) is not None
    assert "base_value_asof" in body
    intraday = client.get_portfolio_history(GetPortfolioHistoryRequest(period="5D", timeframe="15Min"))
    steps = {b - a for a, b in zip(intraday.timestamp, intraday.timestamp[1:], strict=False)}
    assert 900 in steps and all(t <= time.time() for t in intraday.timestamp)
    week_ago = datetime.now(UTC) - timedelta(days=7)
    since = client.get_portfolio_history(GetPortfolioHistoryRequest(start=week_ago, timeframe="1H"))
    assert all(t >= week_ago.timestamp() for t in since.timestamp) and since.timeframe == "1H"
    both = "start=2026-01-05T00:00:00Z&end=2026-01-09T00:00:00Z&period=1W"
    for query in ("timeframe=2Min", "period=40D&timeframe=1Min", "period=W", both):
        assert raw(sandbox, f"/v2/account/portfolio/history?{query}")[0] == 422, query


def test_account_configurations_are_stored_and_checked(sandbox: Any, client: TradingClient) -> None:
    status, body = raw(sandbox, "/v2/account/configurations")
    # Removed from the Trading API on 2026-07-06 (Alpaca's changelog: the end of pattern day trading).
    stored = complete(AccountConfiguration, body, removed=frozenset({"dtbp_check", "pdt_check"}))
    assert status == 200 and isinstance(stored, AccountConfiguration)
    stored.no_shorting = True
    stored.max_margin_multiplier = "1"
    updated = client.set_account_configurations(stored)
    assert updated.no_shorting and updated.max_margin_multiplier == "1"
    assert client.get_account_configurations() == updated
    for bad in ({"max_margin_multiplier": "3"}, {"no_shorting": "yes"}, {"colour": "red"}):
        assert raw(sandbox, "/v2/account/configurations", "PATCH", bad)[0] == 422, bad


def test_watchlists_by_id_and_by_name(sandbox: Any, client: TradingClient) -> None:
    made = client.create_watchlist(CreateWatchlistRequest(name="fidelity", symbols=["AAPL", "spy"]))
    assert [a.symbol for a in made.assets] == ["AAPL", "SPY"]
    status, body = raw(sandbox, f"/v2/watchlists/{made.id}")
    assert status == 200 and complete(Watchlist, body).name == "fidelity"
    listed = client.get_watchlists()
    assert made.id in {w.id for w in listed} and all(w.assets is None for w in listed)
    assert [a.symbol for a in client.add_asset_to_watchlist_by_id(made.id, "MSFT").assets] == ["AAPL", "SPY", "MSFT"]
    assert [a.symbol for a in client.remove_asset_from_watchlist_by_id(made.id, "SPY").assets] == ["AAPL", "MSFT"]
    renamed = client.update_watchlist_by_id(made.id, UpdateWatchlistRequest(name="renamed", symbols=["IBM"]))
    assert renamed.name == "renamed" and [a.symbol for a in renamed.assets] == ["IBM"]
    by_name = raw(sandbox, "/v2/watchlists:by_name?name=renamed", "POST", {"symbol": "KO"})[1]
    assert by_name["id"] == str(made.id) and [a["symbol"] for a in by_name["assets"]] == ["IBM", "KO"]
    assert raw(sandbox, "/v2/watchlists", "POST", {"name": "renamed"})[0] == 422
    assert raw(sandbox, "/v2/watchlists", "POST", {"name": "x", "symbols": ["ZZZZZ"]})[0] == 422
    assert raw(sandbox, "/v2/watchlists:by_name?name=renamed", "DELETE") == (204, None)
    with pytest.raises(APIError) as info:
        client.get_watchlist_by_id(made.id)
    assert info.value.status_code == 404 and info.value.code == 40410000


def test_v3_clock_and_calendar() -> None:
    """Fields of Alpaca's multi-market clock and calendar (the SDK has no method or model for them)."""
    saturday = datetime(2026, 12, 5, 15, 0, tzinfo=UTC)
    with SandboxThread(port=0, now=saturday) as sb:
        status, body = raw(sb.sandbox, "/v3/clock")
        (clock,) = body["clocks"]
        assert status == 200 and clock["market"]["mic"] == "XNYS"
        assert set(clock) == {
            "market",
            "timestamp",
            "is_open",
            "is_market_day",
            "phase",
            "phase_until",
            "next_market_open",
            "next_market_close",
        }
        assert (clock["is_open"], clock["is_market_day"], clock["phase"]) == (False, False, "closed")
        assert clock["next_market_open"] == "2026-12-07T09:30:00-05:00"
        assert clock["phase_until"] == "2026-12-07T04:00:00-05:00"
        monday_early = raw(sb.sandbox, "/v3/clock?time=2026-12-07T13:00:00Z")[1]["clocks"][0]
        assert (monday_early["phase"], monday_early["phase_until"]) == ("pre", "2026-12-07T09:30:00-05:00")
        status, days = raw(sb.sandbox, "/v3/calendar/NYSE?start=2026-11-25&end=2026-11-30")
        assert [d["date"] for d in days["calendar"]] == ["2026-11-25", "2026-11-27", "2026-11-30"]
        assert days["calendar"][1]["core_end"] == "2026-11-27T13:00:00-05:00"
        assert raw(sb.sandbox, "/v3/calendar/XLON")[0] == 400
        assert raw(sb.sandbox, "/v3/clock?markets=NYSE,XLON")[0] == 400
        assert sb.sandbox.request_counts["GET /v3/clock"] == 3


# ------------------------------------------------------------ group orders


def test_bracket_through_the_sdk_held_then_live_then_one_exit(sandbox: Any, client: TradingClient) -> None:
    updates: list[TradeUpdate] = []
    sandbox.call(lambda: sandbox.broker.listeners.append(lambda e: updates.append(TradeUpdate(**e))))
    sandbox.set_price("CVX", 150)
    placed = client.submit_order(
        MarketOrderRequest(
            symbol="CVX",
            qty=5,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            order_class=OrderClass.BRACKET,
            take_profit=TakeProfitRequest(limit_price=156),
            stop_loss=StopLossRequest(stop_price=144, limit_price=143.5),
        )
    )
    assert placed.order_class == OrderClass.BRACKET and [leg.status for leg in placed.legs] == ["held", "held"]
    take_profit, stop_loss = placed.legs
    assert (take_profit.type, stop_loss.type, stop_loss.side) == ("limit", "stop_limit", "sell")
    wait_for(sandbox, lambda: sandbox.broker.get_order(str(take_profit.id))["status"] == "new", "exits not live")
    assert status_of(sandbox, placed.id) == "filled"
    nested = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, nested=True, symbols=["CVX"]))
    assert [o.id for o in nested] == [placed.id] and [leg.id for leg in nested[0].legs] == [
        take_profit.id,
        stop_loss.id,
    ]
    flat = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, symbols=["CVX"]))
    assert {o.id for o in flat} == {placed.id, take_profit.id, stop_loss.id} and all(o.legs is None for o in flat)
    one = client.get_order_by_id(placed.id, GetOrderByIdRequest(nested=True))
    assert [leg.status for leg in one.legs] == [OrderStatus.NEW, OrderStatus.NEW]
    sandbox.set_price("CVX", 157)
    wait_for(sandbox, lambda: sandbox.broker.get_order(str(stop_loss.id))["status"] == "canceled", "no exit")
    assert status_of(sandbox, take_profit.id) == "filled"
    events = [(u.event, u.order.id) for u in updates if u.order.id != placed.id]
    assert events == [
        ("new", take_profit.id),
        ("new", stop_loss.id),
        ("fill", take_profit.id),
        ("canceled", stop_loss.id),
    ]


def test_oco_and_oto_through_the_sdk(sandbox: Any, client: TradingClient) -> None:
    sandbox.set_price("HD", 380)
    filled_order(client, sandbox, "HD", qty=4)
    oco = client.submit_order(
        LimitOrderRequest(
            symbol="HD",
            qty=4,
            side=OrderSide.SELL,
            limit_price=400,
            time_in_force=TimeInForce.GTC,
            order_class=OrderClass.OCO,
            take_profit=TakeProfitRequest(limit_price=400),
            stop_loss=StopLossRequest(stop_price=360),
        )
    )
    (stop_loss,) = oco.legs
    assert (oco.type, oco.status, stop_loss.type, stop_loss.status) == ("limit", "new", "stop", "new")
    assert client.get_open_position("HD").qty_available == "0"
    sandbox.set_price("HD", 355)
    wait_for(sandbox, lambda: sandbox.broker.get_order(str(oco.id))["status"] == "canceled", "stop did not exit")
    assert status_of(sandbox, stop_loss.id) == "filled"
    oto = client.submit_order(
        LimitOrderRequest(
            symbol="HD",
            qty=2,
            side=OrderSide.BUY,
            limit_price=300,
            time_in_force=TimeInForce.DAY,
            order_class=OrderClass.OTO,
            stop_loss=StopLossRequest(stop_price=290),
        )
    )
    assert [(leg.type, leg.status) for leg in oto.legs] == [("stop", "held")]
    client.cancel_order_by_id(oto.id)
    assert status_of(sandbox, oto.legs[0].id) == "canceled"


@pytest.mark.parametrize(
    ("request_", "code", "message"),
    [
        (
            dict(take_profit=TakeProfitRequest(limit_price=149), stop_loss=StopLossRequest(stop_price=140)),
            42210000,
            "take_profit.limit_price must be >= base_price + 0.01",
        ),
        (
            dict(take_profit=TakeProfitRequest(limit_price=160), stop_loss=StopLossRequest(stop_price=151)),
            42210000,
            "stop_loss.stop_price must be <= base_price - 0.01",
        ),
        (
            dict(
                take_profit=TakeProfitRequest(limit_price=160),
                stop_loss=StopLossRequest(stop_price=140),
                time_in_force=TimeInForce.IOC,
            ),
            40010001,
            "bracket orders must be DAY or GTC orders",
        ),
    ],
)
def test_bracket_refusals_through_the_sdk(
    sandbox: Any, client: TradingClient, request_: dict[str, Any], code: int, message: str
) -> None:
    sandbox.set_price("MRK", 150)
    halt(sandbox, "MRK")
    fields: dict[str, Any] = {"time_in_force": TimeInForce.GTC, **request_}
    with pytest.raises(APIError) as info:
        client.submit_order(
            MarketOrderRequest(symbol="MRK", qty=1, side=OrderSide.BUY, order_class=OrderClass.BRACKET, **fields)
        )
    assert (info.value.status_code, info.value.code, info.value.message) == (422, code, message)
