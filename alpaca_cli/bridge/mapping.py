"""Wire JSON (as Alpaca sends it) -> the project's domain types, checked on the way.

The bridge asks the SDK for raw data and maps it here: it is cheaper than
building pydantic models we would throw away, exact (money arrives as
strings, so it becomes Decimal without passing through float), and tolerant
of fields and statuses newer than the SDK's enums.

Tolerant is not trusting: what the tool relies on (an order's id, status and
quantities; the account's id; the clock's times) must be there and of the
right type, or the answer is `MalformedAnswer` — which the bridge reports as
a failing broker (exit 4), never as data. A null id must not become "None".
Optional fields may be missing or null, but not mistyped.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from alpaca_cli.domain import (
    Account,
    Activity,
    Asset,
    Bar,
    CalendarDay,
    Clock,
    Closing,
    MarketSnapshot,
    Order,
    Position,
    Quote,
    Trade,
    TradeUpdate,
)


class MalformedAnswer(ValueError):
    """A broker answer without a field the tool needs, or with one of the wrong type."""


def _object(raw: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise MalformedAnswer(f"{what} is {_kind(raw)}, not an object")
    return raw


def objects(raw: Any, what: str) -> list[Mapping[str, Any]]:
    """A JSON list of objects (an answer listing orders, positions, ...)."""
    if not isinstance(raw, list):
        raise MalformedAnswer(f"expected a list of {what}s, got {_kind(raw)}")
    return [_object(item, what) for item in raw]


def _kind(value: Any) -> str:
    return "null" if value is None else f"a {type(value).__name__}"


def _text(raw: Mapping[str, Any], key: str, what: str) -> str:
    """A required non-empty string field (enum-ish values arrive as plain strings)."""
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedAnswer(f"{what} field {key!r} is {'missing' if key not in raw else _kind(value)}")
    return value


def _optional_text(raw: Mapping[str, Any], key: str, what: str, default: str = "") -> str:
    value = raw.get(key)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise MalformedAnswer(f"{what} field {key!r} is {_kind(value)}, not a string")
    return value


def to_decimal(value: Any) -> Decimal | None:
    """A wire number (string or JSON number) as an exact Decimal; None when absent or not a number."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _decimal(raw: Mapping[str, Any], key: str, what: str, *, required: bool = False) -> Decimal | None:
    value = raw.get(key)
    if value is None or value == "":
        if required:
            raise MalformedAnswer(f"{what} field {key!r} is {'missing' if key not in raw else _kind(value)}")
        return None
    number = to_decimal(value) if isinstance(value, str | int | float) else None
    if number is None:
        raise MalformedAnswer(f"{what} field {key!r} is not a number")
    return number


def _number(raw: Mapping[str, Any], key: str, what: str, *, required: bool = True) -> float | None:
    value = raw.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedAnswer(f"{what} field {key!r} is {'missing' if key not in raw else _kind(value)}")
    return float(value)


def to_datetime(value: Any) -> datetime | None:
    """An RFC 3339 wire time (or a datetime) in UTC; None when absent or unreadable."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _time(raw: Mapping[str, Any], key: str, what: str, *, required: bool = False) -> datetime | None:
    value = raw.get(key)
    if value is None or value == "":
        if required:
            raise MalformedAnswer(f"{what} field {key!r} is {'missing' if key not in raw else _kind(value)}")
        return None
    moment = to_datetime(value)
    if moment is None:
        raise MalformedAnswer(f"{what} field {key!r} is not a time")
    return moment


def _flag(raw: Mapping[str, Any], key: str, what: str, *, required: bool = False) -> bool:
    value = raw.get(key)
    if value is None and not required:
        return False
    if not isinstance(value, bool):
        raise MalformedAnswer(f"{what} field {key!r} is {'missing' if key not in raw else _kind(value)}")
    return value


def account(raw: Any) -> Account:
    raw = _object(raw, "account")
    what = "account"
    return Account(
        id=_text(raw, "id", what),
        account_number=_optional_text(raw, "account_number", what),
        status=_text(raw, "status", what),
        currency=_optional_text(raw, "currency", what, "USD"),
        cash=_decimal(raw, "cash", what) or Decimal(0),
        equity=_decimal(raw, "equity", what) or Decimal(0),
        buying_power=_decimal(raw, "buying_power", what) or Decimal(0),
        trading_blocked=_flag(raw, "trading_blocked", what),
        account_blocked=_flag(raw, "account_blocked", what),
        transfers_blocked=_flag(raw, "transfers_blocked", what),
        trade_suspended_by_user=_flag(raw, "trade_suspended_by_user", what),
    )


def clock(raw: Any) -> Clock:
    raw = _object(raw, "clock")
    what = "clock"
    return Clock(
        timestamp=_time(raw, "timestamp", what, required=True),  # type: ignore[arg-type]
        is_open=_flag(raw, "is_open", what, required=True),
        next_open=_time(raw, "next_open", what, required=True),  # type: ignore[arg-type]
        next_close=_time(raw, "next_close", what, required=True),  # type: ignore[arg-type]
    )


def position(raw: Any) -> Position:
    raw = _object(raw, "position")
    what = "position"
    qty: Decimal = _decimal(raw, "qty", what, required=True)  # type: ignore[assignment]
    side = _optional_text(raw, "side", what, "short" if qty < 0 else "long")
    return Position(
        symbol=_text(raw, "symbol", what),
        qty=abs(qty),
        side=side,
        avg_entry_price=_decimal(raw, "avg_entry_price", what) or Decimal(0),
        market_value=_decimal(raw, "market_value", what),
        current_price=_decimal(raw, "current_price", what),
        unrealized_pl=_decimal(raw, "unrealized_pl", what),
        asset_id=_optional_text(raw, "asset_id", what) or None,
    )


class _Irregular(Exception):
    """Not the plain shape the inline readers take: read the strict way, which names the problem."""


def _plain_text(value: Any) -> str:
    if type(value) is not str or not value:
        raise _Irregular
    return value


def _plain_optional(value: Any, default: str = "") -> str:
    if value is None or value == "":
        return default
    if type(value) is not str:
        raise _Irregular
    return value


def _plain_decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    kind = type(value)
    number = Decimal(value) if kind is str else Decimal(str(value)) if kind is int or kind is float else None
    if number is None or not number.is_finite():
        raise _Irregular
    return number


def _plain_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if type(value) is not str:
        raise _Irregular
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _plain_order(raw: dict[str, Any]) -> Order:
    """`order` for a plain JSON object, the checks inline: each field of the plain shape
    (a string, a number or numeric string, an RFC 3339 time, null) as the strict readers
    take it; anything else raises (`_Irregular`, or the parser's own error)."""
    get = raw.get
    created = _plain_time(get("created_at"))
    stamp = get("submitted_at")
    submitted = (created if stamp == get("created_at") else _plain_time(stamp)) or created  # mostly the same text
    if submitted is None:
        raise _Irregular
    updated = _plain_time(get("updated_at"))
    stamp = get("filled_at")
    filled_at = updated if stamp == get("updated_at") else _plain_time(stamp)
    kind = _plain_optional(get("type")) or _plain_optional(get("order_type"))
    legs = get("legs")
    if legs:
        if type(legs) is not list or any(type(leg) is not dict for leg in legs):
            raise _Irregular
        legs = tuple(_plain_order(leg) for leg in legs)  # an irregular leg: the whole order the strict way, once
    extended = get("extended_hours")
    if extended is None:
        extended = False
    elif type(extended) is not bool:
        raise _Irregular
    # Positional, in `Order`'s field order: keywords cost 1.3 us more per order. The property
    # tests in tests/test_mapping.py compare every field with `_checked_order`'s.
    return Order(
        _plain_text(get("id")),
        _plain_optional(get("client_order_id")),
        _plain_text(get("symbol")),
        _plain_text(get("side")),
        kind,
        _plain_optional(get("time_in_force")),
        _plain_text(get("status")),
        submitted,
        _plain_decimal(get("qty")),
        _plain_decimal(get("notional")),
        _plain_decimal(get("filled_qty")) or Decimal(0),
        _plain_decimal(get("filled_avg_price")),
        _plain_decimal(get("limit_price")),
        _plain_decimal(get("stop_price")),
        _plain_decimal(get("trail_percent")),
        _plain_decimal(get("trail_price")),
        extended,
        created,
        updated,
        filled_at,
        _plain_time(get("canceled_at")),
        _plain_time(get("expired_at")),
        _plain_time(get("failed_at")),
        _plain_optional(get("order_class"), "simple"),
        _plain_optional(get("replaced_by")) or None,
        _plain_optional(get("replaces")) or None,
        legs or (),
    )


def order(raw: Any) -> Order:
    if type(raw) is dict:  # the hot path (a fill on the stream, a page of 500 orders)
        try:
            return _plain_order(raw)
        except (_Irregular, ValueError, ArithmeticError):
            pass
    return _checked_order(raw)


def _checked_order(raw: Any) -> Order:
    """`order` field by field, naming the first field that is missing or of the wrong type."""
    raw = _object(raw, "order")
    what = "order"
    submitted = _time(raw, "submitted_at", what) or _time(raw, "created_at", what)
    if submitted is None:
        raise MalformedAnswer("order has neither 'submitted_at' nor 'created_at'")
    return Order(
        id=_text(raw, "id", what),
        client_order_id=_optional_text(raw, "client_order_id", what),
        symbol=_text(raw, "symbol", what),
        side=_text(raw, "side", what),
        type=_optional_text(raw, "type", what) or _optional_text(raw, "order_type", what),
        time_in_force=_optional_text(raw, "time_in_force", what),
        status=_text(raw, "status", what),
        submitted_at=submitted,
        qty=_decimal(raw, "qty", what),
        notional=_decimal(raw, "notional", what),
        filled_qty=_decimal(raw, "filled_qty", what) or Decimal(0),
        filled_avg_price=_decimal(raw, "filled_avg_price", what),
        limit_price=_decimal(raw, "limit_price", what),
        stop_price=_decimal(raw, "stop_price", what),
        trail_percent=_decimal(raw, "trail_percent", what),
        trail_price=_decimal(raw, "trail_price", what),
        extended_hours=_flag(raw, "extended_hours", what),
        created_at=_time(raw, "created_at", what),
        updated_at=_time(raw, "updated_at", what),
        filled_at=_time(raw, "filled_at", what),
        canceled_at=_time(raw, "canceled_at", what),
        expired_at=_time(raw, "expired_at", what),
        failed_at=_time(raw, "failed_at", what),
        order_class=_optional_text(raw, "order_class", what, default="simple"),
        replaced_by=_optional_text(raw, "replaced_by", what) or None,
        replaces=_optional_text(raw, "replaces", what) or None,
        legs=tuple(_checked_order(leg) for leg in objects(raw.get("legs") or [], "order leg")),
    )


def orders(raw: Any) -> list[Order]:
    return [order(item) for item in objects(raw, "order")]


def positions(raw: Any) -> list[Position]:
    return [position(item) for item in objects(raw, "position")]


def cancellations(raw: Any) -> list[dict[str, Any]]:
    """The answer to "cancel all": each order's id and the HTTP status of its cancellation."""
    result = []
    for item in objects(raw or [], "cancellation"):
        status = item.get("status")
        if isinstance(status, bool) or not isinstance(status, int):
            raise MalformedAnswer("cancellation field 'status' is not a whole number")
        result.append({"id": _text(item, "id", "cancellation"), "status": status})
    return result


def closings(raw: Any) -> list[Closing]:
    """The answer to "close all positions": per symbol, an HTTP status and the closing order (or an error)."""
    result = []
    for item in objects(raw or [], "closing"):
        status = item.get("status")
        if isinstance(status, bool) or not isinstance(status, int):
            raise MalformedAnswer("closing field 'status' is not a whole number")
        body = item.get("body")
        ok = 200 <= status < 300
        message = body.get("message") if isinstance(body, Mapping) else None
        result.append(
            Closing(
                symbol=_text(item, "symbol", "closing"),
                status=status,
                order=order(body) if ok else None,
                error=None if ok else str(message or f"broker answered {status}"),
            )
        )
    return result


def trade_update(raw: Any, *, source: str = "stream") -> TradeUpdate:
    """One `trade_updates` `data` payload."""
    if type(raw) is dict:  # the hot path: every fill on its way to `tail`'s line
        get = raw.get
        try:
            placed = get("order")
            if type(placed) is not dict:
                raise _Irregular
            return TradeUpdate(
                _plain_text(get("event")),
                _plain_order(placed),
                _plain_time(get("timestamp")) or datetime.now(UTC),
                _plain_optional(get("execution_id")) or None,
                _plain_decimal(get("price")),
                _plain_decimal(get("qty")),
                _plain_decimal(get("position_qty")),
                source,
                _plain_optional(get("reason")) or None,
            )
        except (_Irregular, ValueError, ArithmeticError):
            pass
    return _checked_trade_update(raw, source)


def _checked_trade_update(raw: Any, source: str) -> TradeUpdate:
    raw = _object(raw, "trade update")
    what = "trade update"
    return TradeUpdate(
        event=_text(raw, "event", what),
        order=_checked_order(raw.get("order")),
        timestamp=_time(raw, "timestamp", what) or datetime.now(UTC),
        execution_id=_optional_text(raw, "execution_id", what) or None,
        price=_decimal(raw, "price", what),
        qty=_decimal(raw, "qty", what),
        position_qty=_decimal(raw, "position_qty", what),
        source=source,
        reason=_optional_text(raw, "reason", what) or None,  # top level of the event, not in the order
    )


def _stamp(raw: Mapping[str, Any], what: str) -> datetime:
    """`t` of a market-data item: a msgpack Timestamp on the stream, RFC 3339 over REST."""
    stamp = raw.get("t")
    if hasattr(stamp, "to_datetime"):  # msgpack.Timestamp
        return stamp.to_datetime()  # type: ignore[no-any-return]
    if isinstance(stamp, int | float) and not isinstance(stamp, bool):
        return datetime.fromtimestamp(stamp / 1e9 if stamp > 1e12 else stamp, UTC)
    return _time(raw, "t", what, required=True)  # type: ignore[return-value]


_NUMBERS = (float, int)  # `type(x) in _NUMBERS`: a JSON/msgpack number, never a bool


def _moment(stamp: Any) -> datetime | None:
    """`t` of a market-data item as msgpack (a Timestamp) or REST (RFC 3339 with an offset) gives it;
    None for anything else, which is then read the strict way (and its error told)."""
    if type(stamp) is str:
        try:
            moment = datetime.fromisoformat(stamp)
        except ValueError:
            return None
        return moment if moment.tzinfo is not None else None
    return stamp.to_datetime() if type(stamp).__name__ == "Timestamp" else None  # type: ignore[no-any-return]


def bar(raw: Any, symbol: str | None = None, *, updated: bool = False) -> Bar:
    """A bar from either the market-data stream (`S`, `t` Timestamp) or historical REST."""
    if type(raw) is dict:  # the hot path (a stream, a page of 10,000): the same checks, inline
        o, h, low, c, v = raw.get("o"), raw.get("h"), raw.get("l"), raw.get("c"), raw.get("v")
        n, vw = raw.get("n"), raw.get("vw")
        name = symbol or raw.get("S")
        if (
            type(o) in _NUMBERS
            and type(h) in _NUMBERS
            and type(low) in _NUMBERS
            and type(c) in _NUMBERS
            and type(v) in _NUMBERS
            and (n is None or type(n) in _NUMBERS)
            and (vw is None or type(vw) in _NUMBERS)
            and type(name) is str
            and name
            and (moment := _moment(raw.get("t"))) is not None
        ):
            trades, average = None if n is None else float(n), None if vw is None else float(vw)
            return Bar(name, moment, float(o), float(h), float(low), float(c), float(v), trades, average, updated)
    raw = _object(raw, "bar")
    what = "bar"
    return Bar(
        symbol=symbol or _text(raw, "S", what),
        timestamp=_stamp(raw, what),
        open=_number(raw, "o", what),  # type: ignore[arg-type]
        high=_number(raw, "h", what),  # type: ignore[arg-type]
        low=_number(raw, "l", what),  # type: ignore[arg-type]
        close=_number(raw, "c", what),  # type: ignore[arg-type]
        volume=_number(raw, "v", what),  # type: ignore[arg-type]
        trade_count=_number(raw, "n", what, required=False),
        vwap=_number(raw, "vw", what, required=False),
        updated=updated,
    )


def bars(raw: Any) -> list[Bar]:
    """Historical bars keyed by symbol (`{"AAPL": [...], ...}`), flattened."""
    if raw is None:
        return []
    table = _object(raw, "bars")
    return [bar(item, str(symbol)) for symbol, items in table.items() for item in objects(items, "bar")]


def bar_page(raw: Any) -> tuple[list[Bar], str | None]:
    """One page of `GET .../bars`: its bars (by symbol, oldest first) and the next page's token."""
    raw = _object(raw, "bars answer")
    if "bars" not in raw:
        raise MalformedAnswer("bars answer has no 'bars' field")
    return bars(raw["bars"]), _page_token(raw)


def _page_token(raw: Mapping[str, Any]) -> str | None:
    token = raw.get("next_page_token")
    if token is not None and not isinstance(token, str):
        raise MalformedAnswer(f"field 'next_page_token' is {_kind(token)}, not a string")
    return token or None


def quote(raw: Any, symbol: str | None = None) -> Quote:
    """A quote from the stream (`T: "q"`, `S`) or REST: `bp`/`bs` bid, `ap`/`as` ask."""
    if type(raw) is dict:  # the hot path (a stream, a page of 10,000): the same checks, inline
        bid, bid_size, ask, ask_size = raw.get("bp"), raw.get("bs"), raw.get("ap"), raw.get("as")
        name = symbol or raw.get("S")
        if (
            type(bid) in _NUMBERS
            and type(bid_size) in _NUMBERS
            and type(ask) in _NUMBERS
            and type(ask_size) in _NUMBERS
            and type(name) is str
            and name
            and (moment := _moment(raw.get("t"))) is not None
        ):
            return Quote(name, moment, float(bid), float(bid_size), float(ask), float(ask_size))
    raw = _object(raw, "quote")
    what = "quote"
    return Quote(
        symbol=symbol or _text(raw, "S", what),
        timestamp=_stamp(raw, what),
        bid=_number(raw, "bp", what),  # type: ignore[arg-type]
        bid_size=_number(raw, "bs", what),  # type: ignore[arg-type]
        ask=_number(raw, "ap", what),  # type: ignore[arg-type]
        ask_size=_number(raw, "as", what),  # type: ignore[arg-type]
    )


def trade(raw: Any, symbol: str | None = None) -> Trade:
    """A trade from the stream (`T: "t"`, `S`) or REST: `p` price, `s` size, `i` its id."""
    ident = raw.get("i") if isinstance(raw, Mapping) else None
    ident = ident if type(ident) is int or type(ident) is str else None
    if type(raw) is dict:  # the hot path (a stream, a page of 10,000): the same checks, inline
        price, size, name = raw.get("p"), raw.get("s"), symbol or raw.get("S")
        if (
            type(price) in _NUMBERS
            and type(size) in _NUMBERS
            and type(name) is str
            and name
            and (moment := _moment(raw.get("t"))) is not None
        ):
            return Trade(name, moment, float(price), float(size), ident)
    raw = _object(raw, "trade")
    what = "trade"
    return Trade(
        symbol=symbol or _text(raw, "S", what),
        timestamp=_stamp(raw, what),
        price=_number(raw, "p", what),  # type: ignore[arg-type]
        size=_number(raw, "s", what),  # type: ignore[arg-type]
        id=ident,
    )


def snapshots(raw: Any) -> list[MarketSnapshot]:
    """`GET .../snapshots`: symbol -> latest trade, quote and minute bar (each may be null).

    Stocks answer `{"AAPL": {...}}`, crypto `{"snapshots": {"BTC/USD": {...}}}`;
    a symbol the broker does not know is absent (or null).
    """
    table = _object(raw, "snapshots answer")
    if set(table) == {"snapshots"} and isinstance(table["snapshots"], Mapping):
        table = table["snapshots"]
    found = []
    for symbol, item in table.items():
        if item is None:
            continue
        item = _object(item, f"snapshot of {symbol}")
        parts = (item.get("latestTrade"), item.get("latestQuote"), item.get("minuteBar"))
        found.append(
            MarketSnapshot(
                symbol=str(symbol),
                trade=None if parts[0] is None else trade(parts[0], str(symbol)),
                quote=None if parts[1] is None else quote(parts[1], str(symbol)),
                bar=None if parts[2] is None else bar(parts[2], str(symbol)),
            )
        )
    return found


def _day(raw: Mapping[str, Any], key: str, what: str, *, required: bool = False) -> date | None:
    value = raw.get(key)
    if value is None or value == "":
        if required:
            raise MalformedAnswer(f"{what} field {key!r} is {'missing' if key not in raw else _kind(value)}")
        return None
    if not isinstance(value, str):
        raise MalformedAnswer(f"{what} field {key!r} is {_kind(value)}, not a date")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise MalformedAnswer(f"{what} field {key!r} is not a date") from None


def calendar(raw: Any) -> list[CalendarDay]:
    days = []
    for item in objects(raw, "calendar day"):
        what = "calendar day"
        days.append(
            CalendarDay(
                date=_day(item, "date", what, required=True),  # type: ignore[arg-type]
                open=_text(item, "open", what),
                close=_text(item, "close", what),
            )
        )
    return days


def asset(raw: Any) -> Asset:
    raw = _object(raw, "asset")
    what = "asset"
    return Asset(
        symbol=_text(raw, "symbol", what),
        name=_optional_text(raw, "name", what),
        exchange=_optional_text(raw, "exchange", what),
        status=_text(raw, "status", what),
        tradable=_flag(raw, "tradable", what, required=True),
        marginable=_flag(raw, "marginable", what),
        shortable=_flag(raw, "shortable", what),
        easy_to_borrow=_flag(raw, "easy_to_borrow", what),
        fractionable=_flag(raw, "fractionable", what),
        id=_optional_text(raw, "id", what) or None,
    )


def assets(raw: Any) -> list[Asset]:
    return [asset(item) for item in objects(raw, "asset")]


def activity(raw: Any) -> Activity:
    raw = _object(raw, "activity")
    what = "activity"
    return Activity(
        id=_text(raw, "id", what),
        activity_type=_text(raw, "activity_type", what),
        at=_time(raw, "transaction_time", what),
        date=_day(raw, "date", what),
        symbol=_optional_text(raw, "symbol", what) or None,
        side=_optional_text(raw, "side", what) or None,
        qty=_decimal(raw, "qty", what),
        price=_decimal(raw, "price", what),
        net_amount=_decimal(raw, "net_amount", what),
        order_id=_optional_text(raw, "order_id", what) or None,
        description=_optional_text(raw, "description", what) or None,
    )


def activities(raw: Any) -> list[Activity]:
    return [activity(item) for item in objects(raw, "activity")]
