"""The sandbox's admin routes: faults, clock, rate limit, prices, ticks, resets, stats.

Loopback clients only (the server's guard refuses others); they change the
world while it runs, for tests and demos (see the README's admin table).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from aiohttp import web

from alpaca_cli.sandbox import params, respond, wire
from alpaca_cli.sandbox.engine import PaperBroker
from alpaca_cli.sandbox.faults import Faults
from alpaca_cli.sandbox.model import BrokerError
from alpaca_cli.sandbox.orderrequest import parse_decimal
from alpaca_cli.sandbox.params import BadRequest
from alpaca_cli.sandbox.restapi import BrokerApi


class Host(Protocol):
    """What the routes read and change of the running sandbox (its `Sandbox`)."""

    engine: PaperBroker
    broker: BrokerApi
    faults: Faults
    request_counts: Counter[str]
    rate_limit: int

    def now(self) -> datetime: ...

    def set_now(self, at: datetime | None) -> None: ...

    def set_rate_limit(self, per_minute: int) -> None: ...

    def new_account_records(self, cash: Decimal) -> None: ...


def setup(app: web.Application, sandbox: Host) -> None:
    routes = _Routes(sandbox)
    r = app.router
    r.add_get("/admin/faults", routes.get_faults)
    r.add_post("/admin/faults", routes.set_faults)
    r.add_get("/admin/stats", routes.stats)
    r.add_post("/admin/price", routes.price)
    r.add_post("/admin/step", routes.step)
    r.add_post("/admin/seed", routes.seed)
    r.add_post("/admin/halt", routes.halt)
    r.add_post("/admin/market", routes.market)
    r.add_get("/admin/clock", routes.get_clock)
    r.add_post("/admin/clock", routes.set_clock)
    r.add_get("/admin/rate-limit", routes.get_rate_limit)
    r.add_post("/admin/rate-limit", routes.set_rate_limit)
    r.add_post("/admin/reset", routes.reset)
    r.add_post("/admin/expire", routes.expire)


class _Routes:
    def __init__(self, sandbox: Host) -> None:
        self._sandbox = sandbox

    async def get_faults(self, request: web.Request) -> web.Response:
        return respond.json(self._sandbox.faults.as_dict())

    async def set_faults(self, request: web.Request) -> web.Response:
        body = await _admin_body(request)
        try:
            self._sandbox.faults.update(**body)
        except ValueError as exc:
            return respond.error(422, 40010001, str(exc))
        return respond.json(self._sandbox.faults.as_dict())

    async def stats(self, request: web.Request) -> web.Response:
        broker = self._sandbox.engine
        return respond.json(
            {
                "requests": dict(self._sandbox.request_counts),
                "orders": broker.order_count(),
                "open_orders": broker.open_order_count(),
                "positions": len(broker.positions()),
                "symbols": broker.symbols(),
            }
        )

    async def price(self, request: web.Request) -> web.Response:
        body = await _admin_body(request)
        symbol = body.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            return respond.error(422, 40010001, "symbol is required")
        try:
            self._sandbox.broker.set_price(symbol.upper(), body.get("price"))
        except BrokerError as exc:
            return respond.json(wire.refusal(exc), exc.status)
        return respond.json({"symbol": symbol.upper(), "price": wire.num(self._sandbox.broker.price(symbol.upper()))})

    async def step(self, request: web.Request) -> web.Response:
        body = await _admin_body(request)
        n = body.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= 100_000:
            return respond.error(422, 40010001, "n must be an integer between 0 and 100000")
        for _ in range(n):
            self._sandbox.broker.step()
        return respond.json({"steps": n})

    async def halt(self, request: web.Request) -> web.Response:
        body = await _admin_body(request)
        symbol, halted = body.get("symbol"), body.get("halted", True)
        if not isinstance(symbol, str) or not symbol or not isinstance(halted, bool):
            return respond.error(422, 40010001, 'expected {"symbol": str, "halted": bool}')
        if halted:
            self._sandbox.broker.halted.add(symbol.upper())
        else:
            self._sandbox.broker.halted.discard(symbol.upper())
        return respond.json({"halted": sorted(self._sandbox.broker.halted)})

    async def market(self, request: web.Request) -> web.Response:
        """`{"open": false}` forces the market closed; `{"open": true}` opens it around the clock."""
        body = await _admin_body(request)
        is_open = body.get("open")
        if not isinstance(is_open, bool):
            return respond.error(422, 40010001, 'expected {"open": bool}')
        self._sandbox.engine.market_closed = not is_open
        self._sandbox.engine.always_open = is_open
        return respond.json(self._sandbox.broker.clock())

    def _clock_state(self) -> dict[str, Any]:
        engine = self._sandbox.engine
        return {
            "now": wire.ts(self._sandbox.now()),
            "always_open": engine.always_open,
            "market_closed": engine.market_closed,
            "clock": self._sandbox.broker.clock(),
        }

    async def get_clock(self, request: web.Request) -> web.Response:
        return respond.json(self._clock_state())

    async def set_clock(self, request: web.Request) -> web.Response:
        """`{"now": T | null, "always_open": bool, "market_closed": bool}`, any of them."""
        body = await _admin_body(request)
        unknown = set(body) - {"now", "always_open", "market_closed"}
        if unknown:
            return respond.error(422, 40010001, f"unknown clock setting {sorted(unknown)[0]!r}")
        switches = {k: body[k] for k in ("always_open", "market_closed") if k in body}
        if not all(isinstance(v, bool) for v in switches.values()):
            return respond.error(422, 40010001, "always_open and market_closed must be booleans")
        if "now" in body:
            raw = body["now"]
            if raw is not None and not isinstance(raw, str):
                return respond.error(422, 40010001, "now must be an RFC 3339 time or null")
            try:
                self._sandbox.set_now(params.instant(raw, "now"))
            except BadRequest as exc:
                return respond.error(exc.status, exc.code, exc.message)
        for name, value in switches.items():
            setattr(self._sandbox.engine, name, value)
        return respond.json(self._clock_state())

    async def get_rate_limit(self, request: web.Request) -> web.Response:
        return respond.json({"rate_limit": self._sandbox.rate_limit})

    async def set_rate_limit(self, request: web.Request) -> web.Response:
        """`{"rate_limit": N}`: requests per minute per key, 0 for none (as `--rate-limit`)."""
        body = await _admin_body(request)
        value = body.get("rate_limit")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return respond.error(422, 40010001, "rate_limit must be an integer >= 0")
        self._sandbox.set_rate_limit(value)
        return respond.json({"rate_limit": self._sandbox.rate_limit})

    async def reset(self, request: web.Request) -> web.Response:
        body = await _admin_body(request)
        try:
            cash = parse_decimal(body.get("cash", "100000"), "cash")
        except BrokerError as exc:
            return respond.json(wire.refusal(exc), exc.status)
        if cash is None or cash < 0:
            return respond.error(422, 40010001, "cash must be >= 0")
        self._sandbox.engine.reset(cash)
        self._sandbox.new_account_records(cash)
        self._sandbox.faults.reset()
        return respond.json(self._sandbox.broker.account())

    async def expire(self, request: web.Request) -> web.Response:
        return respond.json({"expired": self._sandbox.engine.expire_day_orders()})

    async def seed(self, request: web.Request) -> web.Response:
        body = await _admin_body(request)
        counts = {k: body.get(k, 0) for k in ("open_orders", "positions")}
        for name, value in counts.items():
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 1_000_000:
                return respond.error(422, 40010001, f"{name} must be an integer between 0 and 1000000")
        started = time.perf_counter()
        self._sandbox.engine.seed_bulk(counts["open_orders"], counts["positions"])
        return respond.json({**counts, "seconds": round(time.perf_counter() - started, 3)})


async def _admin_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise _bad_request("body must be JSON") from None
    if not isinstance(body, dict):
        raise _bad_request("body must be a JSON object")
    return body


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps(wire.error(40010000, message)), content_type="application/json")
