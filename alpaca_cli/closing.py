"""Closing positions at most once, even when the broker's answer is lost.

A close (`DELETE /v2/positions/{symbol}`) carries no client order id, so a
lost answer cannot be resolved by a lookup by id as `orders.place` does.
Instead the newest order of the symbol is noted before sending; after an
unknown outcome the orders submitted since are listed, and any closing order
among them (the opposite side, not seen before) proves the close arrived.
A listing can lag the order book, so one empty listing proves nothing: they
are repeated for the broker's deadline, and only when every one until then
shows none (the last of them answered) does a second close go out. Never a
blind one.

Standard library and domain types only at import time (the commands import
this inside their functions; the bridge comes in as a parameter).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from alpaca_cli.domain import Closing, Order, Position
from alpaca_cli.errors import RouteNotFound, UnreachableError

log = logging.getLogger(__name__)
MAX_SENDS = 2  # the first send, and one more only after listings proved the first never arrived
LOOK_DELAYS = (0.25, 0.5, 1.0, 2.0)  # seconds between listings after a lost answer; the last one repeats
Sleep = Callable[[float], Awaitable[Any]]


class CloseBroker(Protocol):
    """What closing needs of the bridge."""

    deadline: float  # seconds one broker call may take in all: how long listings may lag, at most

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
    """How a close ended: the closing order(s), whether they were found after a lost answer, the sends."""

    closings: tuple[Closing, ...]
    recovered: bool
    sends: int = 1


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


async def _look(
    broker: CloseBroker,
    marker: _Marker,
    sides: dict[str, str],
    symbols: list[str] | None,
    what: str,
    sleep: Sleep,
    clock: Callable[[], float],
) -> list[Order]:
    """The closing orders placed since `marker` (symbol -> closing side), listed until one shows or patience ends.

    An empty list means every listing for `broker.deadline` seconds showed
    none, the last of them answered after that: only then may a close be sent
    again. A last listing that failed leaves the outcome unknown (exit 4).
    """
    give_up_at = clock() + broker.deadline
    attempt = 0
    while True:
        failed: UnreachableError | None = None
        try:
            listed = await broker.orders("all", symbols=symbols, after=marker.since)
        except UnreachableError as error:
            failed = error
            log.debug("%s: listing failed (%s)", what, error.message)
        else:
            found = [o for o in listed if o.id not in marker.known and sides.get(o.symbol) == o.side]
            if found:
                return found
        left = give_up_at - clock()
        if left <= 0:
            break
        await sleep(min(LOOK_DELAYS[min(attempt, len(LOOK_DELAYS) - 1)], left))
        attempt += 1
    if failed is not None:
        raise UnreachableError(
            f"{what}: the broker may have acted, but its answer was lost and looking failed ({failed.message})",
            hint="look with `alpaca-cli orders --status all` before closing again",
        ) from failed
    return []


async def _once(
    broker: CloseBroker,
    what: str,
    sides: dict[str, str],
    symbols: list[str] | None,
    send: Callable[[], Awaitable[tuple[Closing, ...]]],
    sleep: Sleep,
    clock: Callable[[], float],
) -> Closed:
    """`send` at most `MAX_SENDS` times, and again only after `_look` proved the last never arrived."""
    marker = await _mark(broker, symbols)
    last: UnreachableError | None = None
    for attempt in range(1, MAX_SENDS + 1):
        try:
            return Closed(await send(), False, attempt)
        except RouteNotFound:
            raise
        except UnreachableError as error:
            last = error
            log.info("%s: outcome unknown (%s), looking", what, error.message)
        found = await _look(broker, marker, sides, symbols, what, sleep, clock)
        if found:
            return Closed(tuple(Closing(o.symbol, 200, o) for o in found), True, attempt)
    assert last is not None
    raise UnreachableError(
        f"{what}: nothing was closed: the broker kept failing ({last.message}); {MAX_SENDS} attempts, "
        f"none arrived (the orders since listed for {broker.deadline:g} s after each)",
        hint="try again later",
    )


async def close(
    broker: CloseBroker,
    position: Position,
    *,
    qty: Decimal | None = None,
    percentage: Decimal | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Closed:
    """Close (part of) `position` once: after an unknown outcome, look before sending again."""

    async def send() -> tuple[Closing, ...]:
        order = await broker.close_position(position.symbol, qty=qty, percentage=percentage)
        return (Closing(position.symbol, 200, order),)

    sides = {position.symbol: closing_side(position)}
    closed = await _once(broker, f"close {position.symbol}", sides, [position.symbol], send, sleep, clock)
    if closed.recovered:  # one DELETE makes one order: the newest closing order found is it
        return dataclasses.replace(closed, closings=closed.closings[-1:])
    return closed


async def close_all(
    broker: CloseBroker,
    positions: list[Position],
    *,
    cancel_orders: bool = False,
    sleep: Sleep = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Closed:
    """Close every position in one request; after an unknown outcome, look before sending again.

    The broker handles "close all" as one batch, so any closing order found
    after a lost answer means it arrived: resending would close twice. Every
    symbol is listed (thousands of them would not fit in a query string).
    """

    async def send() -> tuple[Closing, ...]:
        return tuple(await broker.close_all_positions(cancel_orders=cancel_orders))

    sides = {p.symbol: closing_side(p) for p in positions}
    return await _once(broker, "close all positions", sides, None, send, sleep, clock)
