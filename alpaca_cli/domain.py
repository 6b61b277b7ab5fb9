"""The project's own small types for what the broker tells us.

The bridge maps alpaca-py's models onto these at the boundary, so nothing
outside `alpaca_cli.bridge` ever sees an SDK object. They are plain frozen
dataclasses (stdlib only: cheap to import, cheap to build in hot paths).
Money and quantities are `Decimal`: fractional shares must compare exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

# Order statuses after which nothing more can happen to an order.
FINAL_STATUSES = frozenset({"filled", "canceled", "expired", "rejected", "replaced", "done_for_day", "stopped"})
# Trade-update events that carry a fill of their own (`price`, `qty`).
FILL_EVENTS = frozenset({"fill", "partial_fill"})


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    account_number: str
    status: str
    currency: str = "USD"
    cash: Decimal = Decimal(0)
    equity: Decimal = Decimal(0)
    buying_power: Decimal = Decimal(0)
    trading_blocked: bool = False
    account_blocked: bool = False
    transfers_blocked: bool = False
    trade_suspended_by_user: bool = False


@dataclass(frozen=True, slots=True)
class Clock:
    timestamp: datetime
    is_open: bool
    next_open: datetime
    next_close: datetime


@dataclass(frozen=True, slots=True)
class CalendarDay:
    """A trading day: regular hours as the broker gives them (New York time, "HH:MM")."""

    date: date
    open: str
    close: str


@dataclass(frozen=True, slots=True)
class Asset:
    symbol: str
    name: str
    exchange: str
    status: str  # "active" | "inactive"
    tradable: bool
    marginable: bool = False
    shortable: bool = False
    easy_to_borrow: bool = False
    fractionable: bool = False
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Activity:
    """One account activity: a fill (`FILL`, at a `transaction_time`) or another entry (DIV, CSD, ... on a `date`)."""

    id: str
    activity_type: str
    at: datetime | None = None
    date: date | None = None
    symbol: str | None = None
    side: str | None = None
    qty: Decimal | None = None
    price: Decimal | None = None
    net_amount: Decimal | None = None
    order_id: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Position:
    symbol: str
    qty: Decimal  # always positive; direction is `side`
    side: str  # "long" | "short"
    avg_entry_price: Decimal
    market_value: Decimal | None = None
    current_price: Decimal | None = None
    unrealized_pl: Decimal | None = None
    asset_id: str | None = None

    @property
    def signed_qty(self) -> Decimal:
        return self.qty if self.side == "long" else -self.qty


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    client_order_id: str
    symbol: str
    side: str  # "buy" | "sell"
    type: str  # market, limit, stop, stop_limit, trailing_stop
    time_in_force: str
    status: str
    submitted_at: datetime
    qty: Decimal | None = None
    notional: Decimal | None = None
    filled_qty: Decimal = Decimal(0)
    filled_avg_price: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_percent: Decimal | None = None
    trail_price: Decimal | None = None
    extended_hours: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    expired_at: datetime | None = None
    failed_at: datetime | None = None
    order_class: str = "simple"  # simple, bracket, oco, oto
    replaced_by: str | None = None  # the id of the order that replaced this one
    replaces: str | None = None
    legs: tuple[Order, ...] = ()  # a group's exits, when listed `nested`

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclass(frozen=True, slots=True)
class Closing:
    """The broker's answer for one symbol of "close all positions": its order, or why not."""

    symbol: str
    status: int
    order: Order | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class TradeUpdate:
    """One event of the trade-update stream, or one recovered by reconciliation.

    `price`/`qty` are this fill's own (fill and partial_fill only); the order's
    cumulative fill is `order.filled_qty`. `source` is "stream" for live events
    and "reconcile" for events recovered from a broker snapshot after a gap.
    `reason` is the broker's word on why, when it gives one (a rejection, a cancel it
    refused, a cancel of its own): free text, as Alpaca documents it.
    """

    event: str
    order: Order
    timestamp: datetime
    execution_id: str | None = None
    price: Decimal | None = None
    qty: Decimal | None = None
    position_qty: Decimal | None = None
    source: str = "stream"
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Bar:
    symbol: str
    timestamp: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    trade_count: float | None = None
    vwap: float | None = None
    updated: bool = False  # a correction of a bar already sent (the stream's `updatedBars`)


@dataclass(frozen=True, slots=True)
class Quote:
    """The top of the book at one moment (bid and ask; sizes in round lots for stocks)."""

    symbol: str
    timestamp: datetime
    bid: float
    bid_size: float
    ask: float
    ask_size: float


@dataclass(frozen=True, slots=True)
class Trade:
    """One print on the tape."""

    symbol: str
    timestamp: datetime
    price: float
    size: float
    id: int | str | None = None


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    """Alpaca's snapshot of one symbol: its latest trade, quote and minute bar (any may be missing)."""

    symbol: str
    trade: Trade | None
    quote: Quote | None
    bar: Bar | None


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What `submit` asks the broker for; validated before it gets here."""

    symbol: str
    side: str
    type: str
    time_in_force: str
    client_order_id: str
    qty: Decimal | None = None
    notional: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_percent: Decimal | None = None
    trail_price: Decimal | None = None
    extended_hours: bool = False
    order_class: str = "simple"  # bracket, oco, oto: with exits below
    take_profit: Decimal | None = None  # the take-profit exit's limit price
    stop_loss: Decimal | None = None  # the stop-loss exit's stop price
    stop_loss_limit: Decimal | None = None  # makes the stop loss a stop-limit


@dataclass(frozen=True, slots=True)
class OrderChanges:
    """What `replace` asks to change of a working order; validated before it gets here.

    `client_order_id` is the replacement's own, fixed before the first send so
    that a lost answer can be resolved by looking it up.
    """

    client_order_id: str
    qty: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail: Decimal | None = None
    time_in_force: str | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The broker's truth at one moment: what `diff` compares local state with.

    `final_orders` holds, for orders the local state believes open but the
    broker no longer lists as open, their final state fetched one by one.
    """

    account: Account
    positions: tuple[Position, ...]
    open_orders: tuple[Order, ...]
    taken_at: datetime
    final_orders: tuple[Order, ...] = field(default=())
