"""Closing positions at most once, even when the broker's answer is lost.

A close (`DELETE /v2/positions/{symbol}`) carries no client order id, so a
lost answer cannot be resolved by a lookup by id as `orders.place` does.
Instead the newest order of the symbol is noted before sending; after an
unknown outcome the orders submitted since are listed, and any closing order
among them (the opposite side, not seen before) proves the close arrived.
Only a listing that shows none leads to a second send: never a blind one.

Standard library and domain types only at import time (the commands import
this inside their functions; the bridge comes in as a parameter).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from alpaca_cli.domain import Closing, Order, Position
from alpaca_cli.errors import RouteNotFound, UnreachableError

log = logging.getLogger(__name__)
MAX_SENDS = 2  # the first send, and one more only after a listing proved the first never arrived


class CloseBroker(Protocol):
    """What closing needs of the bridge."""

    async def orders(
        self,
        status: str = "open",
        *,
        symbols: Iterable[str] | None = None,
        limit: int | None = None,
        after: datetime | None = None,
        until: datetime | None = None,
        side: str | None = None,
        nested: bool = False,
    ) -> list[Order]: ...

    async def close_position(
        self, symbol: str, *, qty: Decimal | None = None, percentage: Decimal | None = None
    ) -> Order: ...

    async def close_all_positions(self, *, cancel_orders: bool = False) -> list[Closing]: ...


@dataclass(frozen=True)
class Closed:
    """How a close ended: the closing order(s), and whether they were found after a lost answer."""

    closings: tuple[Closing, ...]
    recovered: bool


def closing_side(position: Position) -> str:
    return "sell" if position.side == "long" else "buy"


@dataclass(frozen=True)
class _Marker:
    """The orders known before sending: anything newer on the closing side is ours."""

    since: datetime | None
    known: frozenset[str]


async def _mark(broker: CloseBroker, symbols: list[str] | None) -> _Marker:
    newest = await broker.orders("all", symbols=symbols, limit=1)
    if not newest:
        return _Marker(None, frozenset())
    # `after` is exclusive: step back a microsecond and skip what was seen, so ties are not lost
    return _Marker(newest[-1].submitted_at - timedelta(microseconds=1), frozenset(o.id for o in newest))


async def _arrived(
    broker: CloseBroker, marker: _Marker, sides: dict[str, str], what: str, symbols: list[str] | None
) -> list[Order]:
    """The closing orders placed since `marker` for these symbols (symbol -> closing side)."""
    try:
        listed = await broker.orders("all", symbols=symbols, after=marker.since)
    except UnreachableError as error:
        raise UnreachableError(
            f"{what}: the broker may have acted, but its answer was lost and looking failed ({error.message})",
            hint="look with `alpaca-cli orders --status all` before closing again",
        ) from error
    return [o for o in listed if o.id not in marker.known and sides.get(o.symbol) == o.side]


async def close(
    broker: CloseBroker, position: Position, *, qty: Decimal | None = None, percentage: Decimal | None = None
) -> Closed:
    """Close (part of) `position` once: after an unknown outcome, look before sending again."""
    what = f"close {position.symbol}"
    sides = {position.symbol: closing_side(position)}
    marker = await _mark(broker, [position.symbol])
    last: UnreachableError | None = None
    for _ in range(MAX_SENDS):
        try:
            order = await broker.close_position(position.symbol, qty=qty, percentage=percentage)
            return Closed((Closing(position.symbol, 200, order),), last is not None)
        except RouteNotFound:
            raise
        except UnreachableError as error:
            last = error
            log.info("%s: outcome unknown (%s), looking", what, error.message)
        found = await _arrived(broker, marker, sides, what, [position.symbol])
        if found:
            return Closed((Closing(position.symbol, 200, found[-1]),), True)
    assert last is not None
    raise UnreachableError(
        f"{what}: nothing was closed: the broker kept failing ({last.message}); "
        f"{MAX_SENDS} attempts, none arrived (checked the symbol's orders)",
        hint="try again later",
    )


async def close_all(broker: CloseBroker, positions: list[Position], *, cancel_orders: bool = False) -> Closed:
    """Close every position in one request; after an unknown outcome, look before sending again.

    The broker handles "close all" as one batch, so any closing order found
    after a lost answer means it arrived: resending would close twice.
    """
    what = "close all positions"
    sides = {p.symbol: closing_side(p) for p in positions}
    marker = await _mark(broker, None)  # every symbol: thousands of them would not fit in a query string
    last: UnreachableError | None = None
    for _ in range(MAX_SENDS):
        try:
            answers = await broker.close_all_positions(cancel_orders=cancel_orders)
            return Closed(tuple(answers), last is not None)
        except RouteNotFound:
            raise
        except UnreachableError as error:
            last = error
            log.info("%s: outcome unknown (%s), looking", what, error.message)
        found = await _arrived(broker, marker, sides, what, None)
        if found:
            return Closed(tuple(Closing(o.symbol, 200, o) for o in found), True)
    assert last is not None
    raise UnreachableError(
        f"{what}: nothing was closed: the broker kept failing ({last.message}); "
        f"{MAX_SENDS} attempts, none arrived (checked the orders of every position)",
        hint="try again later",
    )
