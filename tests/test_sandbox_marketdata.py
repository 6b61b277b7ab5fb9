"""The sandbox's market data end to end: the unmodified alpaca-py data streams and historical clients.

One bar series: the bars a stream sends are the bars the historical API serves,
also with a shortened bar interval (a "minute" lasts `INTERVAL` seconds here, so
gaps of several bars take a second or two). Trades make up the bars, quotes
straddle the trades, crypto trades around the clock.
"""

from __future__ import annotations

import queue
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alpaca.data.historical.crypto import CryptoHistoricalDataClient
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.live.crypto import CryptoDataStream
from alpaca.data.live.stock import StockDataStream
from alpaca.data.models import Bar
from alpaca.data.requests import (
    CryptoBarsRequest,
    CryptoLatestBarRequest,
    CryptoLatestQuoteRequest,
    CryptoLatestTradeRequest,
    CryptoSnapshotRequest,
    CryptoTradesRequest,
    StockBarsRequest,
)
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

from alpaca_cli.sandbox.server import SandboxThread
from tests.test_sandbox_streams import Running, wait_until

pytestmark = pytest.mark.timeout(60)

KEY, SECRET = "SANDBOXKEY", "SANDBOXSECRET"
INTERVAL = 0.3  # seconds per bar: the sandbox's "minute"
STEP = timedelta(seconds=INTERVAL)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def market() -> Iterator[SandboxThread]:
    """A sandbox with short bars, open around the clock, no rate limit (these tests page a lot)."""
    with SandboxThread(port=0, seed=5, tick_interval=0.02, bar_interval=INTERVAL, always_open=True, rate_limit=0) as sb:
        yield sb


@pytest.fixture(autouse=True)
def _faults_off(market: SandboxThread) -> Iterator[None]:
    yield
    market.call(market.sandbox.faults.reset)


def ws(sb: SandboxThread, path: str) -> str:
    return "ws" + sb.url.removeprefix("http") + path


def fields(bar: Bar) -> tuple[Any, ...]:
    return (bar.timestamp, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.trade_count, bar.vwap)


def collect(q: queue.Queue[Any]) -> list[Any]:
    items = []
    while not q.empty():
        items.append(q.get_nowait())
    return items


def kind(item: Any) -> str:
    return type(item).__name__


def bars_api(sb: SandboxThread, symbol: str, start: datetime, end: datetime) -> list[Bar]:
    client = StockHistoricalDataClient(KEY, SECRET, url_override=sb.url)
    request = StockBarsRequest(symbol_or_symbols=symbol, timeframe=TimeFrame.Minute, start=start, end=end)
    return client.get_stock_bars(request).data.get(symbol, [])


def stock_stream(sb: SandboxThread, q: queue.Queue[Any], symbol: str, *channels: str) -> StockDataStream:
    async def put(item: Any) -> None:
        q.put(item)

    stream = StockDataStream(KEY, SECRET, url_override=ws(sb, "/v2/iex"))
    for channel in channels:
        getattr(stream, f"subscribe_{channel}")(put, symbol)
    return stream


def post(sb: SandboxThread, path: str, body: dict[str, Any]) -> Any:
    return sb.admin("POST", path, body)


def take_bars(q: queue.Queue[Any], n: int, seen: list[Any], timeout: float = 15.0) -> list[Bar]:
    """Wait for `n` more bars (`T: b`), keeping everything else that arrives in `seen`."""
    bars: list[Bar] = []
    deadline = time.monotonic() + timeout
    while len(bars) < n:
        item = q.get(timeout=max(0.01, deadline - time.monotonic()))
        seen.append(item)
        if kind(item) == "Bar":
            bars.append(item)
    return bars


def test_one_connection_carries_bars_quotes_and_trades_that_make_up_the_bars_the_api_serves(
    market: SandboxThread,
) -> None:
    q: queue.Queue[Any] = queue.Queue()
    seen: list[Any] = []
    stream = stock_stream(market, q, "AAPL", "bars", "quotes", "trades")
    with Running(stream):
        bars = take_bars(q, 5, seen)
        (conn,) = market.admin("GET", "/admin/streams")["data"]
        assert [conn["subscriptions"][c] for c in ("bars", "quotes", "trades")] == [["AAPL"]] * 3
    trades = [i for i in seen if kind(i) == "Trade"]
    quotes = {i.timestamp: i for i in seen if kind(i) == "Quote"}
    assert trades and {t.timestamp for t in trades} <= set(quotes)
    for trade in trades:  # every print is quoted around its price
        assert quotes[trade.timestamp].bid_price < trade.price < quotes[trade.timestamp].ask_price
    first_whole = trades[0].timestamp + STEP  # the first bar may hold prints from before the subscription
    for bar in bars:
        assert (bar.timestamp - EPOCH) % STEP == timedelta(0), "bars start on interval boundaries"
        if bar.timestamp < first_whole:
            continue
        inside = [t for t in trades if bar.timestamp <= t.timestamp < bar.timestamp + STEP]
        prices = [t.price for t in inside]
        assert (bar.open, bar.close, bar.high, bar.low) == (prices[0], prices[-1], max(prices), min(prices))
        assert (bar.volume, bar.trade_count) == (sum(t.size for t in inside), len(inside))
    served = bars_api(market, "AAPL", bars[0].timestamp, bars[-1].timestamp)
    assert [fields(b) for b in served] == [fields(b) for b in bars]  # one series, field for field


def test_a_muted_or_dropped_stream_misses_bars_the_history_still_has(market: SandboxThread) -> None:
    q: queue.Queue[Any] = queue.Queue()
    seen: list[Any] = []
    with Running(stock_stream(market, q, "MSFT", "bars")):
        before = take_bars(q, 2, seen)
        post(market, "/admin/faults", {"mute_data": True})
        muted_from = before[-1].timestamp + STEP
        # Bars keep being recorded while the stream says nothing: wait until four exist.
        wait_until(lambda: len(bars_api(market, "MSFT", muted_from, muted_from + 10 * STEP)) >= 4, timeout=10)
        collect(q)
        post(market, "/admin/faults", {"mute_data": False})
        after_mute = take_bars(q, 1, seen)
        old_id = market.admin("GET", "/admin/streams")["data"][0]["id"]
        post(market, "/admin/drop", {"stream": "data"})
        wait_until(lambda: [c["id"] for c in market.admin("GET", "/admin/streams")["data"]] not in ([], [old_id]))
        after_drop = take_bars(q, 1, seen)
    received = before + after_mute + after_drop
    history = bars_api(market, "MSFT", before[0].timestamp, received[-1].timestamp)
    stamps = [b.timestamp for b in history]
    assert stamps == [before[0].timestamp + i * STEP for i in range(len(history))]  # no hole in the history
    assert len(history) >= len(received) + 4  # the stream missed at least the muted bars...
    by_time = {b.timestamp: fields(b) for b in history}
    assert all(by_time[b.timestamp] == fields(b) for b in received)  # ...and what it got is the same series


def test_a_late_trade_corrects_a_sent_bar_with_updated_bars(market: SandboxThread) -> None:
    post(market, "/admin/faults", {"correct_bars_after": 0.05})
    q: queue.Queue[Any] = queue.Queue()
    got: dict[str, list[Bar]] = {"b": [], "u": []}

    async def on_bar(bar: Bar) -> None:
        got["b"].append(bar)

    async def on_update(bar: Bar) -> None:
        got["u"].append(bar)
        q.put(bar)

    stream = StockDataStream(KEY, SECRET, url_override=ws(market, "/v2/iex"))
    stream.subscribe_bars(on_bar, "IBM")
    stream.subscribe_updated_bars(on_update, "IBM")
    with Running(stream):
        q.get(timeout=10)
        q.get(timeout=10)
    sent = {b.timestamp: b for b in got["b"]}
    for update in got["u"]:
        original = sent[update.timestamp]
        assert (update.open, update.high, update.low, update.close) == (
            original.open,
            original.high,
            original.low,
            original.close,
        )
        assert (update.volume, update.trade_count) == (original.volume + 100, original.trade_count + 1)
    last = got["u"][-1]
    (served,) = bars_api(market, "IBM", last.timestamp, last.timestamp)
    assert fields(served) == fields(last)  # the bars API serves the corrected bar from then on


def check_fives(minutes: list[Bar], fives: list[Bar], width: timedelta) -> None:
    """Each 5Min bar is made of the 1Min bars inside it."""
    assert fives
    for five in fives:
        part = [m for m in minutes if five.timestamp <= m.timestamp < five.timestamp + width]
        assert part and part[0].timestamp == five.timestamp
        assert (five.open, five.close) == (part[0].open, part[-1].close)
        assert (five.high, five.low) == (max(m.high for m in part), min(m.low for m in part))
        assert (five.volume, five.trade_count) == (sum(m.volume for m in part), sum(m.trade_count for m in part))


def test_historical_bars_by_timeframe_merge_the_minutes_and_page(market: SandboxThread) -> None:
    client = StockHistoricalDataClient(KEY, SECRET, url_override=market.url)

    def get(frame: TimeFrame, start: datetime, end: datetime) -> list[Bar]:
        request = StockBarsRequest(symbol_or_symbols="SPY", timeframe=frame, start=start, end=end)
        return [b for b in client.get_stock_bars(request).data.get("SPY", []) if b.timestamp < end]

    five_minutes = TimeFrame(5, TimeFrameUnit.Minute)
    # Before the sandbox started, minutes are real minutes (the seeded history).
    cut = market.call(lambda: market.sandbox.engine.history.cut)
    end = EPOCH + (cut - EPOCH) // timedelta(minutes=5) * timedelta(minutes=5)
    start = end - timedelta(minutes=40)
    minutes = get(TimeFrame.Minute, start, end)
    assert [m.timestamp for m in minutes] == [start + timedelta(minutes=i) for i in range(40)]
    check_fives(minutes, get(five_minutes, start, end), timedelta(minutes=5))
    hours = get(TimeFrame.Hour, end - timedelta(hours=6), end)
    assert [h.timestamp.minute for h in hours] == [0] * len(hours) and len(hours) >= 5
    # Since then a minute lasts the bar interval: recorded bars, merged the same way.
    market.call(lambda: market.sandbox.engine.price("SPY"))  # walking: it prints, so it has bars
    now = datetime.now(UTC)
    first = EPOCH + ((now - EPOCH) // (5 * STEP) + 1) * (5 * STEP)
    wait_until(lambda: len(bars_api(market, "SPY", first, first + 20 * STEP)) >= 11, timeout=15)
    recorded = get(TimeFrame.Minute, first, first + 10 * STEP)
    assert [m.timestamp for m in recorded] == [first + i * STEP for i in range(10)]
    check_fives(recorded, get(five_minutes, first, first + 10 * STEP), 5 * STEP)
    days = client.get_stock_bars(
        StockBarsRequest(symbol_or_symbols="SPY", timeframe=TimeFrame.Day, start=now - timedelta(days=5))
    ).data["SPY"]
    assert 4 <= len(days) <= 6  # always open: every calendar day
    # Paged by hand, 7 at a time: the same minutes, none twice.
    paged: list[str] = []
    token = ""
    window = f"start={start.isoformat().replace('+00:00', 'Z')}&end={end.isoformat().replace('+00:00', 'Z')}"
    while True:
        page = raw(market, f"/v2/stocks/bars?symbols=SPY&timeframe=1Min&{window}&limit=7{token}")
        paged += [b["t"] for b in page["bars"].get("SPY", [])]
        if page["next_page_token"] is None:
            break
        token = "&page_token=" + page["next_page_token"]
    assert len(paged) == len(minutes) + 1 and len(set(paged)) == len(paged)  # `end` is inclusive


def raw(sb: SandboxThread, path: str) -> Any:
    import json

    request = urllib.request.Request(sb.url + path, headers={"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_crypto_streams_and_serves_history_around_the_clock() -> None:
    saturday = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)  # the stock market is closed
    with SandboxThread(port=0, seed=9, now=saturday, tick_interval=0.02, bar_interval=INTERVAL, rate_limit=0) as sb:
        q: queue.Queue[Any] = queue.Queue()
        seen: list[Any] = []

        async def put(item: Any) -> None:
            q.put(item)

        stream = CryptoDataStream(KEY, SECRET, url_override=ws(sb, "/v1beta3/crypto/us"))
        stream.subscribe_bars(put, "BTC/USD")
        stream.subscribe_trades(put, "BTC/USD")
        stream.subscribe_quotes(put, "BTC/USD")
        with Running(stream):
            bars = take_bars(q, 3, seen)
        trades = [i for i in seen if kind(i) == "Trade"]
        quotes = {i.timestamp: i for i in seen if kind(i) == "Quote"}
        assert trades and all(t.symbol == "BTC/USD" for t in trades)
        assert any(t.size < 1 for t in trades)  # fractions of a coin
        assert all(quotes[t.timestamp].bid_price < t.price < quotes[t.timestamp].ask_price for t in trades)
        data = CryptoHistoricalDataClient(KEY, SECRET, url_override=sb.url)
        served = data.get_crypto_bars(
            CryptoBarsRequest(
                symbol_or_symbols="BTC/USD", timeframe=TimeFrame.Minute, start=bars[0].timestamp, end=bars[-1].timestamp
            )
        ).data["BTC/USD"]
        assert [fields(b) for b in served] == [fields(b) for b in bars]
        both = ["BTC/USD", "ETH/USD"]
        for symbol in both:  # frozen, so answers fetched one after another agree
            sb.admin("POST", "/admin/halt", {"symbol": symbol, "halted": True})
        latest_trades = data.get_crypto_latest_trade(CryptoLatestTradeRequest(symbol_or_symbols=both))
        latest_quotes = data.get_crypto_latest_quote(CryptoLatestQuoteRequest(symbol_or_symbols=both))
        latest_bars = data.get_crypto_latest_bar(CryptoLatestBarRequest(symbol_or_symbols=both))
        assert set(latest_trades) == set(latest_quotes) == set(latest_bars) == set(both)
        for symbol in both:
            assert latest_quotes[symbol].bid_price < latest_trades[symbol].price < latest_quotes[symbol].ask_price
        snapshots = data.get_crypto_snapshot(CryptoSnapshotRequest(symbol_or_symbols=both))
        assert set(snapshots) == set(both) and snapshots["BTC/USD"].daily_bar is not None
        past = data.get_crypto_bars(
            CryptoBarsRequest(symbol_or_symbols=both, timeframe=TimeFrame.Day, start=saturday - timedelta(days=7))
        ).data
        assert {len(past[s]) for s in both} == {7}  # every day of the week, the weekend included
        history = data.get_crypto_trades(
            CryptoTradesRequest(symbol_or_symbols="ETH/USD", start=saturday - timedelta(minutes=20), end=saturday)
        ).data["ETH/USD"]
        assert history and all(t.price > 0 for t in history)
        assets = raw(sb, "/v2/assets?asset_class=crypto")
        assert {"BTC/USD", "ETH/USD"} <= {a["symbol"] for a in assets} and {a["class"] for a in assets} == {"crypto"}
        assert raw(sb, "/v2/assets/BTC/USD")["exchange"] == "CRYPTO"


@pytest.mark.timeout(30)
def test_a_symbol_asked_for_starts_trading_so_a_second_look_sees_it_move(market: SandboxThread) -> None:
    # NFLX: no other test streams or trades it, so nothing but this look starts its walk.
    first = raw(market, "/v2/stocks/trades/latest?symbols=NFLX&feed=iex")["trades"]["NFLX"]
    deadline = time.monotonic() + 10
    later = first
    while later["t"] == first["t"] and time.monotonic() < deadline:
        time.sleep(INTERVAL)
        later = raw(market, "/v2/stocks/trades/latest?symbols=NFLX&feed=iex")["trades"]["NFLX"]
    assert later["t"] > first["t"]
