"""Bulk seeding for load tests: many resting orders and positions at once, without events.

`/admin/seed` fills an account in seconds so benchmarks can measure listing,
reconciling and streaming against tens of thousands of orders. Pure: this
module makes the positions and orders; the engine takes them in.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from alpaca_cli.sandbox.model import CENT, SimOrder, invalid

# Where short-sell limits go when there are no seeded positions to spread over.
_SHORT_TARGETS = ("AAPL", "MSFT", "SPY", "IBM")


@dataclass(frozen=True, slots=True)
class Seeding:
    """Positions to transfer in (symbol, qty) and resting orders to accept, oldest first."""

    positions: list[tuple[str, Decimal]]
    orders: list[SimOrder]


def plan(
    open_orders: int,
    positions: int,
    *,
    rng: random.Random,
    price_of: Callable[[str], Decimal],
    start: datetime,
) -> Seeding:
    """Positions on made-up symbols, and GTC sell limits far above the market from `start` on.

    The orders, one share each, are spread over the seeded positions so they
    hold no buying power; with no positions, they are short-sell limits on a
    few symbols instead. Order times are one microsecond apart.
    """
    if open_orders < 0 or positions < 0:
        raise invalid("counts must be >= 0")
    per_position = -(-open_orders // positions) if positions else 0
    held = [_bulk_symbol(i) for i in range(positions)]
    seeded = [(symbol, Decimal(max(per_position, 1 + rng.randrange(100)))) for symbol in held]
    targets = held or list(_SHORT_TARGETS)
    orders = []
    for i in range(open_orders):
        symbol = targets[i % len(targets)]
        at = start + timedelta(microseconds=i)
        orders.append(
            SimOrder(
                id=str(uuid.uuid4()),
                client_order_id=f"seed-{at.timestamp():.6f}-{i}",
                symbol=symbol,
                side="sell",
                type="limit",
                time_in_force="gtc",
                created_at=at,
                submitted_at=at,
                updated_at=at,
                qty=Decimal(1),
                limit_price=(price_of(symbol) * 3).quantize(CENT),
                position_intent="sell_to_close" if held else "sell_to_open",
                closing=bool(held),
            )
        )
    return Seeding(seeded, orders)


def _bulk_symbol(i: int) -> str:
    """Distinct made-up tickers for seeded positions: QAAA, QAAB, ..."""
    letters = []
    for _ in range(3):
        i, r = divmod(i, 26)
        letters.append(chr(65 + r))
    prefix = "Q" if i == 0 else "Q" + chr(65 + (i - 1) % 26)
    return prefix + "".join(reversed(letters))
