"""The engine as Alpaca's trading REST API sees it: JSON bodies in, Alpaca's JSON out.

The server's side of the engine: it parses request bodies (`orderrequest`),
calls the engine, and encodes what comes back (`wire`), so REST handlers,
the activity log and tests driving the sandbox in-process all speak the same
wire dicts. `listeners` hear every trade update already encoded, once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from alpaca_cli.sandbox import orderrequest, wire
from alpaca_cli.sandbox.engine import PaperBroker
from alpaca_cli.sandbox.model import TradeEvent, invalid

log = logging.getLogger(__name__)

WireListener = Callable[[dict[str, Any]], None]


class BrokerApi:
    """`PaperBroker` behind Alpaca's request and answer shapes (not thread-safe, like the engine)."""

    def __init__(self, engine: PaperBroker) -> None:
        self.engine = engine
        self.listeners: list[WireListener] = []
        engine.listeners.append(self._on_event)

    def _on_event(self, event: TradeEvent) -> None:
        if not self.listeners:
            return
        payload = wire.trade_event(event)
        for listener in list(self.listeners):
            try:
                listener(payload)
            except Exception:
                log.exception("trade-update listener failed")

    # ---------------------------------------------------------------- orders

    def submit(self, body: Any) -> dict[str, Any]:
        """`POST /v2/orders`: a group order answers with its legs."""
        return wire.order(self.engine.submit(orderrequest.parse_order(body)), nested=True)

    def replace(self, order_id: str, body: Any) -> dict[str, Any]:
        """`PATCH /v2/orders/{id}`."""
        old = self.engine.replaceable(order_id)
        return wire.order(self.engine.replace(order_id, orderrequest.replacement(old, body)))

    def get_order(self, order_id: str, nested: bool = False) -> dict[str, Any]:
        return wire.order(self.engine.get_order(order_id), nested=nested)

    def get_order_by_client_id(self, client_order_id: str) -> dict[str, Any]:
        return wire.order(self.engine.get_order_by_client_id(client_order_id))

    def list_orders(
        self,
        status: str = "open",
        limit: int = 50,
        after: datetime | None = None,
        until: datetime | None = None,
        direction: str = "desc",
        symbols: Iterable[str] | None = None,
        side: str | None = None,
        nested: bool = False,
    ) -> list[dict[str, Any]]:
        """`GET /v2/orders`."""
        found = self.engine.list_orders(status, limit, after, until, direction, symbols, side, nested)
        return [wire.order(o, nested=nested) for o in found]

    def cancel(self, order_id: str) -> None:
        """`DELETE /v2/orders/{id}` (204: no body)."""
        self.engine.cancel(order_id)

    def cancel_all(self) -> list[dict[str, Any]]:
        """`DELETE /v2/orders`: the 207 body."""
        return [wire.cancel_outcome(o) for o in self.engine.cancel_all()]

    # ------------------------------------------------------------- positions

    def account(self) -> dict[str, Any]:
        return wire.account(self.engine.account())

    def positions(self) -> list[dict[str, Any]]:
        return [wire.position(p) for p in self.engine.positions()]

    def close_position(
        self, symbol: str, qty: Decimal | None = None, percentage: Decimal | None = None
    ) -> dict[str, Any]:
        """`DELETE /v2/positions/{symbol}`: the closing order."""
        return wire.order(self.engine.close_position(symbol, qty, percentage), nested=True)

    def close_all_positions(self, cancel_orders: bool = False) -> list[dict[str, Any]]:
        """`DELETE /v2/positions`: the 207 body."""
        return [wire.close_outcome(o) for o in self.engine.close_all_positions(cancel_orders)]

    def clock(self) -> dict[str, Any]:
        return wire.clock(self.engine.clock())

    def bars(
        self,
        symbols: Iterable[str],
        timeframe: str = "1Min",
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 1000,
        page_token: str | None = None,
    ) -> dict[str, Any]:
        """`GET /v2/stocks/bars`' body: one page of the bar series."""
        page = self.engine.bars(symbols, timeframe, start, end, limit, page_token)
        bars = {s: [wire.bar(b) for b in found] for s, found in page.bars.items()}
        return {"bars": bars, "next_page_token": page.next_page_token}

    # ---------------------------------------------------------- the market

    def set_price(self, symbol: str, price: Any) -> None:
        """Move a symbol to `price` (a JSON number or numeric string) at once."""
        value = orderrequest.parse_decimal(price, "price")
        if value is None:
            raise invalid("price is required")
        self.engine.set_price(symbol, value)

    def price(self, symbol: str) -> Decimal:
        return self.engine.price(symbol)

    def step(self) -> None:
        self.engine.step()

    def position_qty(self, symbol: str) -> Decimal:
        return self.engine.position_qty(symbol)

    def symbols(self) -> list[str]:
        return self.engine.symbols()

    @property
    def halted(self) -> set[str]:
        return self.engine.halted
