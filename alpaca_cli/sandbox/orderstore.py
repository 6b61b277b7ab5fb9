"""Every order the engine ever accepted, findable by id, client order id and time.

`GET /v2/orders` pages through thousands of orders by `submitted_at`; the
time indexes answer a page in O(log n + page), open and closed apart.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from datetime import datetime

from alpaca_cli.sandbox.model import SIDES, SimOrder, invalid, not_found

MAX_PAGE = 500


class TimeIndex:
    """Orders sorted by submitted_at (unique per order), for O(log n + page) listing."""

    def __init__(self) -> None:
        self.keys: list[datetime] = []
        self.orders: list[SimOrder] = []

    def add(self, order: SimOrder) -> None:
        if not self.keys or order.submitted_at > self.keys[-1]:
            self.keys.append(order.submitted_at)
            self.orders.append(order)
            return
        i = bisect.bisect_left(self.keys, order.submitted_at)
        self.keys.insert(i, order.submitted_at)
        self.orders.insert(i, order)

    def remove(self, order: SimOrder) -> None:
        i = bisect.bisect_left(self.keys, order.submitted_at)
        if i < len(self.keys) and self.orders[i] is order:
            del self.keys[i]
            del self.orders[i]

    def __len__(self) -> int:
        return len(self.keys)

    def scan(self, after: datetime | None, until: datetime | None, descending: bool) -> Iterator[SimOrder]:
        lo = 0 if after is None else bisect.bisect_right(self.keys, after)
        hi = len(self.keys) if until is None else bisect.bisect_left(self.keys, until)
        indices = range(hi - 1, lo - 1, -1) if descending else range(lo, hi)
        orders = self.orders
        for i in indices:
            yield orders[i]


class OrderStore:
    """The engine's orders: `add` on acceptance, `close` when one reaches a final status."""

    def __init__(self) -> None:
        self._by_id: dict[str, SimOrder] = {}
        self._by_client_id: dict[str, SimOrder] = {}
        self.all = TimeIndex()
        self.open = TimeIndex()
        self.closed = TimeIndex()

    def add(self, order: SimOrder) -> None:
        self._by_id[order.id] = order
        self._by_client_id[order.client_order_id] = order
        self.all.add(order)
        self.open.add(order)

    def close(self, order: SimOrder) -> None:
        self.open.remove(order)
        self.closed.add(order)

    def has_client_id(self, client_order_id: str) -> bool:
        return client_order_id in self._by_client_id

    def get(self, order_id: str) -> SimOrder:
        order = self._by_id.get(order_id)
        if order is None:
            raise not_found()
        return order

    def by_client_id(self, client_order_id: str) -> SimOrder:
        order = self._by_client_id.get(client_order_id)
        if order is None:
            raise not_found()
        return order

    def list(
        self,
        status: str = "open",
        limit: int = 50,
        after: datetime | None = None,
        until: datetime | None = None,
        direction: str = "desc",
        symbols: Iterable[str] | None = None,
        side: str | None = None,
        nested: bool = False,
    ) -> list[SimOrder]:
        """`GET /v2/orders`: newest first by default; `after`/`until` exclusive.

        `nested`: a group's exits are left out where their entry is listed (they ride along with it).
        """
        if status not in ("open", "closed", "all"):
            raise invalid("invalid status")
        if direction not in ("asc", "desc"):
            raise invalid("invalid direction")
        if not 1 <= limit <= MAX_PAGE:
            raise invalid(f"limit must be between 1 and {MAX_PAGE}")
        if side is not None and side not in SIDES:
            raise invalid("invalid side")
        index = {"open": self.open, "closed": self.closed, "all": self.all}[status]
        wanted = {s.upper() for s in symbols} if symbols else None
        out: list[SimOrder] = []
        for order in index.scan(after, until, direction == "desc"):
            if nested and order.parent is not None and _listed(order.parent, status):
                continue  # shown among its entry's legs
            if wanted is not None and order.symbol not in wanted:
                continue
            if side is not None and order.side != side:
                continue
            out.append(order)
            if len(out) >= limit:
                break
        return out


def _listed(order: SimOrder, status: str) -> bool:
    """Would `GET /v2/orders?status=...` list this order?"""
    return status == "all" or (status == "open") == order.is_open
