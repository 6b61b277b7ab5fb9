"""The sandbox's market calendar at chosen instants, and what follows from it.

The calendar module is pure, so most of this runs at fixed instants without a
server: a Saturday, Thanksgiving and the early close after it, July 3, both
DST changes. The engine and the REST routes are then checked to follow it.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.request
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from alpaca.data.live.stock import StockDataStream
from alpaca.trading.client import TradingClient
from alpaca.trading.requests import GetCalendarRequest

from alpaca_cli.sandbox import calendar
from alpaca_cli.sandbox.engine import PaperBroker
from alpaca_cli.sandbox.orderrequest import parse_order
from alpaca_cli.sandbox.server import SandboxThread

NY = calendar.NEW_YORK


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("at", "is_open", "next_open", "next_close"),
    [
        # A Saturday: closed; Monday's session is next.
        (ny(2026, 11, 28, 12, 0), False, ny(2026, 11, 30, 9, 30), ny(2026, 11, 30, 16, 0)),
        # Thanksgiving: closed; Friday opens and closes early.
        (ny(2026, 11, 26, 11, 0), False, ny(2026, 11, 27, 9, 30), ny(2026, 11, 27, 13, 0)),
        # The day after Thanksgiving: open until 13:00, then closed over the weekend.
        (ny(2026, 11, 27, 12, 59), True, ny(2026, 11, 30, 9, 30), ny(2026, 11, 27, 13, 0)),
        (ny(2026, 11, 27, 13, 0), False, ny(2026, 11, 30, 9, 30), ny(2026, 11, 30, 16, 0)),
        # July 3, 2025 closes early and July 4 is a holiday: the next open is Monday.
        (ny(2025, 7, 3, 12, 0), True, ny(2025, 7, 7, 9, 30), ny(2025, 7, 3, 13, 0)),
        (ny(2025, 7, 3, 14, 0), False, ny(2025, 7, 7, 9, 30), ny(2025, 7, 7, 16, 0)),
        # July 3, 2026 is Independence Day observed; July 2 closes at the usual time.
        (ny(2026, 7, 2, 15, 0), True, ny(2026, 7, 6, 9, 30), ny(2026, 7, 2, 16, 0)),
        (ny(2026, 7, 3, 10, 0), False, ny(2026, 7, 6, 9, 30), ny(2026, 7, 6, 16, 0)),
        # Christmas Eve closes early; Christmas is closed; the next open is Monday the 28th.
        (ny(2026, 12, 24, 13, 30), False, ny(2026, 12, 28, 9, 30), ny(2026, 12, 28, 16, 0)),
        # Open and close instants: open includes 9:30, the close is excluded.
        (ny(2026, 3, 10, 9, 30), True, ny(2026, 3, 11, 9, 30), ny(2026, 3, 10, 16, 0)),
        (ny(2026, 3, 10, 9, 29, 59), False, ny(2026, 3, 10, 9, 30), ny(2026, 3, 10, 16, 0)),
        # The national day of mourning, 2025-01-09.
        (ny(2025, 1, 9, 11, 0), False, ny(2025, 1, 10, 9, 30), ny(2025, 1, 10, 16, 0)),
    ],
)
def test_clock_at_chosen_instants(at: datetime, is_open: bool, next_open: datetime, next_close: datetime) -> None:
    assert calendar.is_open(at) is is_open
    assert calendar.next_open(at) == next_open
    assert calendar.next_close(at) == next_close


def test_the_open_moves_in_utc_across_both_dst_changes() -> None:
    def open_utc(day: date) -> datetime:
        found = calendar.session(day)
        assert found is not None
        return found.open.astimezone(UTC)

    # 2026-03-08: clocks go forward; the 9:30 open moves from 14:30 to 13:30 UTC.
    assert open_utc(date(2026, 3, 6)) == datetime(2026, 3, 6, 14, 30, tzinfo=UTC)
    assert open_utc(date(2026, 3, 9)) == datetime(2026, 3, 9, 13, 30, tzinfo=UTC)
    # 2026-11-01: clocks go back; it moves from 13:30 to 14:30 UTC.
    assert open_utc(date(2026, 10, 30)) == datetime(2026, 10, 30, 13, 30, tzinfo=UTC)
    assert open_utc(date(2026, 11, 2)) == datetime(2026, 11, 2, 14, 30, tzinfo=UTC)
    # Over the spring-forward weekend, the next open is Monday's, in New York time.
    assert calendar.next_open(datetime(2026, 3, 7, 12, tzinfo=UTC)) == ny(2026, 3, 9, 9, 30)


def test_sessions_hours_and_settlement() -> None:
    days = list(calendar.sessions(date(2026, 11, 23), date(2026, 11, 30)))
    assert [s.day.isoformat() for s in days] == ["2026-11-23", "2026-11-24", "2026-11-25", "2026-11-27", "2026-11-30"]
    friday = days[3]
    assert friday.early_close and friday.close == ny(2026, 11, 27, 13, 0)
    assert friday.extended_open == ny(2026, 11, 27, 4, 0) and friday.extended_close == ny(2026, 11, 27, 17, 0)
    assert calendar.settlement_date(date(2026, 11, 25)) == date(2026, 11, 27)  # T+1 over Thanksgiving
    assert calendar.settlement_date(date(2026, 11, 27)) == date(2026, 11, 30)
    assert calendar.in_extended_hours(ny(2026, 11, 27, 16, 59)) and not calendar.in_extended_hours(ny(2026, 11, 27, 17))
    assert {year: sum(d.year == year for d in calendar.HOLIDAYS) for year in calendar.COVERED_YEARS} == {
        2025: 11,  # ten, and the day of mourning
        2026: 10,
        2027: 10,
    }


class SetClock:
    """A clock tests set by hand (one microsecond per read keeps order times apart)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        self.at += timedelta(microseconds=1)
        return self.at


def test_orders_fill_only_in_session_and_day_orders_expire_at_the_close() -> None:
    clock = SetClock(ny(2026, 11, 27, 12, 58).astimezone(UTC))  # the early-close Friday
    broker = PaperBroker(seed=1, now=clock, volatility=0.0)
    broker.set_price("AAPL", Decimal(100))
    base = {"symbol": "AAPL", "side": "buy", "qty": 1}
    day = broker.submit(parse_order({**base, "type": "limit", "limit_price": 50, "time_in_force": "day"}))
    gtc = broker.submit(parse_order({**base, "type": "limit", "limit_price": 50, "time_in_force": "gtc"}))
    broker.step()
    clock.at = ny(2026, 11, 27, 13, 0).astimezone(UTC)
    market = broker.submit(parse_order({**base, "type": "market", "time_in_force": "gtc"}))
    broker.step()
    assert (day.status, gtc.status) == ("expired", "new")
    assert market.status == "new"  # closed: waits for Monday
    clock.at = ny(2026, 11, 30, 9, 30).astimezone(UTC)
    broker.step()
    assert market.status == "filled"


def test_historical_bars_only_inside_sessions() -> None:
    clock = SetClock(ny(2026, 12, 1, 12, 0).astimezone(UTC))
    broker = PaperBroker(seed=1, now=clock)
    minutes = broker.bars(["SPY"], "1Min", start=ny(2026, 11, 27, 16, 55), end=ny(2026, 11, 30, 4, 5), limit=10000)
    stamps = [b.t for b in minutes.bars["SPY"]]
    # Friday's late session ends at 17:00 (early close); Monday's starts at 4:00.
    friday = [datetime(2026, 11, 27, 21, m, tzinfo=UTC) for m in range(55, 60)]
    monday = [datetime(2026, 11, 30, 9, m, tzinfo=UTC) for m in range(0, 6)]
    assert stamps == friday + monday
    days = broker.bars(["SPY"], "1Day", start=ny(2026, 11, 24, 0, 0), end=ny(2026, 11, 30, 23, 0))
    assert [b.t.astimezone(NY).date().day for b in days.bars["SPY"]] == [24, 25, 27, 30]


def test_the_walk_stays_within_a_few_percent_of_the_days_open() -> None:
    clock = SetClock(ny(2026, 3, 10, 10, 0).astimezone(UTC))
    broker = PaperBroker(seed=3, now=clock, volatility=0.01)  # a very nervous market
    start = broker.price("MSFT")
    low = high = start
    for _ in range(5000):
        broker.step()
        price = broker.price("MSFT")
        low, high = min(low, price), max(high, price)
    assert high / start <= Decimal("1.041") and low / start >= Decimal("0.959")
    assert Decimal(380) < start < Decimal(460)  # near its listed reference price


def test_clock_and_calendar_routes_follow_the_calendar() -> None:
    saturday = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)
    with SandboxThread(port=0, now=saturday) as sb:
        client = TradingClient(sb.sandbox.key_id, sb.sandbox.secret_key, paper=True, url_override=sb.url)
        clock = client.get_clock()
        assert clock.is_open is False
        assert clock.next_open == ny(2026, 11, 30, 9, 30) and clock.next_close == ny(2026, 11, 30, 16, 0)
        days = client.get_calendar(GetCalendarRequest(start=date(2026, 11, 25), end=date(2026, 11, 30)))
        assert [(d.date.isoformat(), d.close.strftime("%H:%M")) for d in days] == [
            ("2026-11-25", "16:00"),
            ("2026-11-27", "13:00"),
            ("2026-11-30", "16:00"),
        ]
        # Thanksgiving Friday, as Alpaca spells it.
        state = sb.admin("POST", "/admin/clock", {"now": "2026-11-27T17:59:00Z"})
        assert state["clock"]["is_open"] is True and state["clock"]["next_close"] == "2026-11-27T13:00:00-05:00"
        state = sb.admin("POST", "/admin/clock", {"now": "2026-11-27T18:00:00Z"})
        assert state["clock"]["is_open"] is False
        assert sb.admin("POST", "/admin/clock", {"always_open": True})["clock"]["is_open"] is True
        assert sb.admin("POST", "/admin/clock", {"market_closed": True})["clock"]["is_open"] is False
        assert sb.admin("GET", "/admin/clock")["market_closed"] is True


def test_calendar_route_answers_alpacas_fields() -> None:
    with SandboxThread(port=0) as sb:
        request = urllib.request.Request(
            sb.url + "/v2/calendar?start=2026-11-27&end=2026-11-27",
            headers={"APCA-API-KEY-ID": sb.sandbox.key_id, "APCA-API-SECRET-KEY": sb.sandbox.secret_key},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.loads(response.read())
    assert body == [
        {
            "date": "2026-11-27",
            "open": "09:30",
            "close": "13:00",
            "session_open": "0400",
            "session_close": "1700",
            "settlement_date": "2026-11-30",
        }
    ]


def test_the_bar_stream_is_quiet_while_the_market_is_closed() -> None:
    saturday = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)
    with SandboxThread(port=0, now=saturday, bar_interval=0.2) as sb:
        bars: queue.Queue[Any] = queue.Queue()

        async def on_bar(bar: Any) -> None:
            bars.put(bar)

        ws = "ws" + sb.url.removeprefix("http") + "/v2/iex"
        stream = StockDataStream(sb.sandbox.key_id, sb.sandbox.secret_key, url_override=ws)
        stream.subscribe_bars(on_bar, "SPY")
        thread = threading.Thread(target=stream.run, daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not any(c["subscriptions"].get("bars") for c in sb.admin("GET", "/admin/streams")["data"]):
                assert time.monotonic() < deadline, "never subscribed"
                time.sleep(0.05)
            time.sleep(1.0)  # five bar intervals of a closed market
            assert bars.empty()
            sb.admin("POST", "/admin/clock", {"now": "2026-11-30T15:00:00Z"})  # Monday, 10:00 New York
            bar = bars.get(timeout=5)
            assert bar.symbol == "SPY" and bar.timestamp.date() == date(2026, 11, 30)
        finally:
            while stream._loop is None:
                time.sleep(0.02)
            stream.stop()
            sb.admin("POST", "/admin/drop", {"stream": "data"})
            thread.join(8)
