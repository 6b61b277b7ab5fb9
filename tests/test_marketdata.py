"""The sandbox's stream protocols without sockets: framing, handshakes, subscriptions, bars."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alpaca_cli.sandbox import marketdata as md
from alpaca_cli.sandbox import tradestream as ts

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
    agg = md.BarAggregator()
    bars = agg.burst(["AAPL", "MSFT", "SPY"], 10_000, 1.0, T0, lambda s: 100.0)
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


# ----------------------------------------------------------------------- aggregation


def test_bar_aggregates_prints_into_ohlcv_with_vwap() -> None:
    agg = md.BarAggregator()
    for price, size in ((10.0, 100), (12.0, 50), (9.0, 50), (11.0, 100)):
        agg.add_trade("AAPL", price, size)
    (bar,) = agg.close(T0, ["AAPL"], lambda s: 0.0)
    assert (bar["o"], bar["h"], bar["l"], bar["c"], bar["v"], bar["n"]) == (10.0, 12.0, 9.0, 11.0, 300, 4)
    assert isinstance(bar["v"], int)  # whole shares, as the REST bars and Alpaca's stream send them
    assert bar["vw"] == pytest.approx((1000 + 600 + 450 + 1100) / 300, abs=1e-4)
    assert bar["t"].to_datetime() == T0
    # The next interval starts empty: a symbol without prints gets a flat, volume-less bar.
    (flat,) = agg.close(T0 + timedelta(minutes=1), ["AAPL"], lambda s: 42.0)
    assert (flat["o"], flat["h"], flat["l"], flat["c"], flat["v"], flat["n"], flat["vw"]) == (
        42.0,
        42.0,
        42.0,
        42.0,
        0.0,
        0,
        42.0,
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.01, 10_000), st.integers(1, 10_000)), min_size=1, max_size=50))
def test_aggregated_bar_is_consistent(prints: list[tuple[float, int]]) -> None:
    agg = md.BarAggregator()
    for price, size in prints:
        agg.add_trade("X", price, size)
    (bar,) = agg.close(T0, ["X"], lambda s: 1.0)
    assert bar["l"] <= min(bar["o"], bar["c"]) and bar["h"] >= max(bar["o"], bar["c"])
    assert bar["l"] - 1e-3 <= bar["vw"] <= bar["h"] + 1e-3
    assert bar["v"] == sum(s for _, s in prints) and bar["n"] == len(prints) and isinstance(bar["v"], int)


@settings(max_examples=40, deadline=None)
@given(
    symbols=st.lists(st.sampled_from(["A", "B", "C", "D"]), min_size=1, max_size=4, unique=True),
    count=st.integers(1, 3000),
    interval=st.sampled_from([0.05, 0.1, 1.0, 60.0]),
)
def test_burst_bars_are_valid_and_strictly_increasing_per_symbol(
    symbols: list[str], count: int, interval: float
) -> None:
    agg = md.BarAggregator()
    now = T0 + timedelta(seconds=0.37)
    previous = agg.close(md.interval_start(now, interval) - timedelta(seconds=interval), symbols, lambda s: 50.0)
    bars = agg.burst(symbols, count, interval, now, lambda s: 50.0)
    assert len(bars) == count
    last = {b["S"]: b["t"].to_datetime() for b in previous}
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
    agg = md.BarAggregator()
    bars = agg.burst(["A", "B"], 10_000, 0.2, T0 + timedelta(seconds=0.05), lambda s: 10.0)
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
