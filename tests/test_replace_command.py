"""`replace` end to end: the real entry point against the sandbox, rate limit on.

A lost answer is the sandbox's `drop_after_accept` fault (the order is
replaced, the answer never arrives); PATCH counts and the order book prove
nothing was replaced twice.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers import assert_refused_before_sending, cli_env, json_lines, run_cli, served

from alpaca_cli.cli import main

pytestmark = pytest.mark.timeout(120)

PATCH = "PATCH /v2/orders/{order_id}"
SOME_ID = "6f1f2a52-1f0e-4b8e-9a51-3c2d0f3b9e11"


def cli(sandbox: Any, tmp_path: Path, *args: str) -> Any:
    return run_cli(*args, "--sandbox", env=cli_env(tmp_path, sandbox.url))


def resting(sandbox: Any, symbol: str, kind: str = "limit") -> dict[str, Any]:
    """A buy far below the market that stays working, placed without a request."""
    price = sandbox.call(lambda: sandbox.broker.price(symbol))
    low = str((price / 2).quantize(Decimal("0.01")))
    body: dict[str, Any] = {"symbol": symbol, "qty": "5", "side": "buy", "type": kind, "time_in_force": "gtc"}
    body["limit_price" if kind == "limit" else "stop_price"] = low if kind == "limit" else str(price * 2)
    return sandbox.call(lambda: sandbox.broker.submit(body))


BAD_INPUTS: list[list[str]] = [
    ["replace"],
    ["replace", "not-a-uuid", "--qty", "1"],
    ["replace", SOME_ID],
    ["replace", SOME_ID, "--qty", "0"],
    ["replace", SOME_ID, "--qty", "1.5"],
    ["replace", SOME_ID, "--limit-price", "10.123"],
    ["replace", SOME_ID, "--limit-price", "abc"],
    ["replace", SOME_ID, "--stop-price", "-1"],
    ["replace", SOME_ID, "--trail", "0"],
    ["replace", SOME_ID, "--tif", "forever"],
    ["replace", SOME_ID, "--qty", "1", "--client-order-id", "x" * 129],
    ["replace", SOME_ID, "--qty", "1", "--bogus"],
]


@pytest.mark.parametrize("argv", BAD_INPUTS, ids=[f"bad{i}" for i in range(len(BAD_INPUTS))])
def test_bad_input_exits_2_with_one_line_and_sends_nothing(
    sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert_refused_before_sending(sandbox, tmp_path, monkeypatch, capfd, argv)


def test_a_flag_that_does_not_fit_the_order_exits_2_without_a_patch(sandbox: Any, tmp_path: Path) -> None:
    order = resting(sandbox, "ADBE")
    before = served(sandbox, PATCH)
    for flag in ("--stop-price", "--trail"):
        result = cli(sandbox, tmp_path, "replace", order["id"], flag, "5")
        assert result.returncode == 2, result.stderr
        assert "does not apply" in result.stderr and "nothing was changed" in result.stderr
    assert served(sandbox, PATCH) == before


def test_replace_changes_the_order_and_links_both(sandbox: Any, tmp_path: Path) -> None:
    order = resting(sandbox, "CRM")
    new_limit = (Decimal(order["limit_price"]) - 1).quantize(Decimal("0.01"))
    result = cli(sandbox, tmp_path, "replace", order["id"], "--qty", "7", "--limit-price", str(new_limit), "-o", "json")
    assert result.returncode == 0, result.stderr
    [line] = json_lines(result.stdout)
    assert line["type"] == "order" and line["replaces"] == order["id"]
    assert line["qty"] == 7 and Decimal(str(line["limit_price"])) == new_limit
    assert line["client_order_id"].startswith("acli-")
    old = sandbox.call(lambda: sandbox.broker.get_order(order["id"]))
    assert old["status"] == "replaced" and old["replaced_by"] == line["id"]

    again = cli(sandbox, tmp_path, "replace", order["id"], "--qty", "8")
    assert again.returncode == 1 and "already replaced" in again.stderr


def test_a_lost_answer_replaces_once(sandbox: Any, tmp_path: Path) -> None:
    order = resting(sandbox, "ORCL")
    sandbox.set_faults(drop_after_accept=1)
    before = served(sandbox, PATCH)
    result = cli(sandbox, tmp_path, "replace", order["id"], "--qty", "9", "-o", "json")
    assert result.returncode == 0, result.stderr
    [line] = json_lines(result.stdout)
    assert line["recovered"] is True and line["qty"] == 9 and line["replaces"] == order["id"]
    assert "nothing was sent twice" in result.stderr
    assert served(sandbox, PATCH) - before == 1
    listed = sandbox.call(lambda: sandbox.broker.list_orders(status="all", limit=500, symbols=["ORCL"]))
    assert sorted(o["id"] for o in listed) == sorted([order["id"], line["id"]])


def test_dry_run_sends_no_patch(sandbox: Any, tmp_path: Path) -> None:
    order = resting(sandbox, "INTU", kind="stop")
    before = served(sandbox, PATCH)
    result = cli(
        sandbox, tmp_path, "replace", order["id"], "--stop-price", "999", "--client-order-id", "r-1", "--dry-run"
    )
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout) == [
        {
            "type": "replace_request",
            "environment": "sandbox",
            "order_id": order["id"],
            "client_order_id": "r-1",
            "stop_price": 999,
        }
    ]
    assert served(sandbox, PATCH) == before


def test_unknown_order_is_a_clean_no(sandbox: Any, tmp_path: Path) -> None:
    result = cli(sandbox, tmp_path, "replace", str(uuid.uuid4()), "--qty", "1")
    assert result.returncode == 1 and "not found" in result.stderr


LIVE = {"APCA_API_BASE_URL": "https://api.alpaca.markets:1", "APCA_API_KEY_ID": "K", "APCA_API_SECRET_KEY": "S"}


@pytest.mark.parametrize("extra", [[], ["--yes"], ["--live"]])
def test_live_needs_the_flag_and_a_confirmation(tmp_path: Path, extra: list[str]) -> None:
    result = run_cli("replace", SOME_ID, "--qty", "1", *extra, env=cli_env(tmp_path, **LIVE), timeout=30)
    assert result.returncode == 2, result.stderr
    assert "[LIVE]" in result.stderr and "nothing was sent" in result.stderr


class AccountOnlyBroker:
    """Knows the account; anything else fails the test."""

    async def account(self) -> Any:
        from alpaca_cli.domain import Account

        return Account(id="acct-1", account_number="LIVE777", status="ACTIVE")


def test_the_live_prompt_names_the_order_and_the_change(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    from datetime import UTC, datetime

    from alpaca_cli import orders, replacing
    from alpaca_cli.domain import Order
    from alpaca_cli.invocation import preflight

    asked: list[str] = []

    def answer_no(text: str, **_: Any) -> bool:
        asked.append(text)
        return False

    monkeypatch.setattr("typer.confirm", answer_no)
    at = datetime.now(UTC)
    old = Order(SOME_ID, "c-1", "NVDA", "buy", "limit", "day", "new", at, qty=Decimal(10), limit_price=Decimal(120))
    action = replacing.describe(old, replacing.validate_changes(limit_price="121.5"))
    with pytest.raises(orders.NotConfirmed):
        asyncio.run(preflight(AccountOnlyBroker(), "confirm", action))  # type: ignore[arg-type]
    assert asked == [f"LIVE account LIVE777: replace buy 10 NVDA limit (order {SOME_ID}): limit 120 -> 121.5. Proceed?"]


def test_a_patch_refused_after_a_lost_answer_is_exit_4_naming_the_replacement(
    sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """The first PATCH acts but its answer is lost; lookups lag, so a second PATCH goes and is refused."""
    import dataclasses

    from alpaca_cli.bridge import Broker

    real_order = Broker.order

    async def lagging_lookup(self: Any, client_order_id: str) -> None:
        return None

    async def lagging_order(self: Any, order_id: str, *, nested: bool = False) -> Any:
        return dataclasses.replace(await real_order(self, order_id, nested=nested), replaced_by=None)

    for name, value in cli_env(tmp_path, sandbox.url).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(Broker, "order_by_client_id", lagging_lookup)
    monkeypatch.setattr(Broker, "order", lagging_order)
    order = resting(sandbox, "WDAY")
    sandbox.set_faults(drop_after_accept=1)
    before = served(sandbox, PATCH)
    with pytest.raises(SystemExit) as exited:
        main(["replace", order["id"], "--qty", "6", "--client-order-id", "r-wday-1", "-q", "--sandbox", "-o", "json"])
    out, err = capfd.readouterr()
    assert exited.value.code == 4, err
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert "may have replaced it" in err and "r-wday-1" in err
    assert served(sandbox, PATCH) - before == 2
    made = sandbox.call(lambda: sandbox.broker.get_order_by_client_id("r-wday-1"))
    assert made["replaces"] == order["id"]  # the replacement the line warns about exists


def test_a_second_patch_after_one_that_never_arrived_is_labelled_sent(
    sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """The first PATCH fails before reaching the broker; the lookup finds nothing; the second is answered."""
    from alpaca_cli.bridge import Broker
    from alpaca_cli.errors import UnreachableError

    real = Broker.replace_order
    sent: list[str] = []

    async def lost_first(self: Any, order_id: str, changes: Any) -> Any:
        sent.append(order_id)
        if len(sent) == 1:
            raise UnreachableError(f"PATCH /v2/orders/{order_id}: connection dropped")
        return await real(self, order_id, changes)

    for name, value in cli_env(tmp_path, sandbox.url).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(Broker, "replace_order", lost_first)
    order = resting(sandbox, "NOW")
    with pytest.raises(SystemExit) as exited:
        main(["replace", order["id"], "--qty", "4", "--sandbox", "-o", "json"])
    out, err = capfd.readouterr()
    assert exited.value.code == 0, err
    [line] = json_lines(out)
    assert line["recovered"] is False and line["qty"] == 4 and line["replaces"] == order["id"]
    assert "sent once more" in err and "nothing was sent twice" not in err
