"""JSON shapes of Alpaca's REST objects, as the real API sends them.

Kept apart from the engine so the field lists (long, and easy to get subtly
wrong) live in one place: money and quantities are strings, timestamps are
RFC 3339 with microseconds and `Z`, enums are Alpaca's own spellings.
alpaca-py's pydantic models reject numbers where they expect strings, so
every value here goes through `num()` or `ts()`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from alpaca_cli.sandbox import assets
from alpaca_cli.sandbox.calendar import NEW_YORK, Session, settlement_date
from alpaca_cli.sandbox.model import (
    AccountView,
    Bar,
    BrokerError,
    ClockView,
    Outcome,
    PositionView,
    SimOrder,
    TradeEvent,
    plain,
)

# The paper account's fixed identity; deterministic so tests can assert on it.
ACCOUNT_ID = "8f7a2b6e-3c1d-4e5f-9a0b-1c2d3e4f5a6b"
ACCOUNT_NUMBER = "PA3SANDBOX01"
ACCOUNT_CREATED_AT = "2024-01-02T14:30:00Z"


def ts(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with microseconds and a `Z`, as Alpaca writes timestamps."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def num(value: Decimal | int | None) -> str | None:
    """A decimal as Alpaca's JSON strings write it: plain notation, no trailing zeros."""
    return None if value is None else plain(value)


def asset_id(symbol: str) -> str:
    """A stable asset id per symbol, like Alpaca's (one UUID per asset, forever)."""
    return assets.asset_id(symbol)


def asset_class(symbol: str) -> str:
    """`us_equity`, or `crypto` for a listed crypto pair."""
    listed = assets.find(symbol)
    return "us_equity" if listed is None else listed.asset_class


def error(code: int, message: str, **extra: Any) -> dict[str, Any]:
    """Alpaca's error body; decimal extras (`buying_power`, ...) as its strings."""
    return {"code": code, "message": message, **{k: num(v) if isinstance(v, Decimal) else v for k, v in extra.items()}}


def refusal(exc: BrokerError) -> dict[str, Any]:
    """The body of the engine's refusal."""
    return error(exc.code, exc.message, **exc.extra)


def trade_event(e: TradeEvent) -> dict[str, Any]:
    """A trade update's `data`: the event, the order as it was, and a fill's own price and size."""
    payload: dict[str, Any] = {"event": e.event, "order": order(e.order), "timestamp": ts(e.timestamp)}
    if e.execution_id is not None:
        payload.update(
            execution_id=e.execution_id, price=num(e.price), qty=num(e.qty), position_qty=num(e.position_qty)
        )
    return payload


def cancel_outcome(o: Outcome) -> dict[str, Any]:
    """One entry of `DELETE /v2/orders`' 207 body."""
    if o.error is not None:
        return {"id": o.key, "status": o.error.status, "body": refusal(o.error)}
    assert o.order is not None
    return {"id": o.key, "status": 200, "body": order(o.order)}


def close_outcome(o: Outcome) -> dict[str, Any]:
    """One entry of `DELETE /v2/positions`' 207 body."""
    if o.error is not None:
        return {"symbol": o.key, "status": o.error.status, "body": refusal(o.error)}
    assert o.order is not None
    return {"symbol": o.key, "status": 200, "order_id": o.order.id, "body": order(o.order)}


def order(o: SimOrder, *, nested: bool = False) -> dict[str, Any]:
    """The full order object of `GET /v2/orders/{id}` and of trade updates.

    `nested`: a bracket, OCO or OTO entry carries its exits in `legs` (else null).
    """
    return {
        "id": o.id,
        "client_order_id": o.client_order_id,
        "created_at": ts(o.created_at),
        "updated_at": ts(o.updated_at),
        "submitted_at": ts(o.submitted_at),
        "filled_at": ts(o.filled_at),
        "expired_at": ts(o.expired_at),
        "canceled_at": ts(o.canceled_at),
        "failed_at": ts(o.failed_at),
        "replaced_at": ts(o.replaced_at),
        "replaced_by": o.replaced_by,
        "replaces": o.replaces,
        "asset_id": asset_id(o.symbol),
        "symbol": o.symbol,
        "asset_class": asset_class(o.symbol),
        "notional": num(o.notional),
        "qty": num(o.qty),
        "filled_qty": num(o.filled_qty),
        "filled_avg_price": num(o.filled_avg_price),
        "order_class": o.order_class,
        "order_type": o.type,
        "type": o.type,
        "side": o.side,
        "position_intent": o.position_intent,
        "time_in_force": o.time_in_force,
        "limit_price": num(o.limit_price),
        "stop_price": num(o.stop_price),
        "status": o.status,
        "extended_hours": o.extended_hours,
        "legs": [order(leg) for leg in o.legs] if nested and o.legs else None,
        "trail_percent": num(o.trail_percent),
        "trail_price": num(o.trail_price),
        "hwm": num(o.hwm),
        "subtag": None,
        "source": None,
        "expires_at": None,
        "ratio_qty": None,
    }


def position(p: PositionView) -> dict[str, Any]:
    """One position; shorts carry negative qty, market value and cost basis, like Alpaca.

    The cost basis is computed from the average entry price as published
    (8 places), so `qty * avg_entry_price` of the answer gives it back.
    """
    symbol, qty, current_price, lastday_price = p.symbol, p.qty, p.current_price, p.lastday_price
    avg_entry_price = _q(p.avg_entry_price, 8)
    cost_basis = qty * avg_entry_price
    market_value = qty * current_price
    unrealized = market_value - cost_basis
    intraday = qty * (current_price - lastday_price)
    lastday_value = qty * lastday_price
    # An account in US dollars trading US stocks: the local values are the dollar values.
    values = {
        "avg_entry_price": num(avg_entry_price),
        "market_value": num(_q(market_value, 4)),
        "cost_basis": num(_q(cost_basis, 4)),
        "unrealized_pl": num(_q(unrealized, 4)),
        "unrealized_plpc": num(_ratio(unrealized, abs(cost_basis))),
        "unrealized_intraday_pl": num(_q(intraday, 4)),
        "unrealized_intraday_plpc": num(_ratio(intraday, abs(lastday_value))),
        "current_price": num(current_price),
        "lastday_price": num(lastday_price),
        "change_today": num(_ratio(current_price - lastday_price, lastday_price)),
    }
    return {
        "asset_id": asset_id(symbol),
        "symbol": symbol,
        "exchange": p.exchange,
        "asset_class": asset_class(symbol),
        "asset_marginable": True,
        "qty": num(qty),
        "side": "long" if qty > 0 else "short",
        **values,
        "swap_rate": "1",
        "avg_entry_swap_rate": "1",
        "usd": values,
        "qty_available": num(p.qty_available),
    }


def account(a: AccountView) -> dict[str, Any]:
    """The account object of `GET /v2/account` with the real API's field set."""
    cash, buying_power, equity, last_equity = a.cash, a.buying_power, a.equity, a.last_equity
    long_market_value, short_market_value = a.long_market_value, a.short_market_value
    daytrade_count = a.daytrade_count
    return {
        "id": ACCOUNT_ID,
        "admin_configurations": {},
        "user_configurations": None,
        "account_number": ACCOUNT_NUMBER,
        "status": "ACTIVE",
        "crypto_status": "ACTIVE",
        "options_approved_level": 0,
        "options_trading_level": 0,
        "currency": "USD",
        "buying_power": num(_q(buying_power, 2)),
        "regt_buying_power": num(_q(buying_power, 2)),
        "daytrading_buying_power": "0",
        "effective_buying_power": num(_q(buying_power, 2)),
        "non_marginable_buying_power": num(_q(max(cash, Decimal(0)), 2)),
        "options_buying_power": num(_q(max(cash, Decimal(0)), 2)),
        "bod_dtbp": "0",
        "cash": num(_q(cash, 2)),
        "accrued_fees": "0",
        "pending_transfer_in": "0",
        "pending_transfer_out": "0",
        "portfolio_value": num(_q(equity, 2)),
        "pattern_day_trader": daytrade_count >= 4,
        "trading_blocked": False,
        "transfers_blocked": False,
        "account_blocked": False,
        "created_at": ACCOUNT_CREATED_AT,
        "trade_suspended_by_user": False,
        "multiplier": str(a.multiplier),
        "shorting_enabled": True,
        "equity": num(_q(equity, 2)),
        "last_equity": num(_q(last_equity, 2)),
        "long_market_value": num(_q(long_market_value, 2)),
        "short_market_value": num(_q(short_market_value, 2)),
        "position_market_value": num(_q(long_market_value - short_market_value, 2)),
        "initial_margin": num(_q(a.initial_margin, 2)),
        "maintenance_margin": num(_q(a.maintenance_margin, 2)),
        "last_maintenance_margin": "0",
        "sma": num(_q(last_equity, 2)),
        "daytrade_count": daytrade_count,
        "balance_asof": a.today.isoformat(),
        "crypto_tier": 1,
        "intraday_adjustments": "0",
        "pending_reg_taf_fees": "0",
    }


def clock(c: ClockView) -> dict[str, Any]:
    """Alpaca writes clock times in New York local time with an offset."""

    def local(t: datetime) -> str:
        return t.astimezone(NEW_YORK).isoformat(timespec="microseconds")

    return {
        "timestamp": local(c.now),
        "is_open": c.is_open,
        "next_open": local(c.next_open).replace(".000000", ""),
        "next_close": local(c.next_close).replace(".000000", ""),
    }


def calendar_day(session: Session) -> dict[str, str]:
    """One day of `GET /v2/calendar`: regular hours as HH:MM, extended hours as HHMM."""
    return {
        "date": session.day.isoformat(),
        "open": session.open.strftime("%H:%M"),
        "close": session.close.strftime("%H:%M"),
        "session_open": session.extended_open.strftime("%H%M"),
        "session_close": session.extended_close.strftime("%H%M"),
        "settlement_date": settlement_date(session.day).isoformat(),
    }


def bar(b: Bar) -> dict[str, Any]:
    """A historical bar: prices as JSON numbers; `n` and `vw` always present (the SDK requires the keys)."""
    return {
        "t": bar_time(b.t),
        "o": float(b.o),
        "h": float(b.h),
        "l": float(b.l),
        "c": float(b.c),
        "v": volume(b.v),
        "n": b.n,
        "vw": float(b.vw),
    }


def volume(v: Decimal) -> int | float:
    """A volume as a JSON number: whole shares as an integer, fractions of a coin as a float."""
    return int(v) if v == v.to_integral_value() else float(v)


def bar_time(t: datetime) -> str:
    """A bar's start as the data API writes it: whole seconds, unless the bar is shorter."""
    if t.microsecond:
        return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _q(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places))


def _ratio(part: Decimal, whole: Decimal) -> Decimal:
    if whole == 0:
        return Decimal(0)
    return _q(part / whole, 6)


# The one market the sandbox's `/v3` clock and calendar know.
NYSE = {
    "acronym": "NYSE",
    "mic": "XNYS",
    "bic": None,
    "name": "New York Stock Exchange",
    "timezone": "America/New_York",
}


def clock_v3(
    now: datetime,
    *,
    is_open: bool,
    is_market_day: bool,
    phase: str,
    phase_until: datetime,
    opening: datetime,
    close: datetime,
) -> dict[str, Any]:
    """One market's entry of `GET /v3/clock` (Alpaca's multi-market clock), in the market's local time."""

    def local(t: datetime) -> str:
        return t.astimezone(NEW_YORK).isoformat(timespec="seconds")

    return {
        "market": NYSE,
        "timestamp": now.astimezone(NEW_YORK).isoformat(timespec="microseconds"),
        "is_open": is_open,
        "is_market_day": is_market_day,
        "phase": phase,
        "phase_until": local(phase_until),
        "next_market_open": local(opening),
        "next_market_close": local(close),
    }


def calendar_day_v3(session: Session) -> dict[str, str]:
    """One day of `GET /v3/calendar/{market}`: each phase's start and end in local time."""

    def local(t: datetime) -> str:
        return t.astimezone(NEW_YORK).isoformat(timespec="seconds")

    return {
        "date": session.day.isoformat(),
        "pre_start": local(session.extended_open),
        "pre_end": local(session.open),
        "core_start": local(session.open),
        "core_end": local(session.close),
        "post_start": local(session.close),
        "post_end": local(session.extended_close),
        "settlement_date": settlement_date(session.day).isoformat(),
    }
