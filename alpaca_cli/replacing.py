"""Replacing a working order at most once, even when the broker's answer is lost.

The replacement's client order id is fixed before the first PATCH. After an
unknown outcome the replacement is looked for by that id, and by the old
order's `replaced_by`; a second PATCH goes out only when both prove the first
never arrived (and it carries the same client id, which the broker would
refuse as a duplicate). Never a blind second PATCH.

Standard library and domain types only at import time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from alpaca_cli.domain import Order, OrderChanges
from alpaca_cli.errors import BrokerRejected, RouteNotFound, UnreachableError, UsageError
from alpaca_cli.orders import (
    TIME_IN_FORCE,
    _choice,
    check_client_order_id,
    check_price,
    new_client_order_id,
    parse_amount,
)

log = logging.getLogger(__name__)
MAX_SENDS = 2  # the first PATCH, and one more only after looking proved the first never arrived

# Which change flags each order type takes.
_APPLIES: dict[str, tuple[str, ...]] = {
    "market": (),
    "limit": ("limit_price",),
    "stop": ("stop_price",),
    "stop_limit": ("limit_price", "stop_price"),
    "trailing_stop": ("trail",),
}
_FLAGS = {"limit_price": "--limit-price", "stop_price": "--stop-price", "trail": "--trail"}


class ReplaceBroker(Protocol):
    """What replacing needs of the bridge."""

    async def order(self, order_id: str, *, nested: bool = False) -> Order: ...

    async def order_by_client_id(self, client_order_id: str) -> Order | None: ...

    async def replace_order(self, order_id: str, changes: OrderChanges) -> Order: ...


def validate_changes(
    *,
    qty: str | None = None,
    limit_price: str | None = None,
    stop_price: str | None = None,
    trail: str | None = None,
    time_in_force: str | None = None,
    client_order_id: str | None = None,
) -> OrderChanges:
    """What the user typed -> changes Alpaca will accept, or one `UsageError`. Pure."""
    size = parse_amount(qty, "--qty")
    if size is not None and size != size.to_integral_value():
        raise UsageError(f"--qty {qty}: a replacement is whole shares (Alpaca replaces no fractional orders)")
    prices = {
        "limit_price": parse_amount(limit_price, "--limit-price"),
        "stop_price": parse_amount(stop_price, "--stop-price"),
        "trail": parse_amount(trail, "--trail"),
    }
    for name in ("limit_price", "stop_price"):
        value = prices[name]
        if value is not None:
            check_price(value, _FLAGS[name])
    tif = _choice(time_in_force, TIME_IN_FORCE, "time in force") if time_in_force is not None else None
    if size is None and tif is None and all(value is None for value in prices.values()):
        raise UsageError("nothing to change: give --qty, --limit-price, --stop-price, --trail or --tif")
    cid = check_client_order_id(client_order_id) if client_order_id is not None else new_client_order_id()
    return OrderChanges(
        client_order_id=cid,
        qty=size,
        limit_price=prices["limit_price"],
        stop_price=prices["stop_price"],
        trail=prices["trail"],
        time_in_force=tif,
    )


def check_applies(order: Order, changes: OrderChanges) -> None:
    """The changes fit this order: a usage error when a flag does not apply to its type; a clean "no" when it ended."""
    if order.is_final:
        raise BrokerRejected(f"order {order.id} is already {order.status}: nothing to replace", status=422)
    allowed = _APPLIES.get(order.type, ())
    for name, flag in _FLAGS.items():
        if getattr(changes, name) is not None and name not in allowed:
            raise UsageError(f"{flag} does not apply to order {order.id}, a {order.type} order: nothing was changed")
    if changes.qty is not None and changes.qty < order.filled_qty:
        raise UsageError(f"--qty {changes.qty} is below the {order.filled_qty} already filled: nothing was changed")


def describe(order: Order, changes: OrderChanges) -> str:
    """`replace buy 10 AAPL limit (order ID): qty 10 -> 12, limit 180 -> 181`, for prompts and messages."""
    parts = []
    for name, label in (
        ("qty", "qty"),
        ("limit_price", "limit"),
        ("stop_price", "stop"),
        ("time_in_force", "tif"),
    ):
        value = getattr(changes, name)
        if value is not None:
            parts.append(f"{label} {getattr(order, name)} -> {value}")
    if changes.trail is not None:
        before = f"{order.trail_percent}%" if order.trail_percent is not None else f"${order.trail_price}"
        parts.append(f"trail {before} -> {changes.trail}")
    size = order.qty if order.qty is not None else f"${order.notional}"
    return f"replace {order.side} {size} {order.symbol} {order.type} (order {order.id}): {', '.join(parts)}"


@dataclass(frozen=True)
class Replaced:
    """The replacement; `recovered` when found after a lost answer, `sends` the PATCHes sent."""

    order: Order
    recovered: bool
    sends: int = 1


def _fate_unknown(old: Order, changes: OrderChanges, why: str) -> UnreachableError:
    """Exit 4 naming the replacement's client id: it may exist, so the user must look before trying again."""
    cid = changes.client_order_id
    return UnreachableError(
        f"replace order {old.id}: the broker may have replaced it (the replacement's client order id is {cid}), "
        f"but {why}",
        hint=f"look with `alpaca-cli orders get --client-order-id {cid}`; re-running "
        f"with --client-order-id {cid} cannot replace twice",
    )


async def _find(broker: ReplaceBroker, old: Order, changes: OrderChanges) -> Order | None:
    """The replacement if it exists: by its client id, else by the old order's `replaced_by`."""
    try:
        found = await broker.order_by_client_id(changes.client_order_id)
        if found is not None:
            return found
        again = await broker.order(old.id)
        return await broker.order(again.replaced_by) if again.replaced_by else None
    except UnreachableError as error:
        raise _fate_unknown(old, changes, f"its answer was lost and looking failed ({error.message})") from error


async def replace(broker: ReplaceBroker, old: Order, changes: OrderChanges) -> Replaced:
    """PATCH `old` once: after an unknown outcome, look for the replacement before sending again.

    A refusal of the second PATCH is no clean "no": the first may have made
    the replacement (and the broker then refuses its client id as a
    duplicate, or the old order as no longer open). It is looked for once
    more, and when still not found the outcome is unknown (exit 4), never 1.
    """
    last: UnreachableError | None = None
    for send in range(1, MAX_SENDS + 1):
        try:
            return Replaced(await broker.replace_order(old.id, changes), False, send)
        except RouteNotFound:
            raise
        except BrokerRejected as refused:
            if last is None:
                raise
            found = await _find(broker, old, changes)
            if found is not None:
                return Replaced(found, True, send)
            raise _fate_unknown(
                old, changes, f"the answer to the first request was lost and the next was refused ({refused.message})"
            ) from refused
        except UnreachableError as error:
            last = error
            log.info("replace %s: outcome unknown (%s), looking", old.id, error.message)
        found = await _find(broker, old, changes)
        if found is not None:
            return Replaced(found, True, send)
    assert last is not None
    raise UnreachableError(
        f"replace order {old.id}: nothing was replaced: the broker kept failing ({last.message}); "
        f"{MAX_SENDS} attempts, none arrived (checked by client id {changes.client_order_id})",
        hint="try again later",
    )
