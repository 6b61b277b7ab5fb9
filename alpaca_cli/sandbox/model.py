"""What the sandbox's engine is made of and answers with: orders, positions, refusals, views.

Plain data, no behaviour beyond derived properties: the engine (`engine`)
changes these objects, the server encodes them (`wire`). Keeping them apart
lets every engine module and `wire` share one definition without importing
each other.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

# `held`: a bracket or OTO exit waiting for its entry to fill.
OPEN_STATUSES = frozenset({"new", "partially_filled", "accepted", "pending_new", "held"})
ORDER_TYPES = frozenset({"market", "limit", "stop", "stop_limit", "trailing_stop"})
TIME_IN_FORCE = frozenset({"day", "gtc", "ioc", "fok", "opg", "cls"})
SIDES = frozenset({"buy", "sell"})

CENT = Decimal("0.01")
ZERO = Decimal(0)


class BrokerError(Exception):
    """A refusal the way Alpaca answers it: HTTP status, code and message (`extra`: more body fields)."""

    def __init__(self, status: int, code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def invalid(message: str) -> BrokerError:
    return BrokerError(422, 40010001, message)


def not_found() -> BrokerError:
    return BrokerError(404, 40410000, "order not found")


def plain(value: Decimal | int) -> str:
    """A decimal as Alpaca writes it, in messages and JSON alike: plain notation, no trailing zeros."""
    d = Decimal(value)
    if d == 0:
        return "0"
    return format(d.normalize(), "f")


def digest(*parts: object) -> int:
    """A stable 64-bit number for `parts`: the sandbox's seeded randomness that needs no state."""
    text = ":".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big")


@dataclass(slots=True, eq=False)
class SimOrder:
    """One order's full state inside the engine (its wire form is `wire.order`)."""

    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    created_at: datetime
    submitted_at: datetime
    updated_at: datetime
    qty: Decimal | None = None
    notional: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_percent: Decimal | None = None
    trail_price: Decimal | None = None
    hwm: Decimal | None = None
    extended_hours: bool = False
    position_intent: str | None = None
    status: str = "new"
    filled_qty: Decimal = ZERO
    filled_value: Decimal = ZERO
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    expired_at: datetime | None = None
    failed_at: datetime | None = None
    replaced_at: datetime | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    order_class: str = "simple"
    legs: list[SimOrder] = field(default_factory=list)
    parent: SimOrder | None = None
    # Engine bookkeeping, never on the wire.
    oco: SimOrder | None = None  # the order a fill of this one shrinks or cancels
    holds_position: bool = True  # a closing order's qty counts as held (one order per OCO pair)
    closing: bool = False  # reduces an existing position (no buying power needed)
    reserve: Decimal = ZERO  # buying power held back for the unfilled rest
    triggered: bool = False  # stop price reached: now works as market/limit
    in_active: bool = False  # checked on every step (vs resting in a price heap)
    day_traded: bool = False
    steps_seen: int = 0

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def holds(self) -> bool:
        """Does its unfilled qty count in the position's qty held for orders (never while `held`)?"""
        return self.closing and self.holds_position and self.status in OPEN_STATUSES - {"held"}

    @property
    def group(self) -> list[SimOrder]:
        """Its bracket, OCO or OTO group (itself alone when simple), entry first."""
        root = self.parent or self
        return [root, *root.legs]

    @property
    def remaining(self) -> Decimal:
        return ZERO if self.qty is None else self.qty - self.filled_qty

    @property
    def filled_avg_price(self) -> Decimal | None:
        if self.filled_qty == 0:
            return None
        return (self.filled_value / self.filled_qty).quantize(Decimal("0.0001"))


@dataclass(slots=True)
class Position:
    """A holding: signed qty (negative is short) and signed cost basis."""

    qty: Decimal = ZERO
    cost: Decimal = ZERO
    opened_on: date | None = None  # last day the position was opened or increased

    @property
    def avg_entry_price(self) -> Decimal:
        return ZERO if self.qty == 0 else self.cost / self.qty


@dataclass(frozen=True, slots=True)
class TradeEvent:
    """One trade update: `order` is a copy of the order as it was when the event happened."""

    event: str
    order: SimOrder
    timestamp: datetime
    execution_id: str | None = None
    price: Decimal | None = None
    qty: Decimal | None = None
    position_qty: Decimal | None = None


@dataclass(frozen=True, slots=True)
class AccountView:
    """The account's balances at one moment (`GET /v2/account`)."""

    cash: Decimal
    long_market_value: Decimal
    short_market_value: Decimal
    buying_power: Decimal
    multiplier: int
    last_equity: Decimal
    daytrade_count: int
    initial_margin: Decimal
    maintenance_margin: Decimal
    today: date

    @property
    def equity(self) -> Decimal:
        return self.cash + self.long_market_value + self.short_market_value


@dataclass(frozen=True, slots=True)
class PositionView:
    """One position priced at the current market (`GET /v2/positions`)."""

    symbol: str
    exchange: str
    qty: Decimal
    avg_entry_price: Decimal
    current_price: Decimal
    lastday_price: Decimal
    qty_available: Decimal


@dataclass(frozen=True, slots=True)
class ClockView:
    """`GET /v2/clock`: whether the market trades now, and its next open and close."""

    now: datetime
    is_open: bool
    next_open: datetime
    next_close: datetime


@dataclass(frozen=True, slots=True)
class Outcome:
    """One item of a bulk cancel or close: the order it made or touched, or the refusal."""

    key: str  # the order id (cancel) or symbol (close)
    order: SimOrder | None = None
    error: BrokerError | None = None


@dataclass(frozen=True, slots=True)
class Bar:
    """An OHLCV bar starting at `t`; `vw` is the volume-weighted price."""

    t: datetime
    o: Decimal
    h: Decimal
    l: Decimal  # noqa: E741 - Alpaca's name for the low
    c: Decimal
    v: Decimal  # whole shares for stocks, fractions of a coin for crypto
    n: int
    vw: Decimal


@dataclass(frozen=True, slots=True)
class BarPage:
    """A page of bars by symbol, and where the next page starts (None: no more)."""

    bars: dict[str, list[Bar]]
    next_page_token: str | None
