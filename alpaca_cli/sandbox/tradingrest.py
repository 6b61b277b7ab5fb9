"""Alpaca's trading REST routes: account, positions, clock, calendar, assets, orders.

Handlers only: bodies are parsed and answers encoded by the sandbox's
`BrokerApi` (`restapi`); the `drop_after_accept` fault is applied here,
after a request that made an order.
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Protocol

from aiohttp import web

from alpaca_cli.sandbox import assets, calendar, params, respond, wire
from alpaca_cli.sandbox.faults import Faults
from alpaca_cli.sandbox.orderrequest import parse_decimal
from alpaca_cli.sandbox.restapi import BrokerApi

# `GET /v2/orders` answers at most this many orders a page.
_MAX_ORDERS_PAGE = 500


class Host(Protocol):
    """What the routes read of the running sandbox (its `Sandbox`), at request time."""

    broker: BrokerApi
    faults: Faults


def setup(app: web.Application, sandbox: Host) -> None:
    routes = _Routes(sandbox)
    r = app.router
    r.add_get("/v2/account", routes.account)
    r.add_get("/v2/positions", routes.positions)
    r.add_delete("/v2/positions", routes.close_all_positions)
    r.add_get("/v2/positions/{symbol}", routes.position)
    r.add_delete("/v2/positions/{symbol}", routes.close_position)
    r.add_get("/v2/clock", routes.clock)
    r.add_get("/v2/calendar", routes.calendar)
    r.add_get("/v2/assets", routes.assets)
    r.add_get("/v2/assets/{symbol_or_id}", routes.asset)
    r.add_get("/v2/assets/{base}/{quote}", routes.asset)
    r.add_get("/v2/orders", routes.list_orders)
    r.add_post("/v2/orders", routes.submit)
    r.add_delete("/v2/orders", routes.cancel_all)
    r.add_get("/v2/orders:by_client_order_id", routes.order_by_client_id)
    r.add_get("/v2/orders/{order_id}", routes.get_order)
    r.add_patch("/v2/orders/{order_id}", routes.replace)
    r.add_delete("/v2/orders/{order_id}", routes.cancel)


class _Routes:
    def __init__(self, sandbox: Host) -> None:
        self._sandbox = sandbox

    async def account(self, request: web.Request) -> web.Response:
        return respond.json(self._sandbox.broker.account())

    async def positions(self, request: web.Request) -> web.Response:
        return respond.json(self._sandbox.broker.positions())

    async def position(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"].upper()
        for pos in self._sandbox.broker.positions():
            if pos["symbol"] == symbol or pos["asset_id"] == request.match_info["symbol"]:
                return respond.json(pos)
        return respond.error(404, 40410000, "position does not exist")

    async def close_position(self, request: web.Request) -> web.Response:
        q = request.query
        qty = parse_decimal(q.get("qty") or None, "qty")
        percentage = parse_decimal(q.get("percentage") or None, "percentage")
        order = self._sandbox.broker.close_position(request.match_info["symbol"], qty, percentage)
        self._drop_if_asked(request)
        return respond.json(order)

    async def close_all_positions(self, request: web.Request) -> web.Response:
        cancel = params.boolean(request.query.get("cancel_orders"), "cancel_orders")
        closings = self._sandbox.broker.close_all_positions(cancel_orders=cancel)
        self._drop_if_asked(request)
        return respond.json(closings, 207)

    async def clock(self, request: web.Request) -> web.Response:
        return respond.json(self._sandbox.broker.clock())

    async def calendar(self, request: web.Request) -> web.Response:
        """`GET /v2/calendar`: trading days from `start` to `end` (by default the listed years)."""
        q = request.query
        start = params.day(q.get("start"), "start") or date(calendar.COVERED_YEARS.start, 1, 1)
        end = params.day(q.get("end"), "end") or date(calendar.COVERED_YEARS.stop - 1, 12, 31)
        by_settlement = q.get("date_type", "TRADING").upper() == "SETTLEMENT"
        if by_settlement:  # the trading days whose settlement falls in the range
            found = calendar.sessions(start - timedelta(days=10), end)
            days = [s for s in found if start <= calendar.settlement_date(s.day) <= end]
        else:
            days = list(calendar.sessions(start, end))
        return respond.json([wire.calendar_day(s) for s in days])

    async def assets(self, request: web.Request) -> web.Response:
        """`GET /v2/assets`: the listed assets, filtered by `status`, `asset_class`, `exchange`."""
        q = request.query
        status = q.get("status", "").lower()
        exchange = q.get("exchange", "").upper()
        asset_class = q.get("asset_class", "us_equity").lower()
        listed = [
            a.wire()
            for a in assets.all_assets().values()
            if a.asset_class == asset_class
            and (not status or status == ("active" if a.active else "inactive"))
            and (not exchange or exchange == a.exchange)
        ]
        return respond.json(listed)

    async def asset(self, request: web.Request) -> web.Response:
        """`GET /v2/assets/{symbol or id}`; a crypto pair's slash may arrive as a path separator."""
        info = request.match_info
        wanted = f"{info['base']}/{info['quote']}" if "base" in info else info["symbol_or_id"]
        found = assets.find(wanted)
        if found is None:
            return respond.error(404, 40410000, f"asset not found for {wanted}")
        return respond.json(found.wire())

    async def list_orders(self, request: web.Request) -> web.Response:
        q = request.query
        limit = min(params.integer(q.get("limit"), "limit", 50), _MAX_ORDERS_PAGE)
        symbols = [s for s in q.get("symbols", "").split(",") if s.strip()] or None
        orders = self._sandbox.broker.list_orders(
            status=q.get("status", "open").lower(),
            limit=limit,
            after=params.instant(q.get("after"), "after"),
            until=params.instant(q.get("until"), "until"),
            direction=q.get("direction", "desc").lower(),
            symbols=[s.strip() for s in symbols] if symbols else None,
            side=q.get("side", "").lower() or None,
            nested=params.boolean(q.get("nested"), "nested"),
        )
        return respond.json(orders)

    async def submit(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return respond.error(400, 40010000, "request body format is invalid")
        order = self._sandbox.broker.submit(body)
        self._drop_if_asked(request)
        return respond.json(order)

    def _drop_if_asked(self, request: web.Request) -> None:
        """The `drop_after_accept` fault, after a request that made an order (submit, replace, close)."""
        faults = self._sandbox.faults
        if faults.drop_after_accept > 0:
            faults.drop_after_accept -= 1
            transport = request.transport
            if transport is not None:
                transport.abort()  # the order stands; its answer never arrives
            raise asyncio.CancelledError

    async def replace(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return respond.error(400, 40010000, "request body format is invalid")
        replacement = self._sandbox.broker.replace(request.match_info["order_id"], body)
        self._drop_if_asked(request)
        return respond.json(replacement)

    async def get_order(self, request: web.Request) -> web.Response:
        nested = params.boolean(request.query.get("nested"), "nested")
        return respond.json(self._sandbox.broker.get_order(request.match_info["order_id"], nested=nested))

    async def order_by_client_id(self, request: web.Request) -> web.Response:
        client_id = request.query.get("client_order_id")
        if not client_id:
            return respond.error(422, 40010001, "client_order_id is required")
        return respond.json(self._sandbox.broker.get_order_by_client_id(client_id))

    async def cancel(self, request: web.Request) -> web.Response:
        self._sandbox.broker.cancel(request.match_info["order_id"])
        return web.Response(status=204)

    async def cancel_all(self, request: web.Request) -> web.Response:
        return respond.json(self._sandbox.broker.cancel_all(), 207)
