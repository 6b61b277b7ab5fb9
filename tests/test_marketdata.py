"""The sandbox's stream protocols without sockets: framing, handshakes, subscriptions, bars."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alpaca_cli.sandbox import marketdata as md
from alpaca_cli.sandbox import tradestream as ts
from alpaca_cli.sandbox.model import Bar

D = Decimal

T0 = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)
KEY, SECRET = "K", "S"

# ------------------------------------------------------------------------- framing


def test_msgpack_frame_is_an_array_of_maps_with_timestamps() -> None:
    bar = md.bar_message("AAPL", T0, 1.0, 2.0, 0.5, 1.5, 300, 3, 1.25)
    (frame,) = md.Codec(binary=True).frames([bar])
    decoded = msgpack.unpackb(frame)
    assert decoded == [bar]
    assert isinstance(decoded[0]["t"], msgpack.Timestamp)
    assert decoded[0]["t"].to_datetime() == T0


def test_json_frame_writes_rfc3339_times() -> None:
    (frame,) = md.Codec(binary=False).frames([md.trade_message("SPY", 500.25, 100, T0, 7)])
    (trade,) = json.loads(frame)
    assert trade["t"] == "2026-03-02T15:30:00Z"
    assert (trade["T"], trade["S"], trade["p"], trade["s"], trade["i"]) == ("t", "SPY", 500.25, 100, 7)


@settings(max_examples=40, deadline=None)
@given(
    count=st.integers(min_value=0, max_value=400),
    limit=st.integers(min_value=60, max_value=5000),
    binary=st.booleans(),
)
def test_frames_keep_every_message_in_order_and_under_the_limit(count: int, limit: int, binary: bool) -> None:
    bars = [md.bar_message(f"S{i % 7}", T0 + timedelta(seconds=i), 1.0, 2.0, 0.5, 1.5, i, 1, 1.2) for i in range(count)]
    codec = md.Codec(binary=binary)
    frames = list(codec.frames(bars, limit=limit))
    decoded = [m for f in frames for m in (msgpack.unpackb(f) if binary else json.loads(f))]
    assert [m["v"] for m in decoded] == list(range(count))
    # A single message larger than the limit still goes out, alone.
    assert all(len(f) <= limit or len(msgpack.unpackb(f) if binary else json.loads(f)) == 1 for f in frames)


def test_ten_thousand_bars_fit_in_few_frames_under_one_mebibyte() -> None:
    bars = md.BurstBars().burst(["AAPL", "MSFT", "SPY"], 10_000, 1.0, T0, lambda s: 100.0)
    frames = list(md.Codec(binary=True).frames(bars))
    assert all(len(f) < 2**20 for f in frames)
    assert len(frames) <= 2
    assert sum(len(msgpack.unpackb(f)) for f in frames) == 10_000


def test_quote_straddles_the_price() -> None:
    for price in (0.01, 1.0, 3.5, 187.23, 5000.0):
        q = md.quote_message("X", price, T0)
        assert q["bp"] < price < q["ap"]
        assert q["T"] == "q" and q["bx"] == q["ax"] == "V"


def test_decode_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        md.Codec(binary=True).decode(b"\xc1")
    with pytest.raises(ValueError):
        md.Codec(binary=False).decode("{not json")


# -------------------------------------------------------------------- data session


def _session(feed: str = "iex", sip_allowed: bool = True) -> md.DataSession:
    return md.DataSession(KEY, SECRET, feed, sip_allowed=sip_allowed)


def _authed(feed: str = "iex") -> md.DataSession:
    s = _session(feed)
    assert s.receive({"action": "auth", "key": KEY, "secret": SECRET}).frames == [[md.AUTHENTICATED]]
    return s


def test_auth_with_good_keys_then_already_authenticated() -> None:
    s = _authed()
    assert s.authenticated
    assert s.receive({"action": "auth", "key": KEY, "secret": SECRET}).frames == [[md.error(403)]]


@pytest.mark.parametrize("message", [{"action": "auth", "key": KEY, "secret": "nope"}, {"action": "auth"}])
def test_bad_keys_get_402_and_close(message: dict) -> None:
    reply = _session().receive(message)
    assert reply.frames == [[{"T": "error", "code": 402, "msg": "auth failed"}]]
    assert reply.close


def test_refused_auth_fault_refuses_good_keys() -> None:
    reply = _session().receive({"action": "auth", "key": KEY, "secret": SECRET}, refuse_auth=True)
    assert reply.frames[0][0]["code"] == 402 and reply.close


def test_sip_without_subscription_gets_409_with_the_text_alpaca_py_stops_on() -> None:
    reply = _session("sip", sip_allowed=False).receive({"action": "auth", "key": KEY, "secret": SECRET})
    assert reply.frames == [[{"T": "error", "code": 409, "msg": "insufficient subscription"}]]
    assert reply.close
    assert _session("sip").receive({"action": "auth", "key": KEY, "secret": SECRET}).frames == [[md.AUTHENTICATED]]


def test_subscribe_before_auth_is_401() -> None:
    assert _session().receive({"action": "subscribe", "bars": ["AAPL"]}).frames == [[md.error(401)]]


@pytest.mark.parametrize("message", [[1, 2], "hello", {"no": "action"}, {"action": "dance"}])
def test_malformed_requests_are_400(message: object) -> None:
    assert _authed().receive(message).frames == [[md.error(400)]]


def test_subscription_ack_lists_every_channel_and_trades_bring_corrections() -> None:
    s = _authed()
    (ack,) = s.receive({"action": "subscribe", "bars": ["AAPL"], "trades": ["MSFT"]}).frames[0]
    assert ack == {
        "T": "subscription",
        "trades": ["MSFT"],
        "quotes": [],
        "bars": ["AAPL"],
        "updatedBars": [],
        "dailyBars": [],
        "statuses": [],
        "lulds": [],
        "corrections": ["MSFT"],
        "cancelErrors": ["MSFT"],
    }
    (ack,) = s.receive({"action": "unsubscribe", "trades": ["MSFT"]}).frames[0]
    assert ack["trades"] == ack["corrections"] == [] and ack["bars"] == ["AAPL"]


def test_unknown_channel_is_410_and_bad_symbols_400_leaving_subscriptions_alone() -> None:
    s = _authed()
    s.receive({"action": "subscribe", "bars": ["AAPL"]})
    assert s.receive({"action": "subscribe", "news": ["*"]}).frames == [[md.error(410)]]
    assert s.receive({"action": "subscribe", "bars": "AAPL"}).frames == [[md.error(400)]]
    assert s.subscriptions.symbols("bars") == {"AAPL"}


def test_iex_caps_trades_and_quotes_at_30_but_not_bars() -> None:
    s = _authed("iex")
    many = [f"S{i}" for i in range(40)]
    assert s.receive({"action": "subscribe", "bars": many}).frames[0][0]["T"] == "subscription"
    ok = s.receive({"action": "subscribe", "trades": many[:20], "quotes": many[:10]})
    assert ok.frames[0][0]["T"] == "subscription"
    over = s.receive({"action": "subscribe", "quotes": ["ONEMORE"]})
    assert over.frames == [[{"T": "error", "code": 405, "msg": "symbol limit exceeded"}]]
    assert "ONEMORE" not in s.subscriptions.symbols("quotes")
    sip = _authed("sip")
    assert sip.receive({"action": "subscribe", "trades": many}).frames[0][0]["T"] == "subscription"


def test_wildcard_matches_every_symbol() -> None:
    subs = md.Subscriptions()
    subs.apply({"action": "subscribe", "bars": ["*"]})
    assert subs.wants("bars", "ANY") and not subs.wants("trades", "ANY")


# ------------------------------------------------------------------- bars on the stream


def test_a_recorded_bar_becomes_a_bar_message_and_a_correction_an_updated_bar() -> None:
    bar = Bar(T0, D("10"), D("12"), D("9"), D("11"), D("300"), 4, D("10.5"))
    message = md.bar_of("AAPL", bar)
    assert (message["T"], message["S"], message["o"], message["h"], message["l"], message["c"]) == (
        "b",
        "AAPL",
        10.0,
        12.0,
        9.0,
        11.0,
    )
    assert message["v"] == 300 and isinstance(message["v"], int) and (message["n"], message["vw"]) == (4, 10.5)
    assert message["t"].to_datetime() == T0
    coin = Bar(T0, D(1), D(1), D(1), D(1), D("0.25"), 1, D(1))
    correction = md.bar_of("BTC/USD", coin, "u")
    assert (correction["T"], correction["v"]) == ("u", 0.25)


def test_crypto_messages_name_the_taker_and_quote_in_coins() -> None:
    trade = md.crypto_trade_message("BTC/USD", 95000.5, 0.01, T0, 9, "B")
    assert set(trade) == {"T", "S", "p", "s", "t", "i", "tks"} and trade["tks"] == "B"
    quote = md.crypto_quote_message("BTC/USD", 95000.5, T0)
    assert set(quote) == {"T", "S", "bp", "bs", "ap", "as", "t"} and quote["bp"] < 95000.5 < quote["ap"]


def test_the_crypto_session_acks_crypto_channels_and_refuses_stock_ones() -> None:
    crypto = md.DataSession(KEY, SECRET, md.CRYPTO_FEED)
    crypto.receive({"action": "auth", "key": KEY, "secret": SECRET})
    ack = crypto.receive({"action": "subscribe", "trades": ["BTC/USD"], "bars": ["*"]}).frames[0][0]
    assert ack == {"T": "subscription", **{c: [] for c in md.CRYPTO_CHANNELS}, "trades": ["BTC/USD"], "bars": ["*"]}
    assert crypto.receive({"action": "subscribe", "lulds": ["BTC/USD"]}).frames[0][0]["code"] == 410


@settings(max_examples=40, deadline=None)
@given(
    symbols=st.lists(st.sampled_from(["A", "B", "C", "D"]), min_size=1, max_size=4, unique=True),
    count=st.integers(1, 3000),
    interval=st.sampled_from([0.05, 0.1, 1.0, 60.0]),
)
def test_burst_bars_are_valid_and_strictly_increasing_per_symbol(
    symbols: list[str], count: int, interval: float
) -> None:
    bursts = md.BurstBars()
    now = T0 + timedelta(seconds=0.37)
    regular = md.interval_start(now, interval) - timedelta(seconds=interval)
    for symbol in symbols:
        bursts.sent(symbol, regular)  # the regular bar of the interval before went out
    bars = bursts.burst(symbols, count, interval, now, lambda s: 50.0)
    assert len(bars) == count
    last = dict.fromkeys(symbols, regular)
    for bar in bars:
        t = bar["t"].to_datetime()
        assert t > last[bar["S"]]
        last[bar["S"]] = t
        assert bar["l"] <= min(bar["o"], bar["c"]) <= max(bar["o"], bar["c"]) <= bar["h"]
        assert isinstance(bar["v"], int) and bar["v"] > 0 and bar["n"] > 0
    if count // len(symbols) < interval * 1e6 - 2:
        # They fit before the regular bar of the current interval.
        assert max(last.values()) < md.interval_start(now, interval)


def test_burst_that_exactly_divides_the_interval_stays_before_the_next_boundary() -> None:
    bars = md.BurstBars().burst(["A", "B"], 10_000, 0.2, T0 + timedelta(seconds=0.05), lambda s: 10.0)
    assert max(b["t"].to_datetime() for b in bars) < T0 + timedelta(seconds=0.2)


@given(st.floats(0.001, 120.0), st.integers(0, 10**15))
def test_interval_start_is_aligned_and_contains_now(interval: float, micros: int) -> None:
    now = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    start = md.interval_start(now, interval)
    step = timedelta(microseconds=max(1, round(interval * 1e6)))
    assert start <= now < start + step


# ------------------------------------------------------------------- trading session


def _auth_msg(key: str = KEY, secret: str = SECRET) -> str:
    return json.dumps({"action": "authenticate", "data": {"key_id": key, "secret_key": secret}})


LISTEN = json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}})


def test_trading_handshake_authorizes_then_listens() -> None:
    s = ts.TradeSession(KEY, SECRET)
    assert s.receive(_auth_msg()).replies == [
        {"stream": "authorization", "data": {"action": "authenticate", "status": "authorized"}}
    ]
    assert s.receive(LISTEN.encode()).replies == [{"stream": "listening", "data": {"streams": ["trade_updates"]}}]
    assert s.listening


def test_trading_bad_keys_unauthorized_and_closed() -> None:
    out = ts.TradeSession(KEY, SECRET).receive(_auth_msg(secret="wrong"))
    assert out.replies[0]["data"]["status"] == "unauthorized" and out.close and not out.limit_exceeded
    out = ts.TradeSession(KEY, SECRET).receive(_auth_msg(), refuse_auth=True)
    assert out.replies[0]["data"]["status"] == "unauthorized" and out.close


def test_second_trading_connection_is_cut_without_an_authorization_reply() -> None:
    out = ts.TradeSession(KEY, SECRET).receive(_auth_msg(), slot_taken=True)
    assert out.replies == [] and out.close and out.limit_exceeded


def test_listen_before_auth_and_unknown_streams() -> None:
    s = ts.TradeSession(KEY, SECRET)
    assert s.receive(LISTEN).replies[0] == {
        "stream": "authorization",
        "data": {"action": "listen", "status": "unauthorized", "message": "access key verification failed"},
    }
    s.receive(_auth_msg())
    assert s.receive(json.dumps({"action": "listen", "data": {"streams": ["nope"]}})).replies[0]["data"] == {
        "streams": []
    }
    assert not s.listening
    assert "error" in s.receive("{{").replies[0]["data"]


def test_trade_update_is_binary_json() -> None:
    frame = ts.encode(ts.trade_update({"event": "new", "order": {"id": "x"}}))
    assert isinstance(frame, bytes)
    assert json.loads(frame) == {"stream": "trade_updates", "data": {"event": "new", "order": {"id": "x"}}}
