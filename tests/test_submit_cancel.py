"""`submit` and `cancel` end to end: the real entry point, the real SDK, real sockets, the sandbox.

Each test trades its own symbol, so "exactly one order exists" is checked by
listing that symbol's orders at the broker (client ids are unique there by
construction, so counting by client id would prove nothing). The last section
drives `orders.place` step by step against a scripted broker, for the
failures the sandbox cannot produce on cue (a lookup that never answers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import subprocess
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers import CLI, cli_env, json_lines, run_cli, spawn_cli

from alpaca_cli import orders, statefile
from alpaca_cli.cli import main
from alpaca_cli.core import State
from alpaca_cli.domain import Order, OrderRequest
from alpaca_cli.errors import BrokerRejected, UnreachableError

pytestmark = pytest.mark.timeout(60)


def _env(tmp_path: Path, sandbox: Any, **extra: str) -> dict[str, str]:
    return cli_env(tmp_path, sandbox.url, **extra)


def cli(sandbox: Any, tmp_path: Path, *args: str, **extra: str) -> Any:
    return run_cli(*args, "--sandbox", env=_env(tmp_path, sandbox, **extra))


def requests_served(sandbox: Any) -> int:
    return sum(sandbox.counts.values())


def broker_orders(sandbox: Any, symbol: str) -> list[dict[str, Any]]:
    return sandbox.call(lambda: sandbox.broker.list_orders(status="all", limit=500, symbols=[symbol]))


def the_order(result: Any) -> dict[str, Any]:
    lines = json_lines(result.stdout)
    assert lines and lines[0]["type"] == "order", result.stdout + result.stderr
    return lines[0]


def error_lines(result: Any) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("alpaca-cli: error:")]


# --------------------------------------------------------------------------- validation sends nothing

BAD_INPUTS: list[list[str]] = [
    ["submit", "AAPL", "buy"],
    ["submit", "AAPL", "buy", "--qty", "1", "--notional", "10"],
    ["submit", "AAPL", "buy", "--qty", "0"],
    ["submit", "AAPL", "buy", "--qty", "-3"],
    ["submit", "AAPL", "buy", "--qty", "abc"],
    ["submit", "AAPL", "buy", "--notional", "-10"],
    ["submit", "AAPL", "buy", "--notional", "10", "--type", "limit", "--limit-price", "5"],
    ["submit", "AAPL", "buy", "--qty", "1", "--type", "limit"],
    ["submit", "AAPL", "buy", "--qty", "1", "--type", "stop"],
    ["submit", "AAPL", "buy", "--qty", "1", "--type", "stop_limit", "--stop-price", "5"],
    ["submit", "AAPL", "buy", "--qty", "1", "--type", "trailing_stop"],
    ["submit", "AAPL", "buy", "--qty", "1", "--type", "trailing_stop", "--trail-percent", "1", "--trail-price", "1"],
    ["submit", "AAPL", "buy", "--qty", "1", "--limit-price", "5"],
    ["submit", "AAPL", "buy", "--qty", "1", "--type", "limit", "--limit-price", "10.123"],
    ["submit", "AAPL", "buy", "--qty", "1", "--type", "limit", "--limit-price", "0.12345"],
    ["submit", "AAPL", "buy", "--qty", "0.5", "--tif", "gtc"],
    ["submit", "AAPL", "buy", "--qty", "1", "--extended-hours"],
    ["submit", "AAPL", "buy", "--qty", "1", "--tif", "forever"],
    ["submit", "AAPL", "buy", "--qty", "1", "--type", "bracket"],
    ["submit", "AAPL", "hold", "--qty", "1"],
    ["submit", "AAPL!", "buy", "--qty", "1"],
    ["submit", "BTC/USD", "buy", "--qty", "1"],
    ["submit", "AAPL", "buy", "--qty", "1", "--client-order-id", "x" * 129],
    ["submit", "AAPL", "buy", "--qty", "1", "--timeout", "5"],
    ["submit", "AAPL", "buy", "--qty", "1", "--wait", "--timeout", "0"],
    ["submit", "AAPL", "buy", "--qty", "1", "--bogus-flag"],
    ["cancel"],
    ["cancel", "not-a-uuid"],
    ["cancel", "--all", "--client-order-id", "x"],
    ["cancel", "--symbol", "AAPL"],
    ["cancel", "--all", "--symbol", "BAD SYMBOL"],
]


@pytest.mark.parametrize("argv", BAD_INPUTS, ids=[f"bad{i}" for i in range(len(BAD_INPUTS))])
def test_bad_input_exits_2_with_one_line_and_sends_nothing(
    sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """Through `cli.main`, the console script's own function, in-process: 31 cases in well under a second."""
    for name, value in _env(tmp_path, sandbox).items():
        monkeypatch.setenv(name, value)
    before = requests_served(sandbox)
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--sandbox"])
    out, err = capfd.readouterr()
    assert exited.value.code == 2, err
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("alpaca-cli: error:")
    assert requests_served(sandbox) == before


def test_dry_run_prints_the_request_and_sends_nothing(sandbox: Any, tmp_path: Path) -> None:
    before = requests_served(sandbox)
    args = ("submit", "msft", "sell", "--qty", "3", "--type", "limit", "--limit-price", "410.5", "--dry-run")
    result = cli(sandbox, tmp_path, *args, "--client-order-id", "dry-1")
    assert result.returncode == 0, result.stderr
    [record] = json_lines(result.stdout)
    assert record == {
        "type": "order_request",
        "environment": "sandbox",
        "symbol": "MSFT",
        "side": "sell",
        "order_type": "limit",
        "time_in_force": "day",
        "qty": 3,
        "limit_price": 410.5,
        "extended_hours": False,
        "client_order_id": "dry-1",
    }
    assert "[SANDBOX]" in result.stderr  # the banner names the environment
    assert requests_served(sandbox) == before


# --------------------------------------------------------------------------- every order type


@pytest.mark.parametrize(
    ("symbol", "args", "expect"),
    [
        ("GILD", ["--qty", "2"], {"order_type": "market", "qty": 2}),
        (
            "SBUX",
            ["--qty", "2", "--type", "limit", "--limit-price", "49.5"],
            {"order_type": "limit", "limit_price": 49.5},
        ),
        ("ORLY", ["--qty", "2", "--type", "stop", "--stop-price", "60"], {"order_type": "stop", "stop_price": 60}),
        (
            "ADP",
            ["--qty", "2", "--type", "stop_limit", "--stop-price", "60", "--limit-price", "61"],
            {"order_type": "stop_limit", "stop_price": 60, "limit_price": 61},
        ),
        (
            "CTAS",
            ["--qty", "2", "--type", "trailing_stop", "--trail-percent", "5", "--tif", "gtc"],
            {"order_type": "trailing_stop", "trail_percent": 5, "time_in_force": "gtc"},
        ),
        ("MDLZ", ["--notional", "125.5"], {"order_type": "market", "notional": 125.5, "qty": None}),
        ("HON", ["--qty", "0.25"], {"order_type": "market", "qty": 0.25}),
        (
            "TMUS",
            ["--qty", "1", "--type", "limit", "--limit-price", "40", "--extended-hours"],
            {"order_type": "limit", "extended_hours": True},
        ),
    ],
)
def test_every_order_type_is_placed_once_and_reported(
    sandbox: Any, tmp_path: Path, symbol: str, args: list[str], expect: dict[str, Any]
) -> None:
    sandbox.set_price(symbol, 50)
    result = cli(sandbox, tmp_path, "submit", symbol, "buy", *args)
    assert result.returncode == 0, result.stderr
    record = the_order(result)
    assert len(json_lines(result.stdout)) == 1
    assert {key: record[key] for key in expect} == expect
    assert record["symbol"] == symbol and record["side"] == "buy" and record["submission"] == "sent"
    assert record["client_order_id"].startswith(orders.CLIENT_ID_PREFIX)
    [placed] = broker_orders(sandbox, symbol)
    assert placed["id"] == record["id"] and placed["client_order_id"] == record["client_order_id"]


def test_terminal_output_is_a_panel(sandbox: Any, tmp_path: Path) -> None:
    sandbox.set_price("DDOG", 20)
    result = cli(sandbox, tmp_path, "submit", "DDOG", "buy", "--qty", "1", "-o", "table")
    assert result.returncode == 0, result.stderr
    assert "client_order_id" in result.stdout and "DDOG" in result.stdout and "╭" in result.stdout


# --------------------------------------------------------------------------- --wait


def test_wait_follows_a_market_order_to_its_fill(sandbox: Any, tmp_path: Path) -> None:
    sandbox.set_price("ANSS", 30)
    result = cli(sandbox, tmp_path, "submit", "ANSS", "buy", "--qty", "5", "--wait", "--timeout", "20")
    assert result.returncode == 0, result.stderr
    lines = json_lines(result.stdout)
    assert lines[0]["type"] == "order"
    updates = [line for line in lines if line["type"] == "trade_update"]
    assert updates[-1]["event"] == "fill" and updates[-1]["order_status"] == "filled"
    assert sum(Decimal(str(u["qty"])) for u in updates if u["qty"] is not None) == 5
    assert {u["order_id"] for u in updates} == {lines[0]["id"]}


def test_wait_listens_before_sending(sandbox: Any, tmp_path: Path) -> None:
    """On the stream every event is heard, including `new`, which fires before the POST is answered."""
    sandbox.set_price("CDW", 30)
    result = cli(sandbox, tmp_path, "submit", "CDW", "buy", "--qty", "250", "--wait", "--timeout", "20")
    assert result.returncode == 0, result.stderr
    updates = [line for line in json_lines(result.stdout) if line["type"] == "trade_update"]
    assert [u["event"] for u in updates] == ["new", "partial_fill", "partial_fill", "fill"]
    assert {u["source"] for u in updates} == {"stream"}
    assert all(u["execution_id"] for u in updates[1:])


@contextlib.contextmanager
def trade_stream_slot_taken(sandbox: Any) -> Iterator[None]:
    """Hold the account's one trade-update connection, as a running `tail` would."""
    from websockets.sync.client import connect

    with connect(sandbox.ws_url + "/stream") as ws:
        auth = {"action": "authenticate", "data": {"key_id": sandbox.key_id, "secret_key": sandbox.secret_key}}
        ws.send(json.dumps(auth))
        reply = json.loads(ws.recv(timeout=5))
        assert reply["data"]["status"] == "authorized", reply
        yield


def test_wait_polls_when_the_stream_is_taken(sandbox: Any, tmp_path: Path) -> None:
    sandbox.set_price("ON", 30)
    with trade_stream_slot_taken(sandbox):
        result = cli(sandbox, tmp_path, "submit", "ON", "buy", "--qty", "5", "--wait", "--timeout", "20")
    assert result.returncode == 0, result.stderr
    assert "holds this account's trade-update stream; polling the order" in result.stderr
    assert "warning" not in result.stderr  # a running tail is the normal case, not a fault
    updates = [line for line in json_lines(result.stdout) if line["type"] == "trade_update"]
    assert updates[-1]["event"] == "fill" and updates[-1]["filled_qty"] == 5
    assert {u["source"] for u in updates} == {"reconcile"}


def test_wait_finds_a_fill_the_stream_never_delivered(sandbox: Any, tmp_path: Path) -> None:
    """Connected but mute: the order is asked for after a quiet spell, so the fill still ends the wait."""
    sandbox.set_price("GFS", 30)
    sandbox.set_faults(hold_trade_updates=True)
    result = cli(sandbox, tmp_path, "submit", "GFS", "buy", "--qty", "5", "--wait", "--timeout", "20")
    assert result.returncode == 0, result.stderr
    last = json_lines(result.stdout)[-1]
    assert (last["event"], last["source"], last["qty"], last["filled_qty"]) == ("fill", "reconcile", 5, 5)


def test_wait_shows_partial_fills(sandbox: Any, tmp_path: Path) -> None:
    # 100 shares fill per tick (0.02 s): 20,000 take about 4 s, long enough to be seen filling
    # even when the stream is briefly unavailable and --wait falls back to polling.
    sandbox.set_price("LULU", 1)
    result = cli(sandbox, tmp_path, "submit", "LULU", "buy", "--qty", "20000", "--wait", "--timeout", "30")
    assert result.returncode == 0, result.stderr
    updates = [line for line in json_lines(result.stdout) if line["type"] == "trade_update"]
    events = [u["event"] for u in updates]
    assert "partial_fill" in events and events[-1] == "fill"
    assert sum(Decimal(str(u["qty"])) for u in updates if u["qty"] is not None) == 20000
    filled = [Decimal(str(u["filled_qty"])) for u in updates]
    assert filled == sorted(filled) and filled[-1] == 20000


def test_wait_exits_1_when_the_order_ends_unfilled(sandbox: Any, tmp_path: Path) -> None:
    sandbox.set_price("VRSK", 50)
    args = ("--qty", "1", "--type", "limit", "--limit-price", "10", "--tif", "ioc", "--wait", "--timeout", "20")
    result = cli(sandbox, tmp_path, "submit", "VRSK", "buy", *args)
    assert result.returncode == 1, result.stderr
    last = json_lines(result.stdout)[-1]
    assert last["type"] == "trade_update" and last["order_status"] in ("canceled", "expired")


def test_wait_exits_124_when_the_order_is_still_working_at_the_timeout(sandbox: Any, tmp_path: Path) -> None:
    sandbox.set_price("ILMN", 50)
    args = ("--qty", "1", "--type", "limit", "--limit-price", "10", "--wait", "--timeout", "1")
    result = cli(sandbox, tmp_path, "submit", "ILMN", "buy", *args)
    assert result.returncode == 124, result.stderr
    assert "still new after 1 s" in result.stderr
    [placed] = broker_orders(sandbox, "ILMN")
    assert placed["status"] == "new"


@pytest.mark.parametrize(
    ("symbol", "args", "move_to"),
    [
        ("MAR", ["--type", "limit", "--limit-price", "55"], 51),  # marketable before and after the move
        ("EXC", ["--type", "stop", "--stop-price", "55"], 60),  # the move goes through the stop
        ("XEL", ["--type", "stop_limit", "--stop-price", "55", "--limit-price", "70"], 60),
        ("AEP", ["--type", "trailing_stop", "--trail-price", "2"], 60),
    ],
)
def test_wait_sees_a_limit_or_stop_fill(
    sandbox: Any, tmp_path: Path, symbol: str, args: list[str], move_to: float
) -> None:
    sandbox.set_price(symbol, 50)
    process = spawn_cli(
        "submit",
        symbol,
        "buy",
        "--qty",
        "3",
        *args,
        "--wait",
        "--timeout",
        "20",
        "--sandbox",
        env=_env(tmp_path, sandbox),
    )
    try:
        assert process.stdout is not None
        first = json.loads(process.stdout.readline())
        assert first["type"] == "order" and first["status"] in ("new", "accepted")
        sandbox.set_price(symbol, move_to)
        out = process.stdout.read()  # not communicate(): it would skip what readline() buffered
        assert process.stderr is not None
        err = process.stderr.read()
        process.wait(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    last = json_lines(out)[-1]
    assert last["event"] == "fill" and last["filled_qty"] == 3


def test_buying_power_rejection_exits_1_and_places_nothing(sandbox: Any, tmp_path: Path) -> None:
    sandbox.set_price("TEAM", 100)
    for extra in ((), ("--wait",)):
        result = cli(sandbox, tmp_path, "submit", "TEAM", "buy", "--qty", "100000", *extra)
        assert result.returncode == 1, result.stderr
        assert len(error_lines(result)) == 1 and "buying power" in result.stderr
        assert result.stdout == ""
    assert broker_orders(sandbox, "TEAM") == []


# --------------------------------------------------------------------------- idempotency under faults


def test_answer_lost_after_accept_reports_the_one_order(sandbox: Any, tmp_path: Path) -> None:
    sandbox.set_price("WDAY", 40)
    sandbox.set_faults(drop_after_accept=1)
    posts = sandbox.counts["POST /v2/orders"]
    result = cli(sandbox, tmp_path, "submit", "WDAY", "buy", "--qty", "4")
    assert result.returncode == 0, result.stderr
    record = the_order(result)
    assert record["submission"] == "recovered"
    [placed] = broker_orders(sandbox, "WDAY")
    assert placed["id"] == record["id"]
    assert sandbox.counts["POST /v2/orders"] == posts + 1  # found by client id: never sent again


def test_504_then_accept_places_one_order(sandbox: Any, tmp_path: Path) -> None:
    sandbox.set_price("EBAY", 40)
    sandbox.set_faults(rest_status=504, rest_count=1)
    posts = sandbox.counts["POST /v2/orders"]
    result = cli(sandbox, tmp_path, "submit", "EBAY", "buy", "--qty", "4")
    assert result.returncode == 0, result.stderr
    record = the_order(result)
    [placed] = broker_orders(sandbox, "EBAY")
    assert placed["id"] == record["id"]
    assert sandbox.counts["POST /v2/orders"] == posts + 2  # the lookup proved the first never arrived
    assert (record["submission"], record["sends"]) == ("sent", 2)


def test_repeated_429_places_one_order(sandbox: Any, tmp_path: Path) -> None:
    sandbox.set_price("EXPE", 40)
    sandbox.set_faults(rest_status=429, rest_count=4)
    result = cli(sandbox, tmp_path, "submit", "EXPE", "buy", "--qty", "4")
    assert result.returncode == 0, result.stderr
    record = the_order(result)
    [placed] = broker_orders(sandbox, "EXPE")
    assert placed["id"] == record["id"] and placed["client_order_id"] == record["client_order_id"]


def test_unknown_outcome_is_never_resent(sandbox: Any, tmp_path: Path) -> None:
    """The POST fails and every lookup fails too: the tool must not guess."""
    sandbox.set_price("SIRI", 40)
    sandbox.set_faults(rest_status=503, rest_count=1000)
    posts = sandbox.counts["POST /v2/orders"]
    result = cli(sandbox, tmp_path, "submit", "SIRI", "buy", "--qty", "4", "--client-order-id", "unknown-fate-1")
    sandbox.set_faults(rest_status=None, rest_count=0)
    assert result.returncode == 4, result.stderr
    assert sandbox.counts["POST /v2/orders"] == posts + 1
    [line] = error_lines(result)
    assert "--client-order-id unknown-fate-1" in line


def test_same_client_id_twice_reports_the_existing_order(sandbox: Any, tmp_path: Path) -> None:
    sandbox.set_price("CTSH", 40)
    args = ("submit", "CTSH", "buy", "--qty", "4", "--type", "limit", "--limit-price", "30")
    first = the_order(cli(sandbox, tmp_path, *args, "--client-order-id", "dup-1"))
    again = cli(sandbox, tmp_path, *args, "--client-order-id", "dup-1")
    assert again.returncode == 0, again.stderr
    assert the_order(again)["id"] == first["id"] and the_order(again)["submission"] == "duplicate"
    other = cli(sandbox, tmp_path, "submit", "CTSH", "sell", "--qty", "1", "--client-order-id", "dup-1")
    assert other.returncode == 1
    assert the_order(other)["id"] == first["id"]
    assert "different order" in error_lines(other)[0]
    assert len(broker_orders(sandbox, "CTSH")) == 1


# --------------------------------------------------------------------------- the live guard

LIVE = {"APCA_API_BASE_URL": "https://api.alpaca.markets:1", "APCA_API_KEY_ID": "K", "APCA_API_SECRET_KEY": "S"}


def live_cli(tmp_path: Path, *args: str, **extra: str) -> Any:
    return run_cli(*args, env=cli_env(tmp_path, **LIVE, **extra), timeout=30)


@pytest.mark.parametrize(
    "argv",
    [
        ["submit", "AAPL", "buy", "--qty", "1"],
        ["submit", "AAPL", "buy", "--qty", "1", "--yes"],
        ["submit", "AAPL", "buy", "--qty", "1", "--live"],
        ["cancel", "--all"],
        ["cancel", "--all", "--yes"],
        ["cancel", "--all", "--live"],
    ],
)
def test_live_needs_the_flag_and_a_confirmation(tmp_path: Path, argv: list[str]) -> None:
    """Without --live, or with it but neither a terminal nor --yes: exit 2 before any connection."""
    result = live_cli(tmp_path, *argv)
    assert result.returncode == 2, result.stderr
    assert "[LIVE]" in result.stderr
    [line] = error_lines(result)
    assert "nothing was sent" in line


def test_live_env_var_counts_as_the_flag(tmp_path: Path) -> None:
    result = live_cli(tmp_path, "submit", "AAPL", "buy", "--qty", "1", ALPACA_CLI_LIVE="1")
    assert "not a terminal" in result.stderr and result.returncode == 2


def test_live_with_flag_and_yes_goes_to_the_network(tmp_path: Path) -> None:
    """Both given: the guard lets it through and the (unreachable) endpoint is contacted.

    `--state` makes the first request a quick account lookup, so the failure
    comes fast; the order itself would be next.
    """
    state = str(tmp_path / "state.json")
    result = live_cli(tmp_path, "submit", "AAPL", "buy", "--qty", "1", "--live", "--yes", "--state", state)
    assert result.returncode == 4, result.stderr
    assert "nothing was sent" not in result.stderr
    assert "get account" in error_lines(result)[0]


def test_live_dry_run_sends_nothing_and_needs_no_flag(tmp_path: Path) -> None:
    result = live_cli(tmp_path, "submit", "AAPL", "buy", "--qty", "1", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout)[0]["environment"] == "live"


# --------------------------------------------------------------------------- --state


def _new_state(sandbox: Any, path: Path) -> str:
    account_id = sandbox.call(lambda: sandbox.broker.account())["id"]
    statefile.save(path, State.empty(account_id))
    return account_id


def test_state_records_the_new_order_and_its_fill(sandbox: Any, tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    _new_state(sandbox, path)
    sandbox.set_price("EA", 25)
    resting = the_order(
        cli(
            sandbox,
            tmp_path,
            "submit",
            "EA",
            "buy",
            "--qty",
            "2",
            "--type",
            "limit",
            "--limit-price",
            "5",
            "--state",
            str(path),
        )
    )
    assert resting["id"] in statefile.load(path).open_orders
    result = cli(sandbox, tmp_path, "submit", "EA", "buy", "--qty", "3", "--wait", "--state", str(path))
    assert result.returncode == 0, result.stderr
    state = statefile.load(path)
    assert the_order(result)["id"] in state.closed_orders
    assert state.positions["EA"].qty == 3


def test_state_file_problems_stop_the_order_before_it_is_sent(sandbox: Any, tmp_path: Path) -> None:
    posts = sandbox.counts["POST /v2/orders"]
    missing = cli(sandbox, tmp_path, "submit", "DLTR", "buy", "--qty", "1", "--state", str(tmp_path / "none.json"))
    corrupt_path = tmp_path / "corrupt.json"
    corrupt_path.write_text("{not json")
    corrupt = cli(sandbox, tmp_path, "submit", "DLTR", "buy", "--qty", "1", "--state", str(corrupt_path))
    for result in (missing, corrupt):
        assert result.returncode == 2 and len(error_lines(result)) == 1, result.stderr
    assert sandbox.counts["POST /v2/orders"] == posts
    assert corrupt_path.read_text() == "{not json"


# --------------------------------------------------------------------------- cancel


def _resting(sandbox: Any, tmp_path: Path, symbol: str, cid: str | None = None) -> dict[str, Any]:
    sandbox.set_price(symbol, 50)
    extra = ["--client-order-id", cid] if cid else []
    args = ("submit", symbol, "buy", "--qty", "1", "--type", "limit", "--limit-price", "10", *extra)
    return the_order(cli(sandbox, tmp_path, *args))


def test_cancel_by_id_and_by_client_id(sandbox: Any, tmp_path: Path) -> None:
    by_id = _resting(sandbox, tmp_path, "ISRG")
    result = cli(sandbox, tmp_path, "cancel", by_id["id"])
    assert result.returncode == 0, result.stderr
    [record] = json_lines(result.stdout)
    assert record["type"] == "cancel" and record["order_id"] == by_id["id"] and record["ok"]
    assert record["status"] == "canceled"
    _resting(sandbox, tmp_path, "PCAR", cid="cancel-me-1")
    result = cli(sandbox, tmp_path, "cancel", "--client-order-id", "cancel-me-1")
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout)[0]["client_order_id"] == "cancel-me-1"
    assert [o["status"] for o in broker_orders(sandbox, "PCAR")] == ["canceled"]
    again = cli(sandbox, tmp_path, "cancel", "--client-order-id", "cancel-me-1")
    assert again.returncode == 0 and "already canceled" in again.stderr


def test_cancel_unknown_or_finished_orders_is_a_clean_no(sandbox: Any, tmp_path: Path) -> None:
    unknown = cli(sandbox, tmp_path, "cancel", "00000000-0000-4000-8000-000000000000")
    assert unknown.returncode == 1 and "not found" in error_lines(unknown)[0]
    no_cid = cli(sandbox, tmp_path, "cancel", "--client-order-id", "never-used")
    assert no_cid.returncode == 1 and len(error_lines(no_cid)) == 1
    sandbox.set_price("KDP", 20)
    filled = the_order(cli(sandbox, tmp_path, "submit", "KDP", "buy", "--qty", "1", "--wait"))
    result = cli(sandbox, tmp_path, "cancel", filled["id"])
    assert result.returncode == 1 and "already filled" in error_lines(result)[0]


def test_cancel_all_for_one_symbol(sandbox: Any, tmp_path: Path) -> None:
    mine = [_resting(sandbox, tmp_path, "TTD")["id"] for _ in range(3)]
    other = _resting(sandbox, tmp_path, "MNST")
    result = cli(sandbox, tmp_path, "cancel", "--all", "--symbol", "ttd")
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    assert sorted(r["order_id"] for r in records) == sorted(mine)
    assert all(r["type"] == "cancel" and r["ok"] for r in records)
    assert {o["status"] for o in broker_orders(sandbox, "TTD")} == {"canceled"}
    assert [o["status"] for o in broker_orders(sandbox, "MNST")] == ["new"]
    assert other["id"] not in {r["order_id"] for r in records}
    nothing = cli(sandbox, tmp_path, "cancel", "--all", "--symbol", "TTD")
    assert nothing.returncode == 0 and nothing.stdout == "" and "nothing to cancel" in nothing.stderr


def run_on_terminal(args: Sequence[str], env: dict[str, str], answer: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI with a terminal on stdin (a pty) and type `answer` into it."""
    master, slave = pty.openpty()
    try:
        process = subprocess.Popen(
            [*CLI, *args], env=env, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        os.close(slave)
        os.write(master, answer.encode())
        out, err = process.communicate(timeout=30)
    finally:
        os.close(master)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_cancel_all_asks_first_on_a_terminal(sandbox: Any, tmp_path: Path) -> None:
    order = _resting(sandbox, tmp_path, "BIIB")
    args = ("cancel", "--all", "--symbol", "BIIB", "--sandbox")
    declined = run_on_terminal(args, _env(tmp_path, sandbox), "n\n")
    assert declined.returncode == 1 and "nothing was canceled" in declined.stderr
    assert "cancel 1 open order for BIIB?" in declined.stderr
    assert [o["status"] for o in broker_orders(sandbox, "BIIB")] == ["new"]
    accepted = run_on_terminal(args, _env(tmp_path, sandbox), "y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert [r["order_id"] for r in json_lines(accepted.stdout)] == [order["id"]]
    assert [o["status"] for o in broker_orders(sandbox, "BIIB")] == ["canceled"]
    second = _resting(sandbox, tmp_path, "BIIB")
    skipped = run_on_terminal((*args, "--yes"), _env(tmp_path, sandbox), "")
    assert skipped.returncode == 0 and "?" not in skipped.stderr, skipped.stderr
    assert [r["order_id"] for r in json_lines(skipped.stdout)] == [second["id"]]


def test_paper_orders_need_no_confirmation_on_a_terminal(sandbox: Any, tmp_path: Path) -> None:
    sandbox.set_price("ZS", 20)
    result = run_on_terminal(("submit", "ZS", "buy", "--qty", "1", "--sandbox"), _env(tmp_path, sandbox), "")
    assert result.returncode == 0, result.stderr
    assert "Proceed?" not in result.stderr
    assert len(broker_orders(sandbox, "ZS")) == 1


def test_cancel_all(sandbox: Any, tmp_path: Path) -> None:
    ids = {_resting(sandbox, tmp_path, symbol)["id"] for symbol in ("AMGN", "INTU")}
    result = cli(sandbox, tmp_path, "cancel", "--all")
    assert result.returncode == 0, result.stderr
    assert ids <= {r["order_id"] for r in json_lines(result.stdout)}
    assert sandbox.call(lambda: sandbox.broker.list_orders(status="open", limit=500)) == []


# --------------------------------------------------------------------------- the placing procedure, step by step


class ScriptedBroker:
    """Answers `submit_order` and `order_by_client_id` from scripts of outcomes.

    An outcome is an exception to raise or a value to return; the broker's
    own book (`placed`) decides what a lookup finds unless a script says
    otherwise, so a POST that "arrived but whose answer was lost" is modeled
    by placing the order and then raising.
    """

    deadline = 25.0

    def __init__(self, sends: Sequence[Any], lookups: Sequence[Any] = ()) -> None:
        self.sends = list(sends)
        self.lookups = list(lookups)
        self.placed: dict[str, Order] = {}
        self.sent = 0
        self.looked = 0

    def _order(self, request: OrderRequest) -> Order:
        from datetime import UTC, datetime

        return Order(
            id=f"id-{len(self.placed) + 1}",
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            type=request.type,
            time_in_force=request.time_in_force,
            status="new",
            submitted_at=datetime.now(UTC),
            qty=request.qty,
            notional=request.notional,
            limit_price=request.limit_price,
        )

    async def submit_order(self, request: OrderRequest) -> Order:
        self.sent += 1
        outcome = self.sends.pop(0)
        if outcome in ("accept", "accept-then-lose"):
            if request.client_order_id in self.placed:
                raise BrokerRejected("client_order_id must be unique", status=422, code=40010001)
            self.placed[request.client_order_id] = self._order(request)
            if outcome == "accept":
                return self.placed[request.client_order_id]
            raise UnreachableError("connection dropped")
        raise outcome

    async def order_by_client_id(self, client_order_id: str) -> Order | None:
        self.looked += 1
        if self.lookups:
            outcome = self.lookups.pop(0)
            if isinstance(outcome, Exception):
                raise outcome
        return self.placed.get(client_order_id)


async def _no_sleep(_: float) -> None:
    return None


def _place(broker: ScriptedBroker, request: OrderRequest | None = None) -> orders.Placement:
    request = request or orders.validate_order("AAPL", "buy", qty="1")
    return asyncio.run(orders.place(broker, request, sleep=_no_sleep))


def test_place_sends_once_when_answered() -> None:
    broker = ScriptedBroker(["accept"])
    assert _place(broker).how == "sent" and broker.sent == 1 and broker.looked == 0


def test_place_recovers_a_lost_answer_without_resending() -> None:
    broker = ScriptedBroker(["accept-then-lose"])
    placement = _place(broker)
    assert (placement.how, broker.sent, len(broker.placed)) == ("recovered", 1, 1)


def test_place_resends_only_after_the_lookup_proves_absence() -> None:
    broker = ScriptedBroker([UnreachableError("504"), UnreachableError("429"), "accept"])
    placement = _place(broker)
    assert (placement.how, broker.sent, broker.looked, len(broker.placed)) == ("sent", 3, 2, 1)


def test_place_never_resends_when_the_lookup_cannot_tell() -> None:
    broker = ScriptedBroker([UnreachableError("timeout"), "accept"], lookups=[UnreachableError("503")] * 10)
    with pytest.raises(UnreachableError, match="may have been placed"):
        _place(broker)
    assert broker.sent == 1


def test_place_gives_up_after_bounded_attempts() -> None:
    broker = ScriptedBroker([UnreachableError("503")] * 10)
    with pytest.raises(UnreachableError, match="not placed"):
        _place(broker)
    assert broker.sent == 4 and broker.placed == {}


def test_a_late_arrival_after_a_lookup_is_caught_by_the_duplicate_answer() -> None:
    """The first POST lands after the lookup said "absent": the resend's 422 reports it."""
    request = orders.validate_order("AAPL", "buy", qty="1")
    broker = ScriptedBroker([UnreachableError("timeout"), "accept"])
    original = broker.order_by_client_id

    async def late_lookup(client_order_id: str) -> Order | None:
        found = await original(client_order_id)
        broker.placed[client_order_id] = broker._order(request)  # the slow first POST arrives now
        return found

    broker.order_by_client_id = late_lookup  # type: ignore[method-assign]
    placement = _place(broker, request)
    assert placement.how == "recovered" and placement.matches and len(broker.placed) == 1


def test_a_taken_id_after_a_lost_answer_is_never_a_clean_no() -> None:
    """First POST lost, lookup lagging (nothing yet), the resend refused as a duplicate, the
    lookup still lagging: the order exists, so this is exit 4 naming the id, never exit 1."""
    request = orders.validate_order("AAPL", "buy", qty="1")
    broker = ScriptedBroker(["accept-then-lose", "accept"])
    original = broker.order_by_client_id

    async def lagging(client_order_id: str) -> Order | None:
        await original(client_order_id)
        return None  # the listing behind the lookup has not caught up

    broker.order_by_client_id = lagging  # type: ignore[method-assign]
    with pytest.raises(UnreachableError, match="may have been placed") as raised:
        _place(broker, request)
    assert request.client_order_id in raised.value.line() and broker.sent == 2


def test_a_lookup_refused_after_a_lost_answer_is_never_a_clean_no() -> None:
    broker = ScriptedBroker([UnreachableError("timeout")], lookups=[BrokerRejected("forbidden", status=403)])
    with pytest.raises(UnreachableError, match="may have been placed"):
        _place(broker)
    assert broker.sent == 1


def test_refusals_are_not_retried() -> None:
    broker = ScriptedBroker([BrokerRejected("insufficient buying power", status=403, code=40310000)])
    with pytest.raises(BrokerRejected):
        _place(broker)
    assert broker.sent == 1 and broker.looked == 0


class AccountOnlyBroker:
    """Knows the account; any attempt to place an order fails the test."""

    async def account(self) -> Any:
        from alpaca_cli.domain import Account

        return Account(id="acct-1", account_number="LIVE777", status="ACTIVE")

    async def submit_order(self, request: OrderRequest) -> Order:
        raise AssertionError("an order was sent without confirmation")


def test_the_live_prompt_names_the_order_and_a_no_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from alpaca_cli import invocation

    asked: list[str] = []

    def answer_no(text: str, **_: Any) -> bool:
        asked.append(text)
        return False

    monkeypatch.setattr(invocation.typer, "confirm", answer_no)
    request = orders.validate_order("NVDA", "sell", qty="12", order_type="limit", limit_price="130.5")
    with pytest.raises(orders.NotConfirmed) as declined:
        asyncio.run(invocation.preflight(AccountOnlyBroker(), "confirm", orders.describe(request)))  # type: ignore[arg-type]
    assert declined.value.exit_code == 1
    assert asked == ["LIVE account LIVE777: sell 12 NVDA limit 130.5 (day). Proceed?"]
