"""The local state document: what the tool believes about one account.

It is a pydantic model because it crosses a trust boundary (a file on disk
that people and other processes can touch), and this module is the only part
of the core that needs pydantic. Everything else in the core works on these
models as plain, immutable values: `apply` and `adopt` build new `State`s with
`model_copy`/`model_construct`, never mutate one.

Serialized form (version 1): decimals are JSON strings in plain notation
("0.5", never "5E-1" or a float; `text.decimal_text`, the spelling of every
output line), datetimes are RFC 3339 in UTC with `Z`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal, Protocol

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)

from alpaca_cli.domain import Account, Order, Position, Snapshot, TradeUpdate
from alpaca_cli.text import decimal_text, rfc3339, utc

STATE_VERSION = 1
# How many closed orders and execution ids a state remembers, so that a fill
# replayed after its order left `open_orders` is still recognized as applied.
CLOSED_ORDERS_LIMIT = 5000
EXECUTION_IDS_LIMIT = 5000


Dec = Annotated[Decimal, PlainSerializer(decimal_text, return_type=str, when_used="json")]
UtcDatetime = Annotated[
    AwareDatetime,
    AfterValidator(utc),
    PlainSerializer(rfc3339, return_type=str, when_used="json"),
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PositionRecord(_Frozen):
    """A held position. `qty` is positive; the direction is `side`."""

    symbol: str
    qty: Annotated[Dec, Field(gt=0)]
    side: Literal["long", "short"]
    avg_entry_price: Dec

    @property
    def signed_qty(self) -> Decimal:
        return self.qty if self.side == "long" else -self.qty

    @classmethod
    def from_position(cls, position: Position) -> PositionRecord:
        return cls.model_construct(
            symbol=position.symbol,
            qty=abs(position.qty),
            side="short" if position.side == "short" else "long",
            avg_entry_price=position.avg_entry_price,
        )

    def to_position(self) -> Position:
        return Position(symbol=self.symbol, qty=self.qty, side=self.side, avg_entry_price=self.avg_entry_price)


class OrderRecord(_Frozen):
    """An order the tool believes is still open at the broker."""

    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    status: str
    submitted_at: UtcDatetime
    qty: Dec | None = None
    notional: Dec | None = None
    filled_qty: Dec = Decimal(0)
    filled_avg_price: Dec | None = None
    limit_price: Dec | None = None
    stop_price: Dec | None = None

    @classmethod
    def from_order(cls, order: Order) -> OrderRecord:
        # model_construct: domain orders are already typed; validating 20,000 of
        # them again would only cost time.
        return cls.model_construct(
            id=order.id,
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            type=order.type,
            time_in_force=order.time_in_force,
            status=order.status,
            submitted_at=utc(order.submitted_at),
            qty=order.qty,
            notional=order.notional,
            filled_qty=order.filled_qty,
            filled_avg_price=order.filled_avg_price,
            limit_price=order.limit_price,
            stop_price=order.stop_price,
        )

    def to_order(self) -> Order:
        return Order(
            id=self.id,
            client_order_id=self.client_order_id,
            symbol=self.symbol,
            side=self.side,
            type=self.type,
            time_in_force=self.time_in_force,
            status=self.status,
            submitted_at=self.submitted_at,
            qty=self.qty,
            notional=self.notional,
            filled_qty=self.filled_qty,
            filled_avg_price=self.filled_avg_price,
            limit_price=self.limit_price,
            stop_price=self.stop_price,
        )


class ClosedOrder(_Frozen):
    """What is remembered of an order after it left `open_orders`: enough to
    recognize a replayed or late event for it as already applied."""

    filled_qty: Dec
    status: str


class AccountRecord(_Frozen):
    """The account facts that `diff` watches (status and blocked flags)."""

    account_number: str
    status: str
    trading_blocked: bool = False
    account_blocked: bool = False
    transfers_blocked: bool = False
    trade_suspended_by_user: bool = False

    @classmethod
    def from_account(cls, account: Account) -> AccountRecord:
        return cls.model_construct(
            account_number=account.account_number,
            status=account.status,
            trading_blocked=account.trading_blocked,
            account_blocked=account.account_blocked,
            transfers_blocked=account.transfers_blocked,
            trade_suspended_by_user=account.trade_suspended_by_user,
        )

    def to_account(self, account_id: str) -> Account:
        return Account(
            id=account_id,
            account_number=self.account_number,
            status=self.status,
            trading_blocked=self.trading_blocked,
            account_blocked=self.account_blocked,
            transfers_blocked=self.transfers_blocked,
            trade_suspended_by_user=self.trade_suspended_by_user,
        )


class LastEvent(_Frozen):
    """The most recent event (by its own timestamp) this state has seen."""

    event: str
    order_id: str
    symbol: str
    timestamp: UtcDatetime
    execution_id: str | None = None
    source: str = "stream"

    @classmethod
    def from_update(cls, update: TradeUpdate) -> LastEvent:
        return cls.model_construct(
            event=update.event,
            order_id=update.order.id,
            symbol=update.order.symbol,
            timestamp=utc(update.timestamp),
            execution_id=update.execution_id,
            source=update.source,
        )

    def sort_key(self) -> tuple[datetime, str, str, str, str, str]:
        """A total order on events, so "most recent" does not depend on the
        order in which events were applied (which keeps `apply` idempotent)."""
        return (
            self.timestamp,
            self.event,
            self.order_id,
            self.execution_id or "",
            self.source,
            self.symbol,
        )


def sort_key(update: TradeUpdate) -> tuple[datetime, str, str, str, str, str]:
    """`LastEvent.from_update(update).sort_key()`, without building the model (once per event)."""
    order = update.order
    return (utc(update.timestamp), update.event, order.id, update.execution_id or "", update.source, order.symbol)


class OrderView(_Frozen):
    """An order as one event showed it: every field of `domain.Order` that a printed line or
    the state can show (not a group's legs or replacement links), so that an event kept in
    the outbox prints the same line when it is printed again."""

    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    status: str
    submitted_at: UtcDatetime
    qty: Dec | None = None
    notional: Dec | None = None
    filled_qty: Dec = Decimal(0)
    filled_avg_price: Dec | None = None
    limit_price: Dec | None = None
    stop_price: Dec | None = None
    trail_percent: Dec | None = None
    trail_price: Dec | None = None
    extended_hours: bool = False
    created_at: UtcDatetime | None = None
    updated_at: UtcDatetime | None = None
    filled_at: UtcDatetime | None = None
    canceled_at: UtcDatetime | None = None
    expired_at: UtcDatetime | None = None
    failed_at: UtcDatetime | None = None


class PendingUpdate(_Frozen):
    """A trade update saved before it is printed (see `State.outbox`)."""

    event: str
    order: OrderView
    timestamp: UtcDatetime
    execution_id: str | None = None
    price: Dec | None = None
    qty: Dec | None = None
    position_qty: Dec | None = None
    source: str = "stream"
    reason: str | None = None

    @classmethod
    def from_update(cls, update: TradeUpdate) -> PendingUpdate:
        order = update.order
        fields = {name: getattr(order, name) for name in OrderView.model_fields}
        for name in ("submitted_at", "created_at", "updated_at", "filled_at", "canceled_at", "expired_at", "failed_at"):
            if fields[name] is not None:
                fields[name] = utc(fields[name])
        return cls.model_construct(
            event=update.event,
            order=OrderView.model_construct(**fields),
            timestamp=utc(update.timestamp),
            execution_id=update.execution_id,
            price=update.price,
            qty=update.qty,
            position_qty=update.position_qty,
            source=update.source,
            reason=update.reason,
        )

    def to_update(self) -> TradeUpdate:
        order = Order(**{name: getattr(self.order, name) for name in OrderView.model_fields})
        return TradeUpdate(
            event=self.event,
            order=order,
            timestamp=self.timestamp,
            execution_id=self.execution_id,
            price=self.price,
            qty=self.qty,
            position_qty=self.position_qty,
            source=self.source,
            reason=self.reason,
        )


class State(_Frozen):
    """Version 1 of the state document for one account.

    `positions` is keyed by symbol and `open_orders` by order id. The bounded
    memories `closed_orders` (order id → final fill, oldest first) and
    `execution_ids` (oldest first) are what make `apply` idempotent after an
    order has closed.

    `outbox` makes `tail --state` exactly-once across a crash: the events of a
    batch are saved here together with their effect on the state *before*
    they are printed, and a restarted `tail` prints them first. They are the
    only events a crash can repeat, and they repeat identically. The field is
    optional and written only when it holds something (`to_json`), so the
    version stays 1: files without it read as before, and a file at rest after
    a clean stop is the same document older alpaca-cli versions read. An
    older version refuses (exit 2, file untouched) a file whose outbox still
    holds events, rather than dropping them unprinted.
    """

    version: Literal[1]  # required: a document without one is not ours
    account_id: str
    account: AccountRecord | None = None
    positions: dict[str, PositionRecord] = {}
    open_orders: dict[str, OrderRecord] = {}
    closed_orders: dict[str, ClosedOrder] = {}
    execution_ids: tuple[str, ...] = ()
    last_event: LastEvent | None = None
    last_reconciled_at: UtcDatetime | None = None
    outbox: tuple[PendingUpdate, ...] = ()

    @model_validator(mode="after")
    def _keys_match(self) -> State:
        for symbol, position in self.positions.items():
            if position.symbol != symbol:
                raise ValueError(f"position key {symbol!r} holds symbol {position.symbol!r}")
        for order_id, order in self.open_orders.items():
            if order.id != order_id:
                raise ValueError(f"open order key {order_id!r} holds order {order.id!r}")
        return self

    @classmethod
    def empty(cls, account_id: str) -> State:
        return cls.model_construct(
            version=STATE_VERSION,
            account_id=account_id,
            account=None,
            positions={},
            open_orders={},
            closed_orders={},
            execution_ids=(),
            last_event=None,
            last_reconciled_at=None,
            outbox=(),
        )

    def to_json(self) -> bytes:
        """The document as stored: `outbox` only when it holds events (see the class doc)."""
        return self.model_dump_json(exclude=None if self.outbox else {"outbox"}).encode()

    def with_outbox(self, updates: Iterable[TradeUpdate]) -> State:
        """This state with `updates` as the events saved but not yet known to be printed."""
        outbox = tuple(PendingUpdate.from_update(u) for u in updates)
        if outbox == self.outbox:
            return self
        return self.model_copy(update={"outbox": outbox})

    def pending(self) -> list[TradeUpdate]:
        """The outbox's events, to print (again) first after a restart."""
        return [p.to_update() for p in self.outbox]

    def to_snapshot(self, taken_at: datetime | None = None) -> Snapshot:
        """The snapshot a broker agreeing with this state would return."""
        if self.account is None:
            raise ValueError("a state without account facts cannot become a snapshot")
        return Snapshot(
            account=self.account.to_account(self.account_id),
            positions=tuple(p.to_position() for p in self.positions.values()),
            open_orders=tuple(o.to_order() for o in self.open_orders.values()),
            taken_at=taken_at or self.last_reconciled_at or datetime.now(UTC),
        )


class OrderBook(Protocol):
    """The orders a `State` knows, or a `core.apply.Transition`'s working copy between events."""

    @property
    def open_orders(self) -> Mapping[str, OrderRecord]: ...

    @property
    def closed_orders(self) -> Mapping[str, ClosedOrder]: ...


def known_fill(book: OrderBook, order_id: str) -> tuple[Decimal, Decimal | None, bool, bool]:
    """(filled qty, average price, open?, closed?) of an order as `book` knows it."""
    record = book.open_orders.get(order_id)
    if record is not None:
        return record.filled_qty, record.filled_avg_price, True, False
    closed = book.closed_orders.get(order_id)
    if closed is not None:
        return closed.filled_qty, None, False, True
    return Decimal(0), None, False, False
