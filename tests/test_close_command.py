"""`positions` and `close` end to end: the real entry point against the sandbox, rate limit on.

Each test holds positions in symbols of its own. A lost answer is the
sandbox's `drop_after_accept` fault (the broker closes, the answer never
arrives); the sandbox's request counts and order book prove nothing was
closed twice.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers import assert_refused_before_sending, cli_env, json_lines, run_cli, served

from alpaca_cli import orders, statefile
from alpaca_cli.cli import main
from alpaca_cli.core import State

pytestmark = pytest.mark.timeout(120)

CLOSE_ONE = "DELETE /v2/positions/{symbol}"
CLOSE_ALL = "DELETE /v2/positions"


def cli(sandbox: Any, tmp_path: Path, *args: str) -> Any:
    return run_cli(*args, "--sandbox", env=cli_env(tmp_path, sandbox.url))


def hold(sandbox: Any, symbol: str, qty: int, side: str = "buy") -> None:
    """Open a position straight at the broker (no request counted): a market order, ticked until filled."""
    body = {"symbol": symbol, "qty": str(qty), "side": side, "type": "market", "time_in_force": "day"}
    sandbox.call(lambda: sandbox.broker.submit(body))
    for _ in range(100):
        sandbox.call(lambda: sandbox.broker.step())
        if abs(sandbox.call(lambda: sandbox.broker.position_qty(symbol))) == qty:
            return
    raise AssertionError(f"{symbol} never filled")


def closing_orders(sandbox: Any, symbol: str, side: str = "sell") -> list[dict[str, Any]]:
    listed = sandbox.call(lambda: sandbox.broker.list_orders(status="all", limit=500, symbols=[symbol]))
    return [o for o in listed if o["side"] == side]


BAD_INPUTS: list[list[str]] = [
    ["close"],
    ["close", "AAPL", "--all"],
    ["close", "AAPL", "--qty", "1", "--percentage", "5"],
    ["close", "--all", "--qty", "1"],
    ["close", "--all", "--percentage", "50"],
    ["close", "AAPL", "--cancel-orders"],
    ["close", "AAPL", "--qty", "0"],
    ["close", "AAPL", "--qty", "abc"],
    ["close", "AAPL", "--percentage", "101"],
    ["close", "AAPL", "--percentage", "-5"],
    ["close", "BTC/USD"],
    ["close", "AAPL", "--bogus"],
    ["positions", "NOT A SYMBOL"],
    ["positions", "AAPL", "MSFT"],
]


@pytest.mark.parametrize("argv", BAD_INPUTS, ids=[f"bad{i}" for i in range(len(BAD_INPUTS))])
def test_bad_input_exits_2_with_one_line_and_sends_nothing(
    sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert_refused_before_sending(sandbox, tmp_path, monkeypatch, capfd, argv)


def test_positions_lists_all_or_one(sandbox: Any, tmp_path: Path) -> None:
    hold(sandbox, "XOM", 7)
    hold(sandbox, "CVX", 3, side="sell")
    listed = {p["symbol"]: p for p in json_lines(cli(sandbox, tmp_path, "positions", "-o", "json").stdout)}
    assert listed["XOM"]["qty"] == 7 and listed["XOM"]["side"] == "long"
    assert listed["CVX"]["qty"] == -3 and listed["CVX"]["side"] == "short"
    assert all(p["type"] == "position" for p in listed.values())

    [one] = json_lines(cli(sandbox, tmp_path, "positions", "xom", "-o", "json").stdout)
    assert {k: one[k] for k in ("symbol", "side", "qty", "avg_entry_price")} == {
        k: listed["XOM"][k] for k in ("symbol", "side", "qty", "avg_entry_price")
    }  # prices move between the two calls
    table = cli(sandbox, tmp_path, "positions", "-o", "table")
    assert "XOM" in table.stdout and "CVX" in table.stdout
    none = cli(sandbox, tmp_path, "positions", "ZION")
    assert none.returncode == 1 and "no open position in ZION" in none.stderr


def test_close_part_and_record_it_in_the_state_file(sandbox: Any, tmp_path: Path) -> None:
    hold(sandbox, "COP", 10)
    path = tmp_path / "state.json"
    statefile.save(path, State.empty(sandbox.call(lambda: sandbox.broker.account())["id"]))
    before = served(sandbox, CLOSE_ONE)
    result = cli(sandbox, tmp_path, "close", "COP", "--qty", "4", "--state", str(path), "-o", "json")
    assert result.returncode == 0, result.stderr
    [line] = json_lines(result.stdout)
    assert (line["type"], line["symbol"], line["side"], line["qty"], line["ok"]) == ("close", "COP", "sell", 4, True)
    assert served(sandbox, CLOSE_ONE) - before == 1
    state = statefile.load(path)
    assert line["order_id"] in state.open_orders or line["order_id"] in state.closed_orders

    half = cli(sandbox, tmp_path, "close", "COP", "--percentage", "50", "-o", "json")
    assert half.returncode == 0, half.stderr
    assert json_lines(half.stdout)[0]["qty"] == 3


def test_a_lost_answer_closes_once(sandbox: Any, tmp_path: Path) -> None:
    hold(sandbox, "EOG", 5)
    sandbox.set_faults(drop_after_accept=1)
    before = served(sandbox, CLOSE_ONE)
    result = cli(sandbox, tmp_path, "close", "EOG", "-o", "json")
    assert result.returncode == 0, result.stderr
    [line] = json_lines(result.stdout)
    assert line["recovered"] is True and line["qty"] == 5
    assert "nothing was sent twice" in result.stderr
    assert served(sandbox, CLOSE_ONE) - before == 1
    assert [o["id"] for o in closing_orders(sandbox, "EOG")] == [line["order_id"]]


def test_a_lost_answer_of_close_all_closes_each_once(sandbox: Any, tmp_path: Path) -> None:
    sandbox.reset()
    hold(sandbox, "SLB", 2)
    hold(sandbox, "OXY", 6)
    sandbox.set_faults(drop_after_accept=1)
    before = served(sandbox, CLOSE_ALL)
    result = cli(sandbox, tmp_path, "close", "--all", "--yes", "-o", "json")
    assert result.returncode == 0, result.stderr
    lines = json_lines(result.stdout)
    assert sorted((line["symbol"], line["qty"]) for line in lines) == [("OXY", 6), ("SLB", 2)]
    assert served(sandbox, CLOSE_ALL) - before == 1
    assert len(closing_orders(sandbox, "SLB")) == len(closing_orders(sandbox, "OXY")) == 1


def test_close_all_cancels_orders_first_when_asked(sandbox: Any, tmp_path: Path) -> None:
    sandbox.reset()
    hold(sandbox, "PSX", 4)
    price = sandbox.call(lambda: sandbox.broker.price("PSX"))
    resting = {
        "symbol": "PSX",
        "qty": "1",
        "side": "buy",
        "type": "limit",
        "time_in_force": "gtc",
        "limit_price": str((price / 2).quantize(Decimal("0.01"))),
    }
    order = sandbox.call(lambda: sandbox.broker.submit(resting))
    result = cli(sandbox, tmp_path, "close", "--all", "--cancel-orders", "--yes", "-o", "json")
    assert result.returncode == 0, result.stderr
    assert sandbox.call(lambda: sandbox.broker.get_order(order["id"]))["status"] == "canceled"


def test_dry_run_and_nothing_to_close_send_no_close(sandbox: Any, tmp_path: Path) -> None:
    hold(sandbox, "MPC", 8, side="sell")
    before = served(sandbox, CLOSE_ONE) + served(sandbox, CLOSE_ALL)
    dry = cli(sandbox, tmp_path, "close", "MPC", "--qty", "2", "--dry-run", "-o", "json")
    assert dry.returncode == 0, dry.stderr
    assert json_lines(dry.stdout) == [
        {
            "type": "close_request",
            "environment": "sandbox",
            "symbol": "MPC",
            "side": "buy",
            "position_side": "short",
            "position_qty": 8,
            "qty": 2,
        }
    ]
    every = cli(sandbox, tmp_path, "close", "--all", "--dry-run", "-o", "json")
    assert every.returncode == 0 and any(line["symbol"] == "MPC" for line in json_lines(every.stdout))
    missing = cli(sandbox, tmp_path, "close", "VLO")
    assert missing.returncode == 1 and "no open position in VLO" in missing.stderr
    too_many = cli(sandbox, tmp_path, "close", "MPC", "--qty", "9")
    assert too_many.returncode == 1 and "the position is 8" in too_many.stderr
    assert served(sandbox, CLOSE_ONE) + served(sandbox, CLOSE_ALL) == before


LIVE = {"APCA_API_BASE_URL": "https://api.alpaca.markets:1", "APCA_API_KEY_ID": "K", "APCA_API_SECRET_KEY": "S"}


@pytest.mark.parametrize(
    "argv",
    [
        ["close", "AAPL"],
        ["close", "AAPL", "--yes"],
        ["close", "AAPL", "--live"],
        ["close", "--all", "--yes"],
        ["close", "--all", "--live"],
    ],
)
def test_live_needs_the_flag_and_a_confirmation(tmp_path: Path, argv: list[str]) -> None:
    result = run_cli(*argv, env=cli_env(tmp_path, **LIVE), timeout=30)
    assert result.returncode == 2, result.stderr
    assert "[LIVE]" in result.stderr and "nothing was sent" in result.stderr


class AccountOnlyBroker:
    """Knows the account; anything else fails the test."""

    async def account(self) -> Any:
        from alpaca_cli.domain import Account

        return Account(id="acct-1", account_number="LIVE777", status="ACTIVE")


def test_the_live_prompt_names_what_will_be_sold_and_a_no_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from alpaca_cli.commands import close
    from alpaca_cli.domain import Position
    from alpaca_cli.invocation import preflight

    asked: list[str] = []

    def answer_no(text: str, **_: Any) -> bool:
        asked.append(text)
        return False

    monkeypatch.setattr(close.typer, "confirm", answer_no)
    action = close._what(Position("NVDA", Decimal(12), "long", Decimal(100)), Decimal(5), None)
    with pytest.raises(orders.NotConfirmed) as declined:
        asyncio.run(preflight(AccountOnlyBroker(), "confirm", action))  # type: ignore[arg-type]
    assert declined.value.exit_code == 1
    assert asked == ["LIVE account LIVE777: sell 5 NVDA at market (closing the long position of 12). Proceed?"]


def test_the_prompt_of_close_all_names_each_side_and_size() -> None:
    from alpaca_cli.commands import close
    from alpaca_cli.domain import Position

    held = [Position("AAPL", Decimal(10), "long", Decimal(1)), Position("TSLA", Decimal(5), "short", Decimal(1))]
    assert close._what_all(held, True) == (
        "close 2 positions at market after canceling every open order: sell 10 AAPL, buy 5 TSLA"
    )
    assert close._what_all(held, False, named=1) == "close 2 positions at market: sell 10 AAPL and 1 more"


def test_a_close_that_never_arrived_is_sent_again_only_after_the_listings_stay_empty_and_is_labelled_sent(
    sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """The first DELETE fails before reaching the broker: listings show nothing for the deadline, then one resend."""
    import time

    from alpaca_cli.bridge import Broker
    from alpaca_cli.errors import UnreachableError

    hold(sandbox, "HAL", 6)
    real = Broker.close_position
    sent: list[float] = []

    async def lost_first(self: Any, symbol: str, **kw: Any) -> Any:
        sent.append(time.monotonic())
        if len(sent) == 1:
            raise UnreachableError(f"DELETE /v2/positions/{symbol}: connection dropped")
        return await real(self, symbol, **kw)

    for name, value in cli_env(tmp_path, sandbox.url, ALPACA_CLI_DEADLINE="2").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(Broker, "close_position", lost_first)
    before = served(sandbox, CLOSE_ONE)
    with pytest.raises(SystemExit) as exited:
        main(["close", "HAL", "--qty", "2", "--sandbox", "-o", "json"])
    out, err = capfd.readouterr()
    assert exited.value.code == 0, err
    [line] = json_lines(out)
    assert (line["symbol"], line["qty"], line["recovered"]) == ("HAL", 2, False)
    assert "sent once more" in err and "nothing was sent twice" not in err
    assert len(sent) == 2 and sent[1] - sent[0] >= 2  # the listings' patience came first
    assert served(sandbox, CLOSE_ONE) - before == 1
    assert [o["id"] for o in closing_orders(sandbox, "HAL")] == [line["order_id"]]
