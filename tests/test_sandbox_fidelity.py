"""Fidelity: the sandbox's answers parse into the unmodified alpaca-py models, field for field.

Every object is fetched raw, then built with the SDK's own model class; the
raw JSON must carry every field the model defines (by its wire name), so a
script that reads any attribute gets a real value or an explicit null. Also
here: the trade stream on `/stream/`, real ids, the asset list and its
refusals, JSON errors on every path, and the flags and admin switches agreeing.
"""

from __future__ import annotations

import json
import queue
import re
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.models.bars import Bar
from alpaca.trading.client import TradingClient
from alpaca.trading.models import Asset, Calendar, Clock, Order, Position, TradeAccount
from alpaca.trading.requests import MarketOrderRequest
from alpaca.trading.stream import TradingStream
from pydantic import BaseModel

from alpaca_cli import cli
from alpaca_cli.commands import sandbox as sandbox_command
from alpaca_cli.sandbox.faults import Faults
from alpaca_cli.sandbox.server import SandboxThread

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def client(sandbox: Any) -> TradingClient:
    return TradingClient(sandbox.key_id, sandbox.secret_key, paper=True, url_override=sandbox.url)


def raw(sandbox: Any, path: str) -> tuple[int, Any]:
    request = urllib.request.Request(
        sandbox.url + path,
        headers={"APCA-API-KEY-ID": sandbox.key_id, "APCA-API-SECRET-KEY": sandbox.secret_key},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wire_names(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def complete(model: type[BaseModel], body: dict[str, Any]) -> BaseModel:
    """Parse `body` with the SDK's model after checking it names every field the model has."""
    missing = wire_names(model) - set(body)
    assert not missing, f"{model.__name__} lacks {sorted(missing)}"
    return model(**body)


def filled_order(client: TradingClient, sandbox: Any, symbol: str, qty: int = 3) -> Order:
    placed = client.submit_order(MarketOrderRequest(symbol=symbol, qty=qty, side="buy", time_in_force="day"))
    deadline = time.monotonic() + 10
    while client.get_order_by_id(placed.id).status != "filled":
        assert time.monotonic() < deadline, "order did not fill"
        time.sleep(0.05)
    return placed


def test_rest_objects_parse_into_the_sdk_models(sandbox: Any, client: TradingClient) -> None:
    order = filled_order(client, sandbox, "XOM")
    account = complete(TradeAccount, raw(sandbox, "/v2/account")[1])
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
    assert raw(sandbox, "/v2/assets?asset_class=crypto")[1] == []
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


def test_trade_stream_on_the_trailing_slash_path(sandbox: Any, client: TradingClient) -> None:
    updates: queue.Queue[Any] = queue.Queue()

    async def on_update(update: Any) -> None:
        updates.put(update)

    ws = "ws" + sandbox.url.removeprefix("http") + "/stream/"
    stream = TradingStream(sandbox.key_id, sandbox.secret_key, paper=True, url_override=ws)
    stream.subscribe_trade_updates(on_update)
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while [c.get("streams") for c in sandbox.admin("GET", "/admin/streams")["trading"]] != [["trade_updates"]]:
            assert time.monotonic() < deadline, "the SDK never listened on /stream/"
            time.sleep(0.02)
        order = client.submit_order(MarketOrderRequest(symbol="GE", qty=1, side="buy", time_in_force="day"))
        update = updates.get(timeout=10)
        assert str(update.order.id) == str(order.id) and update.event == "new"
    finally:
        while stream._loop is None:
            time.sleep(0.02)
        stream.stop()
        sandbox.admin("POST", "/admin/drop", {"stream": "trading"})
        thread.join(8)


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


FAULT_FLAGS = {
    "refuse_auth": (["--refuse-auth"], True),
    "rest_status": (["--rest-status", "503"], 503),
    "rest_count": (["--rest-count", "3"], 3),
    "drop_after_accept": (["--drop-after-accept", "2"], 2),
    "hold_trade_updates": (["--hold-trade-updates"], True),
    "refuse_trading": (["--refuse-trading"], True),
    "mute_trading": (["--mute-trading"], True),
    "mute_data": (["--mute-data"], True),
    "drop_trading_every": (["--drop-trading-every", "1.5"], 1.5),
    "drop_data_every": (["--drop-data-every", "2"], 2),
}


def test_every_fault_switch_is_a_serve_flag_of_the_same_name_and_meaning(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert set(FAULT_FLAGS) == set(Faults().as_dict())
    for name, (flags, value) in FAULT_FLAGS.items():
        assert flags[0] == "--" + name.replace("_", "-")
        from_flag = _serve_options(monkeypatch, *flags)["faults"]
        from_admin = Faults()
        from_admin.update(**{name: value})
        assert from_flag == from_admin, name
        assert sandbox.set_faults(**{name: value})[name] == value
        sandbox.call(sandbox.sandbox.faults.reset)


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
