"""The write-ahead writer of `tail --state` on its own: what a stop finds queued is not lost."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from strategies import ACCOUNT_ID

from alpaca_cli import statefile
from alpaca_cli.domain import Account, Order, Snapshot, TradeUpdate
from alpaca_cli.writeahead import WriteAhead

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def _new(oid: str) -> TradeUpdate:
    order = Order(
        id=oid,
        client_order_id=f"c-{oid}",
        symbol="AAPL",
        side="buy",
        type="market",
        time_in_force="day",
        status="new",
        submitted_at=T0,
        qty=Decimal(1),
    )
    return TradeUpdate("new", order, T0 + timedelta(seconds=1))


@pytest.mark.timeout(30)
def test_a_stop_while_the_reader_is_behind_still_saves_and_prints_what_was_queued(tmp_path: Path) -> None:
    # The writer waits for the last batch's lines to leave the process before it saves the next;
    # a stop landing in that wait once dropped the next batch: never saved, never printed.
    path = tmp_path / "state.json"
    printed: list[str] = []
    reader_caught_up = asyncio.Event()

    async def lines_out() -> None:
        await reader_caught_up.wait()

    def hand_over(events: list[TradeUpdate]) -> list[TradeUpdate]:
        printed.extend(event.order.id for event in events)
        return []  # the reader took them all

    async def run() -> None:
        writer = WriteAhead(path, hand_over, _fail, lines_out)
        snapshot = Snapshot(Account(id=ACCOUNT_ID, account_number="PA1", status="ACTIVE"), (), (), T0)
        await writer.start(snapshot)
        writer.events([_new("o-1")], [_new("o-1")])
        while printed != ["o-1"]:  # saved, then handed to the reader, who falls behind
            await asyncio.sleep(0.01)
        writer.events([_new("o-2")], [_new("o-2")])
        await asyncio.sleep(0.1)  # the writer now waits for o-1's line to leave
        asyncio.get_running_loop().call_later(0.2, reader_caught_up.set)  # during the stop's own wait
        await writer.close()

    asyncio.run(run())
    assert printed == ["o-1", "o-2"]
    assert set(statefile.load(path).open_orders) == {"o-1", "o-2"}


def _fail(error: Exception) -> None:
    raise AssertionError(f"the writer failed: {error}")
