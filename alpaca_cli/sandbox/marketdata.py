"""Alpaca's market-data stream protocol (`/v2/iex`, `/v2/sip`, `/v1beta3/crypto/us`) without any I/O.

Everything here is pure so it can be tested without sockets: the message
builders (stocks' and crypto's), the msgpack/JSON framing, the per-connection
handshake and subscription state machine, and synthetic burst bars for load
tests. Regular bars are the engine's recorded ones (see `history`), so the
stream and the bars API serve one series.
`alpaca_cli.sandbox.streams` owns the sockets and calls into this module.

Facts mirrored from Alpaca (see /work/shared/docs/alpaca-wire.md, section 4):
every frame is an array of maps; control messages travel alone in arrays of
one; data messages are batched; timestamps are msgpack Timestamps (ext -1) in
msgpack and RFC 3339 strings in JSON; alpaca-py refuses frames over 1 MiB.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgpack

from alpaca_cli.sandbox import wire
from alpaca_cli.sandbox.model import Bar
from alpaca_cli.sandbox.quotes import EXCHANGE, half_spread

# Every channel a stock subscription ack lists, in Alpaca's order.
CHANNELS = (
    "trades",
    "quotes",
    "bars",
    "updatedBars",
    "dailyBars",
    "statuses",
    "lulds",
    "corrections",
    "cancelErrors",
)
# Every channel a crypto subscription ack lists, in Alpaca's order.
CRYPTO_CHANNELS = ("trades", "quotes", "orderbooks", "bars", "updatedBars", "dailyBars")
# Alpaca subscribes trade corrections and cancel errors along with trades (stocks only).
_FOLLOW_TRADES = ("corrections", "cancelErrors")
# The feed name of the crypto stream's sessions.
CRYPTO_FEED = "crypto"
# Alpaca's free (IEX) plan: at most 30 trade and quote channels at a time, bars unlimited.
IEX_TRADE_QUOTE_LIMIT = 30
# alpaca-py's websocket refuses messages over 1 MiB (closes 1009); stay well below.
MAX_FRAME_BYTES = 1_000_000
# Seconds a connection may stay unauthenticated before Alpaca answers 404 and closes.
AUTH_TIMEOUT = 10.0

ERROR_MESSAGES = {
    400: "invalid syntax",
    401: "not authenticated",
    402: "auth failed",
    403: "already authenticated",
    404: "auth timeout",
    405: "symbol limit exceeded",
    406: "connection limit exceeded",
    407: "slow client",
    409: "insufficient subscription",
    410: "invalid subscribe action",
    500: "internal error",
}

CONNECTED: dict[str, Any] = {"T": "success", "msg": "connected"}
AUTHENTICATED: dict[str, Any] = {"T": "success", "msg": "authenticated"}


def error(code: int) -> dict[str, Any]:
    """Alpaca's error control message for `code`."""
    return {"T": "error", "code": code, "msg": ERROR_MESSAGES[code]}


def timestamp(t: datetime) -> msgpack.Timestamp:
    """The msgpack Timestamp alpaca-py expects in every `t` field."""
    return msgpack.Timestamp.from_datetime(t)


def bar_message(
    symbol: str,
    t: datetime,
    o: float,
    h: float,
    low: float,
    c: float,
    v: int,
    n: int,
    vw: float,
) -> dict[str, Any]:
    """A minute-bar message (`T: "b"`); `t` is the start of the bar's interval; volume is whole shares."""
    return {
        "T": "b",
        "S": symbol,
        "o": o,
        "h": h,
        "l": low,
        "c": c,
        "v": v,
        "t": timestamp(t),
        "n": n,
        "vw": vw,
    }


def bar_of(symbol: str, bar: Bar, kind: str = "b") -> dict[str, Any]:
    """The engine's bar as a stream message: `b` a bar, `u` a correction of one already sent."""
    message = bar_message(
        symbol, bar.t, float(bar.o), float(bar.h), float(bar.l), float(bar.c), 0, bar.n, float(bar.vw)
    )
    message["v"] = wire.volume(bar.v)
    message["T"] = kind
    return message


def trade_message(symbol: str, price: float, size: int | float, t: datetime, trade_id: int) -> dict:
    """A trade print (`T: "t"`) on the simulated IEX tape."""
    return {
        "T": "t",
        "S": symbol,
        "i": trade_id,
        "x": EXCHANGE,
        "p": price,
        "s": size,
        "c": ["@"],
        "z": "C",
        "t": timestamp(t),
    }


def crypto_trade_message(symbol: str, price: float, size: float, t: datetime, trade_id: int, taker: str) -> dict:
    """A crypto trade (`T: "t"`): no venue or conditions, the taker's side (`B` buy, `S` sell) instead."""
    return {"T": "t", "S": symbol, "p": price, "s": size, "t": timestamp(t), "i": trade_id, "tks": taker}


def crypto_quote_message(symbol: str, price: float, t: datetime) -> dict[str, Any]:
    """A crypto top of book (`T: "q"`) around `price`, sizes in coins."""
    half = half_spread(price)
    return {
        "T": "q",
        "S": symbol,
        "bp": round(price - half, 4),
        "bs": 0.5,
        "ap": round(price + half, 4),
        "as": 0.5,
        "t": timestamp(t),
    }


def quote_message(symbol: str, price: float, t: datetime) -> dict[str, Any]:
    """A top-of-book quote (`T: "q"`) synthesized around `price`.

    The spread is the REST quotes' (`quotes.half_spread`), so bid < price < ask
    holds for every positive price.
    """
    half = half_spread(price)
    return {
        "T": "q",
        "S": symbol,
        "bx": EXCHANGE,
        "bp": round(price - half, 4),
        "bs": 1,
        "ax": EXCHANGE,
        "ap": round(price + half, 4),
        "as": 1,
        "c": ["R"],
        "z": "C",
        "t": timestamp(t),
    }


# --------------------------------------------------------------------------- framing


def _jsonable(value: Any) -> Any:
    if isinstance(value, msgpack.Timestamp):
        return value.to_datetime().isoformat().replace("+00:00", "Z")
    raise TypeError(f"cannot encode {type(value).__name__}")


class Codec:
    """Encodes outgoing arrays and decodes incoming messages for one connection.

    Alpaca speaks msgpack to clients that send `Content-Type: application/msgpack`
    on the upgrade (alpaca-py always does) and JSON text to everyone else.
    """

    def __init__(self, binary: bool) -> None:
        self.binary = binary
        self._packer = msgpack.Packer()

    def decode(self, data: bytes | str) -> Any:
        """Parse one client message; raises ValueError when it is not valid."""
        try:
            if isinstance(data, bytes):
                return msgpack.unpackb(data, raw=False)
            return json.loads(data)
        except Exception as exc:
            raise ValueError("invalid syntax") from exc

    def frames(self, messages: Iterable[dict[str, Any]], limit: int = MAX_FRAME_BYTES) -> Iterator[bytes | str]:
        """Pack messages into as few array frames as fit under `limit` bytes each."""
        if self.binary:
            yield from self._msgpack_frames(messages, limit)
        else:
            yield from self._json_frames(messages, limit)

    def _msgpack_frames(self, messages: Iterable[dict[str, Any]], limit: int) -> Iterator[bytes]:
        # An array is its header followed by its packed items, so items are packed
        # once and grouped by size; the 5 bytes spare cover the largest array header.
        chunk: list[bytes] = []
        size = 5
        for message in messages:
            packed = self._packer.pack(message)
            if chunk and size + len(packed) > limit:
                yield self._packer.pack_array_header(len(chunk)) + b"".join(chunk)
                chunk, size = [], 5
            chunk.append(packed)
            size += len(packed)
        if chunk:
            yield self._packer.pack_array_header(len(chunk)) + b"".join(chunk)

    def _json_frames(self, messages: Iterable[dict[str, Any]], limit: int) -> Iterator[str]:
        chunk: list[str] = []
        size = 2
        for message in messages:
            text = json.dumps(message, default=_jsonable, separators=(",", ":"))
            if chunk and size + len(text) + 1 > limit:
                yield "[" + ",".join(chunk) + "]"
                chunk, size = [], 2
            chunk.append(text)
            size += len(text) + 1
        if chunk:
            yield "[" + ",".join(chunk) + "]"


# --------------------------------------------------------------------- subscriptions


@dataclass
class Subscriptions:
    """One connection's channels and symbols; `"*"` stands for every symbol."""

    trade_quote_limit: int | None = None
    names: tuple[str, ...] = CHANNELS  # the stream's channels (stocks' or crypto's)
    channels: dict[str, set[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.channels = {c: set() for c in self.names}

    def ack(self) -> dict[str, Any]:
        """The `subscription` message listing everything currently subscribed."""
        return {"T": "subscription", **{c: sorted(self.channels[c]) for c in self.names}}

    def wants(self, channel: str, symbol: str) -> bool:
        symbols = self.channels[channel]
        return symbol in symbols or "*" in symbols

    def symbols(self, channel: str) -> set[str]:
        return self.channels[channel]

    def apply(self, request: dict[str, Any]) -> dict[str, Any]:
        """Apply a subscribe/unsubscribe request and return the reply to send.

        A request that is malformed or would exceed the plan's limit changes
        nothing and is answered with the error alone, as Alpaca does.
        """
        subscribe = request.get("action") == "subscribe"
        changes: dict[str, list[str]] = {}
        for key, value in request.items():
            if key == "action":
                continue
            if key not in self.names:
                return error(410)
            if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
                return error(400)
            changes[key] = value
        updated = {c: set(s) for c, s in self.channels.items()}
        for channel, symbols in changes.items():
            follow = _FOLLOW_TRADES if channel == "trades" and self.names is CHANNELS else ()
            targets = (channel, *follow)
            for target in targets:
                if subscribe:
                    updated[target].update(symbols)
                else:
                    updated[target].difference_update(symbols)
        if (
            subscribe
            and self.trade_quote_limit is not None
            and len(updated["trades"]) + len(updated["quotes"]) > self.trade_quote_limit
        ):
            return error(405)
        self.channels = updated
        return self.ack()


# --------------------------------------------------------------------------- session


@dataclass
class Reply:
    """What a session wants sent (each item one array frame) and whether to close."""

    frames: list[list[dict[str, Any]]] = field(default_factory=list)
    close: bool = False


class DataSession:
    """The handshake and request handling of one market-data connection.

    States: connected (waiting for auth) -> authenticated. Auth failures (402)
    and a feed the account may not use (409) end the connection; alpaca-py
    retries the first forever and gives up on the second.
    """

    def __init__(
        self,
        key_id: str,
        secret_key: str,
        feed: str,
        *,
        sip_allowed: bool = True,
    ) -> None:
        self._key_id = key_id
        self._secret_key = secret_key
        self.feed = feed
        self._sip_allowed = sip_allowed
        self.authenticated = False
        limit = IEX_TRADE_QUOTE_LIMIT if feed == "iex" else None
        names = CRYPTO_CHANNELS if feed == CRYPTO_FEED else CHANNELS
        self.subscriptions = Subscriptions(trade_quote_limit=limit, names=names)

    def receive(self, message: Any, *, refuse_auth: bool = False) -> Reply:
        """Handle one decoded client message."""
        if not isinstance(message, dict) or not isinstance(message.get("action"), str):
            return Reply([[error(400)]])
        action = message["action"]
        if action == "auth":
            return self._auth(message, refuse_auth)
        if action in ("subscribe", "unsubscribe"):
            if not self.authenticated:
                return Reply([[error(401)]])
            return Reply([[self.subscriptions.apply(message)]])
        return Reply([[error(400)]])

    def _auth(self, message: dict[str, Any], refuse_auth: bool) -> Reply:
        if self.authenticated:
            return Reply([[error(403)]])
        good = message.get("key") == self._key_id and message.get("secret") == self._secret_key
        if refuse_auth or not good:
            return Reply([[error(402)]], close=True)
        if self.feed == "sip" and not self._sip_allowed:
            return Reply([[error(409)]], close=True)
        self.authenticated = True
        return Reply([[AUTHENTICATED]])


# ----------------------------------------------------------------------- aggregation


class BurstBars:
    """Synthetic bars for load tests (`/admin/burst`), placed between the regular ones.

    Remembers the last bar time sent per symbol (regular bars included, see
    `sent`), so a burst never reuses a time or goes back in time.
    """

    def __init__(self) -> None:
        self.last_bar_time: dict[str, datetime] = {}

    def sent(self, symbol: str, t: datetime) -> None:
        """A regular bar of `symbol` starting at `t` went out."""
        self.last_bar_time[symbol] = max(t, self.last_bar_time.get(symbol, t))

    def burst(
        self,
        symbols: list[str],
        count: int,
        interval: float,
        now: datetime,
        price_of: Callable[[str], float],
    ) -> list[dict[str, Any]]:
        """`count` synthetic bars spread round-robin over `symbols`, for load tests.

        Each symbol's burst bars get strictly increasing timestamps placed after
        the last bar it was sent and, while they fit, before the next regular
        bar, so a consumer checking order per symbol sees no regression.
        """
        if not symbols or count <= 0:
            return []
        per_symbol = math.ceil(count / len(symbols))
        window_start = interval_start(now, interval)
        step = max(timedelta(microseconds=1), timedelta(seconds=interval) // (per_symbol + 1))
        times: dict[str, datetime] = {}
        prices: dict[str, float] = {}
        for symbol in symbols:
            last = self.last_bar_time.get(symbol, window_start - timedelta(seconds=interval))
            times[symbol] = last
            prices[symbol] = price_of(symbol)
        bars = []
        for i in range(count):
            symbol = symbols[i % len(symbols)]
            t = times[symbol] = times[symbol] + step
            p = prices[symbol]
            # A small deterministic zig-zag keeps values valid (low <= o, c <= high).
            o = round(p, 2)
            c = round(p * (1.0005 if i % 2 else 0.9995), 2)
            h = round(max(o, c) + 0.01, 2)
            low = round(min(o, c) - 0.01, 2)
            prices[symbol] = c
            bars.append(bar_message(symbol, t, o, h, low, c, 100, 3, round((o + c) / 2, 4)))
        self.last_bar_time.update(times)
        return bars


def interval_start(now: datetime, interval: float) -> datetime:
    """The start of the `interval`-second bar window (aligned to the epoch) holding `now`."""
    # Integer microseconds keep boundaries exact (0.1 s steps have no float noise).
    step = max(1, round(interval * 1_000_000))
    micros = (now - _EPOCH) // timedelta(microseconds=1)
    return _EPOCH + timedelta(microseconds=micros - micros % step)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
