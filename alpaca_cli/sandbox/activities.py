"""The account's activities (`/v2/account/activities`): fills and cash movements.

Pure: an `ActivityLog` listens to the engine's trade updates (one FILL
activity per fill or partial fill) and is told of deposits (a CSD when the
account is funded, at start and at every `/admin/reset`). Ids are Alpaca's
`<New York time to the millisecond>::<uuid4>`, so the page token, which is an
activity id, stays meaningful across pages. Listing follows Alpaca: newest
first by default, at most 100 a page unless a `date` is given, `page_token`
excluding the activity it names.
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from alpaca_cli.sandbox import wire
from alpaca_cli.sandbox.calendar import NEW_YORK
from alpaca_cli.sandbox.params import BadRequest

# Every activity type Alpaca documents; FILL is the only trade activity.
ACTIVITY_TYPES = frozenset(
    [
        "FILL",
        "ACATC",
        "ACATS",
        "CFEE",
        "CIL",
        "CSD",
        "CSW",
        "DIV",
        "DIVCGL",
        "DIVCGS",
        "DIVNRA",
        "DIVROC",
        "DIVTXEX",
        "DIVWH",
        "EXTRD",
        "FEE",
        "FXTRD",
        "INT",
        "INTPNL",
        "JNLC",
        "JNLS",
        "MA",
        "MEM",
        "NC",
        "OCT",
        "OPASN",
        "OPCSH",
        "OPEXC",
        "OPEXP",
        "OPTRD",
        "PTC",
        "REORG",
        "SPIN",
        "SPLIT",
        "SWP",
        "VOF",
        "WH",
    ]
)
CATEGORIES = {"trade_activity", "non_trade_activity"}
MAX_PAGE = 100


@dataclass(frozen=True, slots=True)
class Activity:
    at: datetime
    id: str
    body: dict[str, Any] = field(compare=False)

    @property
    def key(self) -> tuple[datetime, str]:
        return self.at, self.id


def activity_id(at: datetime) -> str:
    """Alpaca's activity id: New York local time to the millisecond, `::`, a UUID4."""
    local = at.astimezone(NEW_YORK)
    return f"{local:%Y%m%d%H%M%S}{local.microsecond // 1000:03d}::{uuid.uuid4()}"


class ActivityLog:
    """All activities of the account in time order (see the module docstring)."""

    def __init__(self) -> None:
        self._items: list[Activity] = []
        self._by_id: dict[str, Activity] = {}

    def reset(self, cash: Decimal, at: datetime) -> None:
        """A fresh account funded with `cash` at `at` (one CSD, unless the cash is zero)."""
        self._items.clear()
        self._by_id.clear()
        if cash:
            self.deposit(cash, at)

    def deposit(self, amount: Decimal, at: datetime) -> None:
        self._add(
            at,
            {
                "activity_type": "CSD",
                "date": at.astimezone(NEW_YORK).date().isoformat(),
                "net_amount": wire.num(amount),
                "description": "Cash deposit",
                "status": "executed",
                "symbol": None,
                "qty": None,
                "price": None,
                "per_share_amount": None,
            },
        )

    def on_trade_update(self, payload: dict[str, Any]) -> None:
        """An engine listener: a fill or partial fill becomes a FILL activity."""
        event = payload.get("event")
        if event not in ("fill", "partial_fill"):
            return
        order = payload["order"]
        at = datetime.fromisoformat(payload["timestamp"].replace("Z", "+00:00"))
        qty = Decimal(order["qty"]) if order.get("qty") is not None else None
        filled = Decimal(order["filled_qty"])
        leaves = max(Decimal(0), qty - filled) if qty is not None and event == "partial_fill" else Decimal(0)
        self._add(
            at,
            {
                "activity_type": "FILL",
                "transaction_time": wire.ts(at),
                "type": event,
                "price": payload["price"],
                "qty": payload["qty"],
                "side": order["side"],
                "symbol": order["symbol"],
                "leaves_qty": wire.num(leaves),
                "order_id": order["id"],
                "cum_qty": order["filled_qty"],
                "order_status": order["status"],
            },
        )

    def _add(self, at: datetime, fields: dict[str, Any]) -> None:
        new_id = activity_id(at)
        item = Activity(at, new_id, {"id": new_id, "account_id": wire.ACCOUNT_ID, **fields})
        bisect.insort(self._items, item, key=lambda a: a.key)
        self._by_id[new_id] = item

    def query(
        self,
        types: Iterable[str] | None = None,
        category: str | None = None,
        on: date | None = None,
        after: datetime | None = None,
        until: datetime | None = None,
        direction: str = "desc",
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> list[dict[str, Any]]:
        """One page of activities, filtered as `GET /v2/account/activities` is."""
        wanted = {t.upper() for t in types} if types else None
        if wanted and not wanted <= ACTIVITY_TYPES:
            raise BadRequest(f"invalid activity type: {sorted(wanted - ACTIVITY_TYPES)[0]}")
        if category is not None:
            if category not in CATEGORIES:
                raise BadRequest(f"invalid category: {category}")
            if wanted:
                raise BadRequest("category cannot be used with activity_types")
        if direction not in ("asc", "desc"):
            raise BadRequest(f"invalid direction: {direction}")
        if on is not None and (after is not None or until is not None):
            raise BadRequest("date cannot be used with after or until")
        if page_size is not None and (page_size < 1 or (on is None and page_size > MAX_PAGE)):
            raise BadRequest(f"page_size must be between 1 and {MAX_PAGE}")
        # With a date, Alpaca's default is the whole day, with no maximum.
        limit = page_size if page_size is not None else (None if on is not None else MAX_PAGE)
        items = self._items
        lo, hi = 0, len(items)
        if page_token:
            marker = self._by_id.get(page_token)
            if marker is None:
                raise BadRequest("invalid page_token")
            at = bisect.bisect_left(items, marker.key, key=lambda a: a.key)
            lo, hi = (at + 1, hi) if direction == "asc" else (lo, at)
        span = range(lo, hi) if direction == "asc" else range(hi - 1, lo - 1, -1)
        out: list[dict[str, Any]] = []
        for i in span:
            item = items[i]
            if not _matches(item, wanted, category, on, after, until):
                continue
            out.append(item.body)
            if limit is not None and len(out) >= limit:
                break
        return out


def _matches(
    item: Activity,
    wanted: set[str] | None,
    category: str | None,
    on: date | None,
    after: datetime | None,
    until: datetime | None,
) -> bool:
    kind = item.body["activity_type"]
    if wanted is not None and kind not in wanted:
        return False
    if category is not None and (kind == "FILL") != (category == "trade_activity"):
        return False
    if on is not None and item.at.astimezone(UTC).date() != on:
        return False
    if after is not None and item.at <= after:
        return False
    return until is None or item.at < until
