"""`submit` with exits: bracket, OTO and OCO orders, validated locally, placed once, shown with their legs."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers import assert_refused_before_sending, cli_env, json_lines, run_cli, served

from alpaca_cli.cli import main

pytestmark = pytest.mark.timeout(120)

POST = "POST /v2/orders"


def cli(sandbox: Any, tmp_path: Path, *args: str) -> Any:
    return run_cli(*args, "--sandbox", env=cli_env(tmp_path, sandbox.url))


def price_of(sandbox: Any, symbol: str) -> Decimal:
    return sandbox.call(lambda: sandbox.broker.price(symbol))


def cents(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


BUY = ["submit", "AAPL", "buy", "--qty", "1"]
BAD_INPUTS: list[list[str]] = [
    [*BUY, "--take-profit", "500"],
    [*BUY, "--stop-loss", "100"],
    [*BUY, "--take-profit", "500", "--stop-loss-limit", "99"],
    [*BUY, "--order-class", "simple", "--take-profit", "500"],
    [*BUY, "--order-class", "bracket", "--take-profit", "500"],
    [*BUY, "--order-class", "oto", "--take-profit", "500", "--stop-loss", "100"],
    [*BUY, "--order-class", "oto"],
    [*BUY, "--order-class", "triangle", "--take-profit", "500", "--stop-loss", "100"],
    [*BUY, "--order-class", "oco", "--take-profit", "500", "--stop-loss", "100"],
    [*BUY, "--order-class", "oco", "--type", "limit", "--limit-price", "5", "--take-profit", "6", "--stop-loss", "4"],
    ["submit", "AAPL", "buy", "--qty", "0.5", "--take-profit", "500", "--stop-loss", "100"],
    [*BUY, "--tif", "ioc", "--take-profit", "500", "--stop-loss", "100"],
    [*BUY, "--type", "limit", "--limit-price", "100", "--take-profit", "99", "--stop-loss", "90"],
    [*BUY, "--type", "limit", "--limit-price", "100", "--take-profit", "120", "--stop-loss", "101"],
    [*BUY, "--take-profit", "90", "--stop-loss", "100"],
    ["submit", "AAPL", "sell", "--qty", "1", "--take-profit", "110", "--stop-loss", "100"],
    [*BUY, "--type", "stop", "--stop-price", "5", "--take-profit", "500", "--stop-loss", "100"],
    [*BUY, "--take-profit", "500.123", "--stop-loss", "100"],
    [*BUY, "--take-profit", "-5", "--stop-loss", "100"],
    [*BUY, "--notional", "10", "--take-profit", "500", "--stop-loss", "100"],
]


@pytest.mark.parametrize("argv", BAD_INPUTS, ids=[f"bad{i}" for i in range(len(BAD_INPUTS))])
def test_bad_exits_exit_2_with_one_line_and_send_nothing(
    sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert_refused_before_sending(sandbox, tmp_path, monkeypatch, capfd, argv)


def test_a_bracket_is_placed_once_under_a_lost_answer_and_shown_with_its_legs(sandbox: Any, tmp_path: Path) -> None:
    price = price_of(sandbox, "TXN")
    sandbox.set_faults(drop_after_accept=1)
    before = served(sandbox, POST)
    result = cli(
        sandbox,
        tmp_path,
        *("submit", "TXN", "buy", "--qty", "3", "--type", "limit", "--limit-price", cents(price * Decimal("0.9"))),
        *("--take-profit", cents(price * 2), "--stop-loss", cents(price / 2), "--stop-loss-limit", cents(price / 3)),
        "-o",
        "json",
    )
    assert result.returncode == 0, result.stderr
    [line] = json_lines(result.stdout)
    assert line["order_class"] == "bracket"
    assert sorted(leg["order_type"] for leg in line["legs"]) == ["limit", "stop_limit"]
    assert all(leg["side"] == "sell" and leg["status"] == "held" for leg in line["legs"])
    assert served(sandbox, POST) - before == 1
    listed = sandbox.call(lambda: sandbox.broker.list_orders(status="all", limit=500, symbols=["TXN"]))
    assert len(listed) == 3

    table = cli(
        sandbox,
        tmp_path,
        *(
            "submit",
            "QCOM",
            "buy",
            "--qty",
            "1",
            "--order-class",
            "oto",
            "--stop-loss",
            cents(price_of(sandbox, "QCOM") / 2),
        ),
        "-o",
        "table",
    )
    assert table.returncode == 0, table.stderr
    assert "Its oto exits" in table.stdout and "stop" in table.stdout


def test_an_oco_exits_a_held_position(sandbox: Any, tmp_path: Path) -> None:
    body = {"symbol": "AMAT", "qty": "4", "side": "buy", "type": "market", "time_in_force": "day"}
    sandbox.call(lambda: sandbox.broker.submit(body))
    for _ in range(100):
        sandbox.call(lambda: sandbox.broker.step())
        if sandbox.call(lambda: sandbox.broker.position_qty("AMAT")) == 4:
            break
    price = price_of(sandbox, "AMAT")
    result = cli(
        sandbox,
        tmp_path,
        *("submit", "AMAT", "sell", "--qty", "4", "--type", "limit", "--order-class", "oco", "--tif", "gtc"),
        *("--take-profit", cents(price * 2), "--stop-loss", cents(price / 2)),
        "-o",
        "json",
    )
    assert result.returncode == 0, result.stderr
    [line] = json_lines(result.stdout)
    assert line["order_class"] == "oco" and line["limit_price"] == float(cents(price * 2))
    assert [leg["order_type"] for leg in line["legs"]] == ["stop"]


def test_tail_and_the_state_file_follow_the_legs_as_orders_of_their_own(sandbox: Any, tmp_path: Path) -> None:
    from helpers import spawn_cli

    from alpaca_cli import statefile
    from alpaca_cli.core import State

    path = tmp_path / "state.json"
    statefile.save(path, State.empty(sandbox.call(lambda: sandbox.broker.account())["id"]))
    env = cli_env(tmp_path, sandbox.url)
    tail = spawn_cli(
        *("tail", "trade-updates", "--sandbox", "--state", str(path), "--symbols", "KLAC", "-o", "json"),
        *("--count", "4", "--duration", "30"),
        env=env,
    )
    try:
        assert tail.stderr is not None
        line = "?"
        while "stream connected" not in line:  # notices may come first
            line = tail.stderr.readline()
            assert line, "tail ended before its stream connected"
        price = price_of(sandbox, "KLAC")
        placed = cli(
            sandbox,
            tmp_path,
            *(
                "submit",
                "KLAC",
                "buy",
                "--qty",
                "2",
                "--take-profit",
                cents(price * 2),
                "--stop-loss",
                cents(price / 2),
            ),
            "-o",
            "json",
        )
        assert placed.returncode == 0, placed.stderr
        out, _ = tail.communicate(timeout=40)
    finally:
        if tail.poll() is None:
            tail.kill()
    legs = {leg["id"] for leg in json_lines(placed.stdout)[0]["legs"]}
    events = [(line["event"], line["order_id"]) for line in json_lines(out)]
    assert sorted(e for e, oid in events if oid in legs) == ["new", "new"]  # each exit goes live once the entry fills
    assert legs <= set(statefile.load(path).open_orders)


def test_a_recovered_bracket_is_reported_and_recorded_when_fetching_its_exits_fails(
    sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """The answer is lost, the order found by client id, then the nested fetch fails: the order still counts."""
    from alpaca_cli import statefile
    from alpaca_cli.bridge import Broker
    from alpaca_cli.core import State
    from alpaca_cli.errors import UnreachableError

    async def failing_when_nested(self: Any, order_id: str, *, nested: bool = False) -> Any:
        raise UnreachableError(f"GET /v2/orders/{order_id}: timed out")

    for name, value in cli_env(tmp_path, sandbox.url).items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "state.json"
    statefile.save(path, State.empty(sandbox.call(lambda: sandbox.broker.account())["id"]))
    monkeypatch.setattr(Broker, "order", failing_when_nested)
    price = price_of(sandbox, "ADI")
    sandbox.set_faults(drop_after_accept=1)
    before = served(sandbox, POST)
    with pytest.raises(SystemExit) as exited:
        main(
            [
                *("submit", "ADI", "buy", "--qty", "2", "--order-class", "BRACKET", "--state", str(path)),
                *("--take-profit", cents(price * 2), "--stop-loss", cents(price / 2), "--sandbox", "-o", "json"),
            ]
        )
    out, err = capfd.readouterr()
    assert exited.value.code == 0, err
    [line] = json_lines(out)
    assert (line["symbol"], line["order_class"], line["submission"]) == ("ADI", "bracket", "recovered")
    assert "fetching its exit orders failed" in err and f"orders get {line['id']}" in err
    assert served(sandbox, POST) - before == 1
    state = statefile.load(path)
    assert line["id"] in state.open_orders or line["id"] in state.closed_orders
