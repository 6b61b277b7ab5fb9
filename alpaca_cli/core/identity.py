"""`event_id`: the stable key of a trade-update event, printed as the line's `id`.

The same event must get the same id however it was learned (live on the
stream, recovered from a broker snapshot, replayed from the state file's
outbox after a crash) and in whichever run, and two different events never
share one, so that a reader can drop repeats by id without losing anything.
The key is therefore built only from what every way of learning the event
agrees on, never from the moment it was heard, its `source`, or ids the
broker sends on one path only (`execution_id` is absent from snapshots):

- a fill (`fill` or `partial_fill`): `ORDER:fill:CUMULATIVE`, the order's
  filled quantity after it. Cumulative quantity strictly grows, so it names
  one fill of one order, and a recovered fill that covers exactly what the
  stream would have said carries the same number. The two event names share
  the key because they name the same execution: which one a path reports can
  depend only on whether it also saw the order end.
- an event that opens or closes the order (`pending_new`, `accepted`, `new`;
  `canceled`, `expired`, `rejected`, `done_for_day`, `replaced`, `stopped`):
  `ORDER:EVENT`. Each happens at most once to an order.
- any other event (`pending_cancel`, `order_cancel_rejected`, a name this
  tool does not know yet ...): `ORDER:EVENT:TIMESTAMP`, since it can recur;
  only the stream reports these, with the broker's own timestamp.

Quantities are written in plain notation without trailing zeros ("100", not
"100.0" or "1E+2") and timestamps as RFC 3339 UTC, so equal values give equal
text. Treat the id as opaque: compare it, do not parse it.
"""

from __future__ import annotations

from alpaca_cli.core.apply import CLOSE_EVENTS
from alpaca_cli.domain import FILL_EVENTS, TradeUpdate
from alpaca_cli.text import decimal_text, rfc3339

# Events that open an order, in the order they can happen to it.
OPENING_EVENTS = ("pending_new", "accepted", "new")
# Events that happen at most once to an order (fills are keyed apart).
ONCE_EVENTS = frozenset(OPENING_EVENTS) | (CLOSE_EVENTS.keys() - FILL_EVENTS)


def event_id(update: TradeUpdate) -> str:
    """The event's stable key (module doc): equal for the same event, distinct otherwise."""
    order_id = update.order.id
    name = update.event
    if name in FILL_EVENTS:
        return f"{order_id}:fill:{decimal_text(update.order.filled_qty)}"
    if name in ONCE_EVENTS:
        return f"{order_id}:{name}"
    return f"{order_id}:{name}:{rfc3339(update.timestamp)}"
