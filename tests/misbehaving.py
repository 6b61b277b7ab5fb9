"""A misbehaving Alpaca for tests: one loopback HTTP server, every failure a real broker can produce.

The sandbox is a well-behaved broker with switchable network faults; this is
the opposite, a broker whose *answers* are wrong (HTML, cut JSON, missing or
mistyped fields, silence, one byte a second, 429s, 404s, a lost POST), so the
tests can check that the tool turns each into one line and the right exit code.
Standard library only, so a bug here can never hide behind a bug in the SDK.

    with MisbehavingBroker() as broker:
        broker.behave("ok", orders="wrong_types")      # account fine, orders list malformed
        env = broker.env()                             # the APCA_* URLs pointing here
        ...run the CLI...
        broker.count("submit")                         # POST /v2/orders seen
        [r.status for r in broker.log("order_by_client_id")]

`behave(default, **routes)` picks the behaviour of every route (`default`)
and of single routes by name (`ROUTES`); it applies to WebSocket upgrade
paths too, which answer the same HTTP fault in place of the upgrade. `ok` on
those paths speaks just enough of both streams (trading JSON, market data
msgpack) to authenticate and subscribe, then stays silent.

Every handler is bounded: a silent or trickling answer gives up when the
server closes (its `stopped` event) and after `HOLD_LIMIT` seconds at most.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

BEHAVIOURS = (
    "ok",
    "html502",
    "truncated_json",
    "short_body",
    "missing_fields",
    "wrong_types",
    "nulls",
    "never",
    "trickle",
    "rate_limited",
    "not_found",
    "post_504_then_404",
)
ROUTES = (
    "account",
    "clock",
    "positions",
    "orders",
    "order",
    "order_by_client_id",
    "submit",
    "bars",
    "snapshots",
    "trade_stream",
    "data_stream",
    "unknown",
)
STREAM_ROUTES = frozenset({"trade_stream", "data_stream"})
ACCOUNT_ID = "5b1f7c7e-0d7a-4a55-9a8e-3f0c2d1e9b44"
OPEN_ORDER_ID = "61e69015-8549-4bfd-b9c3-01e75843f47d"
OPEN_ORDER_AT = "2026-11-27T15:04:05.123456Z"  # fixed, so two snapshots agree
HOLD_LIMIT = 120.0  # the longest any handler keeps a connection
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class Request:
    """One request as the server saw it, and the status it answered (None: it never did)."""

    method: str
    path: str
    query: dict[str, str]
    route: str
    at: float  # time.monotonic() on arrival
    body: bytes
    status: int | None

    def json(self) -> Any:
        return json.loads(self.body)


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def account_json() -> dict[str, Any]:
    """`GET /v2/account` of an active paper account."""
    return {
        "id": ACCOUNT_ID,
        "admin_configurations": {},
        "user_configurations": None,
        "account_number": "PA3MISBEHAVE",
        "status": "ACTIVE",
        "crypto_status": "ACTIVE",
        "options_approved_level": 0,
        "options_trading_level": 0,
        "currency": "USD",
        "buying_power": "199000.5",
        "regt_buying_power": "199000.5",
        "effective_buying_power": "199000.5",
        "non_marginable_buying_power": "99500.25",
        "options_buying_power": "99500.25",
        "cash": "99500.25",
        "accrued_fees": "0",
        "portfolio_value": "100500.25",
        "trading_blocked": False,
        "transfers_blocked": False,
        "account_blocked": False,
        "created_at": "2024-01-02T14:30:00.123456Z",
        "trade_suspended_by_user": False,
        "multiplier": "2",
        "shorting_enabled": True,
        "equity": "100500.25",
        "last_equity": "100400",
        "long_market_value": "1000",
        "short_market_value": "0",
        "position_market_value": "1000",
        "initial_margin": "500",
        "maintenance_margin": "300",
        "last_maintenance_margin": "300",
        "sma": "100400",
        "balance_asof": "2026-11-27",
        "crypto_tier": 1,
        "intraday_adjustments": "0",
        "pending_reg_taf_fees": "0",
    }


def clock_json() -> dict[str, Any]:
    """`GET /v2/clock`: closed now, opening tomorrow (so a stream may stay silent)."""
    now = datetime.now(UTC)
    return {
        "timestamp": _ts(now),
        "is_open": False,
        "next_open": _ts(now + timedelta(hours=12)),
        "next_close": _ts(now + timedelta(hours=18)),
    }


def position_json() -> dict[str, Any]:
    return {
        "asset_id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415",
        "symbol": "AAPL",
        "exchange": "NASDAQ",
        "asset_class": "us_equity",
        "asset_marginable": True,
        "qty": "5",
        "avg_entry_price": "190.5",
        "side": "long",
        "market_value": "1000",
        "cost_basis": "952.5",
        "unrealized_pl": "47.5",
        "unrealized_plpc": "0.0498687664041995",
        "unrealized_intraday_pl": "5",
        "unrealized_intraday_plpc": "0.005025125628140704",
        "current_price": "200",
        "lastday_price": "199",
        "change_today": "0.005025125628140704",
        "qty_available": "5",
    }


def order_json(
    order_id: str = OPEN_ORDER_ID,
    client_order_id: str = "acli-open-limit-msft",
    *,
    symbol: str = "MSFT",
    side: str = "buy",
    qty: str | None = "2",
    order_type: str = "limit",
    time_in_force: str = "gtc",
    limit_price: str | None = "300",
    status: str = "new",
    at: str = OPEN_ORDER_AT,
) -> dict[str, Any]:
    """One order object, as `GET /v2/orders/{id}` and `POST /v2/orders` answer it."""
    return {
        "id": order_id,
        "client_order_id": client_order_id,
        "created_at": at,
        "updated_at": at,
        "submitted_at": at,
        "filled_at": None,
        "expired_at": None,
        "canceled_at": None,
        "failed_at": None,
        "replaced_at": None,
        "replaced_by": None,
        "replaces": None,
        "asset_id": "b6d1aa75-5c9c-4353-a305-9e2caa1925ab",
        "symbol": symbol,
        "asset_class": "us_equity",
        "notional": None,
        "qty": qty,
        "filled_qty": "0",
        "filled_avg_price": None,
        "order_class": "simple",
        "order_type": order_type,
        "type": order_type,
        "side": side,
        "position_intent": f"{side}_to_open",
        "time_in_force": time_in_force,
        "limit_price": limit_price,
        "stop_price": None,
        "status": status,
        "extended_hours": False,
        "legs": None,
        "trail_percent": None,
        "trail_price": None,
        "hwm": None,
        "subtag": None,
        "source": None,
        "expires_at": None,
    }


def submitted_order_json(body: dict[str, Any]) -> dict[str, Any]:
    """The order a POST /v2/orders with `body` creates (status `accepted`, a fresh id)."""
    return order_json(
        str(uuid.uuid4()),
        str(body.get("client_order_id") or uuid.uuid4()),
        symbol=str(body.get("symbol", "AAPL")),
        side=str(body.get("side", "buy")),
        qty=None if body.get("qty") is None else str(body["qty"]),
        order_type=str(body.get("type", "market")),
        time_in_force=str(body.get("time_in_force", "day")),
        limit_price=None if body.get("limit_price") is None else str(body["limit_price"]),
        status="accepted",
        at=_ts(datetime.now(UTC)),
    )


def bars_json() -> dict[str, Any]:
    """`GET /v2/stocks/bars`: two whole minutes of AAPL, one page."""
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=3)
    bars = [
        {
            "t": _ts(start + timedelta(minutes=i)).replace(".000000", ""),
            "o": 200.1 + i,
            "h": 200.9 + i,
            "l": 199.8 + i,
            "c": 200.5 + i,
            "v": 1200 + i,
            "n": 31 + i,
            "vw": 200.4 + i,
        }
        for i in range(2)
    ]
    return {"bars": {"AAPL": bars}, "next_page_token": None}


def snapshots_json() -> dict[str, Any]:
    """`GET /v2/stocks/snapshots`: AAPL's latest trade, quote and minute bar."""
    now = datetime.now(UTC).replace(microsecond=0)
    minute = bars_json()["bars"]["AAPL"][-1]
    return {
        "AAPL": {
            "latestTrade": {"t": _ts(now), "x": "V", "p": 200.55, "s": 100, "c": ["@"], "i": 52983525029461, "z": "C"},
            "latestQuote": {"t": _ts(now), "ax": "V", "ap": 200.6, "as": 2, "bx": "V", "bp": 200.5, "bs": 3},
            "minuteBar": minute,
            "dailyBar": minute,
            "prevDailyBar": minute,
        }
    }


# What each JSON-body fault makes of a route's valid answer. Keys are routes;
# a function takes the valid answer and returns the faulty one.
_Mangle = Callable[[Any], Any]


def _without(*names: str) -> _Mangle:
    def mangle(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if k not in names}

    return mangle


def _with(**fields: Any) -> _Mangle:
    def mangle(obj: dict[str, Any]) -> dict[str, Any]:
        return {**obj, **fields}

    return mangle


def _each(mangle: _Mangle) -> _Mangle:
    return lambda items: [mangle(item) for item in items]


def _bars(mangle: _Mangle) -> _Mangle:
    return lambda page: {**page, "bars": {s: [mangle(b) for b in items] for s, items in page["bars"].items()}}


def _trades(mangle: _Mangle) -> _Mangle:
    """Spoil the latest trade of every symbol of a snapshots answer."""
    return lambda table: {s: {**snap, "latestTrade": mangle(snap["latestTrade"])} for s, snap in table.items()}


_STREAM_HELLO = [{"T": "success", "msg": "connected"}]
_MISSING: dict[str, _Mangle] = {
    "account": _without("id", "status"),
    "clock": _without("timestamp", "is_open"),
    "positions": _each(_without("symbol", "qty")),
    "orders": _each(_without("id", "status")),
    "order": _without("id", "status"),
    "bars": _bars(_without("t", "c")),
    "snapshots": _trades(_without("t", "p")),
    "stream": _each(_without("msg")),
}
_WRONG: dict[str, _Mangle] = {
    "account": _with(id=12345, status=["ACTIVE"], cash={"amount": "1"}),
    "clock": lambda clock: [clock],  # a list where an object is
    "positions": _each(_with(symbol=7, qty="abc")),
    "orders": _each(_with(id=42, qty="abc", submitted_at=True)),
    "order": _with(id=["not", "an", "id"], qty="abc", submitted_at=5),
    "bars": _bars(_with(t=5, o="abc")),
    "snapshots": _trades(_with(t=5, p="abc")),
    "stream": lambda hello: {"T": 1, "msg": ["connected"]},
}
_NULLS: dict[str, _Mangle] = {
    "account": _with(id=None, status=None),
    "clock": _with(timestamp=None, is_open=None, next_open=None),
    "positions": _each(_with(symbol=None, qty=None)),
    "orders": _each(_with(id=None, status=None, submitted_at=None)),
    "order": _with(id=None, status=None),
    "bars": _bars(_with(t=None, c=None)),
    "snapshots": _trades(_with(t=None, p=None)),
    "stream": _each(_with(T=None, msg=None)),
}
_FIELD_FAULTS = {"missing_fields": _MISSING, "wrong_types": _WRONG, "nulls": _NULLS}


def _msgpack(value: Any) -> bytes:
    """Just enough msgpack for the market-data stream's control messages."""
    if value is None:
        return b"\xc0"
    if isinstance(value, bool):
        return b"\xc3" if value else b"\xc2"
    if isinstance(value, int) and 0 <= value < 128:
        return bytes([value])
    if isinstance(value, str):
        raw = value.encode()
        return (bytes([0xA0 | len(raw)]) if len(raw) < 32 else bytes([0xD9, len(raw)])) + raw
    if isinstance(value, list):
        return bytes([0x90 | len(value)]) + b"".join(map(_msgpack, value))
    if isinstance(value, dict):
        return bytes([0x80 | len(value)]) + b"".join(_msgpack(k) + _msgpack(v) for k, v in value.items())
    raise TypeError(f"cannot msgpack {value!r}")


def _ws_frame(payload: bytes, opcode: int) -> bytes:
    size = len(payload)
    if size < 126:
        head = bytes([0x80 | opcode, size])
    elif size < 1 << 16:
        head = bytes([0x80 | opcode, 126]) + size.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 127]) + size.to_bytes(8, "big")
    return head + payload


class MisbehavingBroker:
    """The server, its behaviour switches and its request log (see the module docstring)."""

    def __init__(self) -> None:
        self.stopped = threading.Event()
        self.bar_symbols: tuple[str, ...] = ("AAPL",)  # what the market-data stream acknowledges
        self._lock = threading.Lock()
        self._log: list[Request] = []
        self._created: dict[str, dict[str, Any]] = {}  # client order id -> order the broker holds
        self.behave("ok")
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="misbehaving", daemon=True)

    # -- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> MisbehavingBroker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release every held connection, then stop serving."""
        self.stopped.set()
        if self._thread.is_alive():  # `shutdown` waits for a `serve_forever` that must have started
            self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The four Alpaca URL variables, all pointing at this server."""
        return {
            "APCA_API_BASE_URL": self.url,
            "APCA_API_DATA_URL": self.url,
            "APCA_API_STREAM_URL": f"ws://127.0.0.1:{self.port}/stream",
            "APCA_API_DATA_STREAM_URL": f"ws://127.0.0.1:{self.port}",
        }

    # -- configuration ------------------------------------------------------------------

    def behave(
        self,
        default: str = "ok",
        *,
        limited: int = 2,
        retry_after: int = 1,
        order_exists: bool = False,
        resend_ok: bool = True,
        **routes: str,
    ) -> None:
        """Serve `default` on every route, and `routes[name]` on the routes named.

        - `rate_limited`: the first `limited` requests (of the account, as
          Alpaca counts) get 429 with `Retry-After: retry_after` and
          `X-RateLimit-Remaining: 0`; never on stream upgrades, where a 429 means
          "connection limit", a different failure. Every other REST answer
          carries `X-RateLimit-*` headers with room to spare.
        - `post_504_then_404`: POST /v2/orders answers 504; with `order_exists`
          the order was created anyway and the lookup by client id finds it,
          else the lookup answers 404 and a POST after that answers the order
          (`resend_ok`) or 504 again.
        """
        for name, behaviour in {"default": default, **routes}.items():
            if behaviour not in BEHAVIOURS:
                raise ValueError(f"unknown behaviour {behaviour!r}")
            if name != "default" and name not in ROUTES:
                raise ValueError(f"unknown route {name!r}")
        with self._lock:
            self._default = default
            self._routes = dict(routes)
            self.retry_after = retry_after
            self.order_exists = order_exists
            self.resend_ok = resend_ok
            self._refusals_left = limited

    def behaviour_of(self, route: str) -> str:
        return self._routes.get(route, self._default)

    # -- the request log ----------------------------------------------------------------

    def log(self, route: str | None = None, method: str | None = None) -> list[Request]:
        """Requests so far, oldest first; only `route` / `method` when given."""
        with self._lock:
            return [
                r for r in self._log if (route is None or r.route == route) and (method is None or r.method == method)
            ]

    def count(self, route: str | None = None, method: str | None = None) -> int:
        return len(self.log(route, method))

    def _record(self, request: Request) -> None:
        with self._lock:
            self._log.append(request)

    def _take_refusal(self) -> bool:
        """True for the first `limited` rate-limited requests since `behave` (one decision at a time)."""
        with self._lock:
            self._refusals_left -= 1
            return self._refusals_left >= 0

    def _created_order(self, client_order_id: str, body: dict[str, Any] | None = None) -> dict[str, Any] | None:
        with self._lock:
            if body is not None:
                self._created.setdefault(client_order_id, submitted_order_json(body))
            return self._created.get(client_order_id)


def route_of(method: str, path: str) -> str:
    """The route name (`ROUTES`) of a request: what part of Alpaca's API it addresses."""
    if path == "/stream":
        return "trade_stream"
    if path in ("/v2/iex", "/v2/sip", "/v2/test"):
        return "data_stream"
    if path == "/v2/orders":
        return "submit" if method == "POST" else "orders"
    if path == "/v2/orders:by_client_order_id":
        return "order_by_client_id"
    if path.startswith("/v2/orders/"):
        return "order"
    if path.startswith("/v2/stocks/") and path.endswith("/bars"):
        return "bars"
    if path == "/v2/stocks/snapshots":
        return "snapshots"
    return {"/v2/account": "account", "/v2/clock": "clock", "/v2/positions": "positions"}.get(path, "unknown")


@dataclass
class _Answer:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    send_bytes: int | None = None  # send only this many body bytes, then close (short_body)
    hold: bool = False  # never answer
    trickle: bool = False  # one byte a second
    upgrade: bool = False  # a WebSocket session follows

    def raw(self, reason: str) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {reason}"]
        if not self.upgrade:
            lines += ["Connection: close", f"Content-Type: {self.content_type}", f"Content-Length: {len(self.body)}"]
        lines += [f"{k}: {v}" for k, v in self.headers]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        return head + self.body[: self.send_bytes]


def _json_answer(payload: Any, status: int = 200) -> _Answer:
    return _Answer(status, json.dumps(payload).encode())


def _handler_for(broker: MisbehavingBroker) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        server_broker = broker

    return Handler


class _Handler(BaseHTTPRequestHandler):
    """Reads one request, decides the answer from the broker's behaviour, sends it, closes."""

    protocol_version = "HTTP/1.1"
    server_broker: MisbehavingBroker

    def log_message(self, format: str, *args: Any) -> None:  # the test output stays clean
        del format, args

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_DELETE = do_PATCH = do_PUT = do_GET

    def _serve(self) -> None:
        broker = self.server_broker
        self.close_connection = True
        arrived = time.monotonic()
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        route = route_of(self.command, parts.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        answer = self._answer(route, broker.behaviour_of(route), query, body)
        if answer.content_type == "application/json" and answer.status != 429 and route not in STREAM_ROUTES:
            remaining = max(0, 199 - broker.count())  # Alpaca's 200 a minute, with room to spare
            reset = str(math.ceil(time.time()) + 60)
            answer.headers += (("X-RateLimit-Limit", "200"), ("X-RateLimit-Remaining", str(remaining)))
            answer.headers += (("X-RateLimit-Reset", reset),)
        broker._record(
            Request(self.command, parts.path, query, route, arrived, body, None if answer.hold else answer.status)
        )
        if answer.hold:
            broker.stopped.wait(HOLD_LIMIT)
            return
        try:
            self._send(answer)
            if answer.upgrade:
                self._websocket(route)
        except OSError:
            pass  # the client gave up: that is its right

    # -- deciding -----------------------------------------------------------------------

    def _answer(self, route: str, behaviour: str, query: dict[str, str], body: bytes) -> _Answer:
        broker = self.server_broker
        if behaviour == "never":
            return _Answer(0, hold=True)
        if behaviour == "html502":
            return _Answer(502, HTML_502.encode(), "text/html")
        if behaviour == "not_found" or route == "unknown":
            return _Answer(404, b"404 page not found", "text/plain; charset=utf-8")
        if behaviour == "rate_limited" and route not in STREAM_ROUTES and broker._take_refusal():
            reset = math.ceil(time.time()) + broker.retry_after
            headers = (
                ("Retry-After", str(broker.retry_after)),
                ("X-RateLimit-Limit", "200"),
                ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Reset", str(reset)),
            )
            return _Answer(429, b'{"code":42910000,"message":"rate limit exceeded"}', headers=headers)
        if behaviour == "post_504_then_404" and route in ("submit", "order_by_client_id"):
            return self._lost_post(route, query, body)
        if route in STREAM_ROUTES:
            return self._stream_answer(route, behaviour)
        valid = self._valid(route, query, body)
        if valid.status != 200:
            return valid
        return self._fault(route, behaviour, json.loads(valid.body))

    def _valid(self, route: str, query: dict[str, str], body: bytes) -> _Answer:
        broker = self.server_broker
        if route == "submit":
            request = json.loads(body or b"{}")
            return _json_answer(broker._created_order(str(request.get("client_order_id")), request))
        if route == "order_by_client_id":
            found = broker._created_order(query.get("client_order_id", ""))
            if found is None:
                return _json_answer({"code": 40410000, "message": "order not found"}, 404)
            return _json_answer(found)
        if route == "order":
            return _json_answer(order_json(self.path.rsplit("/", 1)[-1].split("?")[0], status="canceled"))
        payloads: dict[str, Callable[[], Any]] = {
            "account": account_json,
            "clock": clock_json,
            "positions": lambda: [position_json()],
            "orders": lambda: [order_json()],
            "bars": bars_json,
            "snapshots": snapshots_json,
        }
        return _json_answer(payloads[route]())

    def _fault(self, route: str, behaviour: str, valid: Any) -> _Answer:
        """The valid answer, spoiled as `behaviour` says (ok and rate_limited: unspoiled)."""
        key = "order" if route in ("submit", "order_by_client_id") else route
        key = "stream" if route in STREAM_ROUTES else key
        if behaviour in _FIELD_FAULTS:
            return _json_answer(_FIELD_FAULTS[behaviour][key](valid))
        answer = _json_answer(valid)
        if behaviour == "truncated_json":
            answer.body = answer.body[: len(answer.body) // 2]
        elif behaviour == "short_body":
            answer.send_bytes = len(answer.body) // 2
        elif behaviour == "trickle":
            answer.trickle = True
        return answer

    def _lost_post(self, route: str, query: dict[str, str], body: bytes) -> _Answer:
        """POST 504 (the order created or not); the lookup tells which; a resend may succeed."""
        broker = self.server_broker
        if route == "order_by_client_id":
            return self._valid(route, query, body)
        request = json.loads(body or b"{}")
        client_order_id = str(request.get("client_order_id"))
        looked_up = any(
            r.query.get("client_order_id") == client_order_id and r.status == 404
            for r in broker.log("order_by_client_id")
        )
        if looked_up and broker.resend_ok:
            return _json_answer(broker._created_order(client_order_id, request))
        if broker.order_exists:
            broker._created_order(client_order_id, request)
        return _Answer(504, b"<html><head><title>504 Gateway Time-out</title></head></html>", "text/html")

    def _stream_answer(self, route: str, behaviour: str) -> _Answer:
        if behaviour in ("ok", "rate_limited", "post_504_then_404", "trickle"):
            key = self.headers.get("Sec-WebSocket-Key", "")
            accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
            headers = (("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept))
            return _Answer(101, headers=headers, upgrade=True, trickle=behaviour == "trickle")
        return self._fault(route, behaviour, _STREAM_HELLO)

    # -- sending ------------------------------------------------------------------------

    def _send(self, answer: _Answer) -> None:
        reasons = {101: "Switching Protocols", 200: "OK", 404: "Not Found", 429: "Too Many Requests"}
        raw = answer.raw(reasons.get(answer.status, "Bad Gateway" if answer.status == 502 else "Error"))
        if not answer.trickle:
            self.wfile.write(raw)
            return
        stopped, deadline = self.server_broker.stopped, time.monotonic() + HOLD_LIMIT
        for i in range(len(raw)):
            self.wfile.write(raw[i : i + 1])
            if stopped.wait(1.0) or time.monotonic() > deadline:
                raise OSError("server stopped while trickling")

    def _websocket(self, route: str) -> None:
        """Authenticate and subscribe whatever is asked, then stay silent until the client leaves."""
        broker, sock = self.server_broker, self.connection
        if route == "trade_stream":
            replies = [
                json.dumps({"stream": "authorization", "data": {"action": "authenticate", "status": "authorized"}}),
                json.dumps({"stream": "listening", "data": {"streams": ["trade_updates"]}}),
            ]
            send = [_ws_frame(r.encode(), 0x1) for r in replies]
        else:
            sock.sendall(_ws_frame(_msgpack(_STREAM_HELLO), 0x2))
            subscribed = {"T": "subscription", "trades": [], "quotes": [], "bars": list(broker.bar_symbols)}
            replies_data = [[{"T": "success", "msg": "authenticated"}], [subscribed]]
            send = [_ws_frame(_msgpack(r), 0x2) for r in replies_data]
        for opcode, payload in self._frames(sock):
            if opcode == 0x8:
                sock.sendall(_ws_frame(payload[:2], 0x8))
                return
            if opcode == 0x9:
                sock.sendall(_ws_frame(payload, 0xA))
            elif opcode in (0x1, 0x2) and send:
                sock.sendall(send.pop(0))

    def _frames(self, sock: socket.socket) -> Iterator[tuple[int, bytes]]:
        """Client frames (unmasked), until the client closes, the server stops or HOLD_LIMIT."""
        deadline = time.monotonic() + HOLD_LIMIT
        buffer = b""

        def need(n: int) -> bool:
            nonlocal buffer
            while len(buffer) < n:
                if self.server_broker.stopped.is_set() or time.monotonic() > deadline:
                    return False
                if select.select([sock], [], [], 0.2)[0]:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return False
                    buffer += chunk
            return True

        while need(2):
            opcode, size, offset = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
            if size >= 126:
                wide = 2 if size == 126 else 8
                if not need(2 + wide):
                    return
                size, offset = int.from_bytes(buffer[2 : 2 + wide], "big"), 2 + wide
            if not need(offset + 4 + size):
                return
            mask, data = buffer[offset : offset + 4], buffer[offset + 4 : offset + 4 + size]
            buffer = buffer[offset + 4 + size :]
            yield opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data))
