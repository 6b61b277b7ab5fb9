"""The output layer's JSON: exact decimals, RFC 3339 times, one object per line."""

from __future__ import annotations

import dataclasses
import decimal
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import strategies
from hypothesis import given
from hypothesis import strategies as st

from alpaca_cli.core.identity import event_id
from alpaca_cli.domain import TradeUpdate
from alpaca_cli.output import Output, dumps, records
from alpaca_cli.text import decimal_text, rfc3339


def test_decimals_are_exact_numbers_without_noise() -> None:
    assert dumps({"a": Decimal("0.1"), "b": Decimal("100.000"), "c": Decimal("1E+2")}) == '{"a":0.1,"b":100,"c":100}'
    assert dumps([Decimal("-0.000"), Decimal("12345678901234567890.123456789")]) == "[0,12345678901234567890.123456789]"
    assert dumps(Decimal("NaN")) == "null"


@given(st.decimals(allow_nan=False, allow_infinity=False, places=9))
def test_decimal_round_trips_through_json(value: Decimal) -> None:
    assert json.loads(dumps({"v": value}), parse_float=Decimal, parse_int=Decimal)["v"] == value


@given(
    st.dictionaries(
        st.text(), st.one_of(st.none(), st.booleans(), st.integers(), st.text(), st.floats(allow_nan=False))
    )
)
def test_plain_values_match_the_json_module(value: dict) -> None:
    finite = {k: None if isinstance(v, float) and abs(v) == float("inf") else v for k, v in value.items()}
    assert json.loads(dumps(value)) == finite


@given(st.decimals(allow_nan=True, allow_infinity=True) | st.decimals(places=8))
def test_a_decimal_is_written_as_its_exact_digits_without_exponent_or_trailing_zeros(value: Decimal) -> None:
    text = decimal_text(value)
    if not value.is_finite():
        assert text == "null"
        return
    assert Decimal(text) == value
    assert "e" not in text.lower() and text != "-0"
    assert not text.endswith(".") and not ("." in text and text.endswith("0"))


def test_a_decimal_is_written_without_exponent_in_any_decimal_context() -> None:
    with decimal.localcontext(capitals=0):  # str() then writes "1e+2"
        assert [decimal_text(Decimal(v)) for v in ("1E+2", "1.5E-7")] == ["100", "0.00000015"]


def test_datetimes_are_rfc3339_utc_with_z() -> None:
    east = timezone(timedelta(hours=2))
    assert rfc3339(datetime(2024, 5, 1, 12, 0, tzinfo=east)) == "2024-05-01T10:00:00Z"
    assert rfc3339(datetime(2024, 5, 1, 12, 0, 0, 123456)) == "2024-05-01T12:00:00.123456Z"
    assert dumps({"t": datetime(2024, 1, 2, tzinfo=UTC)}) == '{"t":"2024-01-02T00:00:00Z"}'


def test_dataclasses_serialise_by_field() -> None:
    @dataclass
    class Fill:
        qty: Decimal
        at: datetime

    assert json.loads(dumps(Fill(Decimal("1.5"), datetime(2024, 1, 1, tzinfo=UTC)))) == {
        "qty": 1.5,
        "at": "2024-01-01T00:00:00Z",
    }


def test_emit_writes_one_flushed_line_per_record() -> None:
    sink = io.StringIO()
    out = Output("auto", stdout=sink)
    assert out.json  # a StringIO is not a terminal: auto means JSON
    out.emit({"type": "x", "n": 1})
    out.emit({"type": "y"})
    assert sink.getvalue() == '{"type":"x","n":1}\n{"type":"y"}\n'
    assert Output("table", stdout=sink).json is False


def test_trade_update_text_is_one_aligned_line() -> None:
    from alpaca_cli.domain import Order, TradeUpdate
    from alpaca_cli.output import trade_update_text

    order = Order(
        id="o1",
        client_order_id="c1",
        symbol="AAPL",
        side="buy",
        type="market",
        time_in_force="day",
        status="filled",
        submitted_at=datetime(2026, 1, 2, tzinfo=UTC),
        qty=Decimal("10"),
        filled_qty=Decimal("10.000"),
    )
    at = datetime(2026, 1, 2, 12, 0, 35, 646123, tzinfo=UTC)
    fill = TradeUpdate("fill", order, at, price=Decimal("229.160"), qty=Decimal("10"), source="reconcile")
    text = trade_update_text(fill)
    assert text.plain == f"12:00:35.646  AAPL   buy  {'fill 10 @ 229.16':<28} {'10/10':<13} {'filled':<16} reconcile"
    assert any(span.style == "magenta" for span in text.spans)  # recovered events stand out


@given(strategies.trade_updates(), st.none() | st.text(max_size=30))
def test_a_trade_update_line_is_json_with_the_update_s_exact_values(update: TradeUpdate, reason: str | None) -> None:
    """`records.trade_update` writes its JSON by hand (tail's hot path): whatever the values
    (quotes, backslashes, control or non-ASCII characters in a reason), it parses back to them."""
    update = dataclasses.replace(update, reason=reason)
    line = records.trade_update(update)
    assert "\n" not in line
    parsed = json.loads(line, parse_float=Decimal, parse_int=Decimal)
    order = update.order
    expected = {
        "type": "trade_update",
        "id": event_id(update),
        "event": update.event,
        "order_id": order.id,
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side,
        "order_type": order.type,
        "order_qty": order.qty,
        "order_notional": order.notional,
        "limit_price": order.limit_price,
        "stop_price": order.stop_price,
        "order_status": order.status,
        "filled_qty": order.filled_qty,
        "filled_avg_price": order.filled_avg_price,
        "qty": update.qty,
        "price": update.price,
        "position_qty": update.position_qty,
        "execution_id": update.execution_id,
        "reason": reason,
        "timestamp": rfc3339(update.timestamp),
        "source": update.source,
    }
    assert list(parsed) == list(expected)  # the contract's field order
    assert parsed == expected
    assert line == dumps(expected)  # byte for byte what the generic writer makes of the same values


def test_line_sink_off_a_pipe_writes_blocking_lines() -> None:
    import asyncio

    stdout = io.StringIO()
    sink = Output("json", stdout=stdout).line_sink()

    async def run() -> bool:
        await sink.open()
        behind = sink.write('{"type":"x"}\n')
        await sink.close()
        return behind

    assert asyncio.run(run()) is False
    assert stdout.getvalue() == '{"type":"x"}\n'


@pytest.mark.timeout(20)
def test_line_sink_on_a_pipe_waits_for_a_slow_reader_and_loses_nothing() -> None:
    import asyncio
    import os
    import threading

    read_fd, write_fd = os.pipe()
    stdout = os.fdopen(write_fd, "w")
    sink = Output("json", stdout=stdout).line_sink()
    line = "x" * 1000 + "\n"
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(_read_all(read_fd)))

    async def run() -> int:
        await sink.open()
        paused_at = 0
        for n in range(1, 501):  # 500 kB: far beyond a pipe's buffer
            if sink.write(line):
                paused_at = paused_at or n
                if not reader.is_alive():
                    reader.start()  # the reader arrives only once the writer is behind
                await sink.drain()
        await sink.close()
        return paused_at

    try:
        paused_at = asyncio.run(run())
        assert os.get_blocking(write_fd)  # handed back blocking, as the exit path expects
    finally:
        stdout.close()
    reader.join(10)
    assert 0 < paused_at < 500
    assert received == [line.encode() * 500]


def _read_all(fd: int) -> bytes:
    import os

    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)
