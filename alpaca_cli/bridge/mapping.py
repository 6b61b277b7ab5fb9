"""Wire JSON (as Alpaca sends it) -> the project's domain types.

The bridge asks the SDK for raw data and maps it here: it is cheaper than
building pydantic models we would throw away, exact (money arrives as
strings, so it becomes Decimal without passing through float), and tolerant
of fields and statuses newer than the SDK's enums.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from alpaca_cli.domain import Account, Bar, Clock, Order, Position, TradeUpdate


def to_decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def to_datetime(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _text(value: Any) -> str:
    """Enum-ish wire values ("buy", OrderSide.BUY, "ACTIVE") as plain lower-level text."""
    return str(getattr(value, "value", value))


def account(raw: Mapping[str, Any]) -> Account:
    return Account(
        id=str(raw["id"]),
        account_number=str(raw.get("account_number") or ""),
        status=_text(raw.get("status", "")),
        currency=str(raw.get("currency") or "USD"),
        cash=to_decimal(raw.get("cash")) or Decimal(0),
        equity=to_decimal(raw.get("equity")) or Decimal(0),
        buying_power=to_decimal(raw.get("buying_power")) or Decimal(0),
        daytrade_count=int(raw.get("daytrade_count") or 0),
        pattern_day_trader=bool(raw.get("pattern_day_trader")),
        trading_blocked=bool(raw.get("trading_blocked")),
        account_blocked=bool(raw.get("account_blocked")),
        transfers_blocked=bool(raw.get("transfers_blocked")),
        trade_suspended_by_user=bool(raw.get("trade_suspended_by_user")),
    )


def clock(raw: Mapping[str, Any]) -> Clock:
    return Clock(
        timestamp=to_datetime(raw["timestamp"]),  # type: ignore[arg-type]
        is_open=bool(raw["is_open"]),
        next_open=to_datetime(raw["next_open"]),  # type: ignore[arg-type]
        next_close=to_datetime(raw["next_close"]),  # type: ignore[arg-type]
    )


def position(raw: Mapping[str, Any]) -> Position:
    qty = to_decimal(raw.get("qty")) or Decimal(0)
    side = _text(raw.get("side") or ("short" if qty < 0 else "long"))
    return Position(
        symbol=str(raw["symbol"]),
        qty=abs(qty),
        side=side,
        avg_entry_price=to_decimal(raw.get("avg_entry_price")) or Decimal(0),
        market_value=to_decimal(raw.get("market_value")),
        current_price=to_decimal(raw.get("current_price")),
        unrealized_pl=to_decimal(raw.get("unrealized_pl")),
        asset_id=str(raw["asset_id"]) if raw.get("asset_id") else None,
    )


def order(raw: Mapping[str, Any]) -> Order:
    submitted = to_datetime(raw.get("submitted_at")) or to_datetime(raw.get("created_at"))
    return Order(
        id=str(raw["id"]),
        client_order_id=str(raw.get("client_order_id") or ""),
        symbol=str(raw.get("symbol") or ""),
        side=_text(raw.get("side") or ""),
        type=_text(raw.get("type") or raw.get("order_type") or ""),
        time_in_force=_text(raw.get("time_in_force") or ""),
        status=_text(raw.get("status") or ""),
        submitted_at=submitted or datetime.now(UTC),
        qty=to_decimal(raw.get("qty")),
        notional=to_decimal(raw.get("notional")),
        filled_qty=to_decimal(raw.get("filled_qty")) or Decimal(0),
        filled_avg_price=to_decimal(raw.get("filled_avg_price")),
        limit_price=to_decimal(raw.get("limit_price")),
        stop_price=to_decimal(raw.get("stop_price")),
        trail_percent=to_decimal(raw.get("trail_percent")),
        trail_price=to_decimal(raw.get("trail_price")),
        extended_hours=bool(raw.get("extended_hours")),
        created_at=to_datetime(raw.get("created_at")),
        updated_at=to_datetime(raw.get("updated_at")),
        filled_at=to_datetime(raw.get("filled_at")),
        canceled_at=to_datetime(raw.get("canceled_at")),
        expired_at=to_datetime(raw.get("expired_at")),
        failed_at=to_datetime(raw.get("failed_at")),
    )


def trade_update(raw: Mapping[str, Any], *, source: str = "stream") -> TradeUpdate:
    """One `trade_updates` `data` payload."""
    return TradeUpdate(
        event=str(raw["event"]),
        order=order(raw["order"]),
        timestamp=to_datetime(raw.get("timestamp")) or datetime.now(UTC),
        execution_id=str(raw["execution_id"]) if raw.get("execution_id") else None,
        price=to_decimal(raw.get("price")),
        qty=to_decimal(raw.get("qty")),
        position_qty=to_decimal(raw.get("position_qty")),
        source=source,
    )


def bar(raw: Mapping[str, Any], symbol: str | None = None) -> Bar:
    """A bar from either the market-data stream (`S`, `t` Timestamp) or historical REST."""
    stamp = raw["t"]
    if hasattr(stamp, "to_datetime"):  # msgpack.Timestamp
        moment = stamp.to_datetime()
    elif isinstance(stamp, int | float):
        moment = datetime.fromtimestamp(stamp / 1e9 if stamp > 1e12 else stamp, UTC)
    else:
        moment = to_datetime(stamp)  # type: ignore[assignment]
    return Bar(
        symbol=str(symbol or raw["S"]),
        timestamp=moment,
        open=float(raw["o"]),
        high=float(raw["h"]),
        low=float(raw["l"]),
        close=float(raw["c"]),
        volume=float(raw["v"]),
        trade_count=None if raw.get("n") is None else float(raw["n"]),
        vwap=None if raw.get("vw") is None else float(raw["vw"]),
    )
