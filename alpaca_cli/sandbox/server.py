"""The sandbox's HTTP server: Alpaca's REST routes, admin routes, the tick loop.

`Sandbox` owns one `PaperBroker`, one `Faults`, one `RateLimiter` and one
aiohttp application; `streams.setup(app, sandbox)` adds the WebSocket routes.
By default it is as strict as Alpaca: 200 requests a minute per key and the
NYSE calendar; `always_open` and `rate_limit=0` are the conveniences for demos
and tests. `SandboxThread` runs a `Sandbox` on its own event loop in a daemon
thread, for tests and demos that drive the (synchronous) SDK from the main thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import ipaddress
import json
import logging
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from aiohttp import web

from alpaca_cli.sandbox import assets, calendar, params, wire
from alpaca_cli.sandbox.activities import ActivityLog
from alpaca_cli.sandbox.engine import PaperBroker
from alpaca_cli.sandbox.faults import Faults
from alpaca_cli.sandbox.model import BrokerError
from alpaca_cli.sandbox.orderrequest import parse_decimal
from alpaca_cli.sandbox.params import BadRequest
from alpaca_cli.sandbox.ratelimit import DEFAULT_PER_MINUTE, RateLimiter
from alpaca_cli.sandbox.restapi import BrokerApi
from alpaca_cli.sandbox.watchlists import Watchlists, default_configuration

log = logging.getLogger(__name__)

T = TypeVar("T")

_UNAUTHORIZED = {"code": 40110000, "message": "request is not authorized"}
# What Alpaca answers when the key headers are absent: no `code` in the body.
_FORBIDDEN = {"message": "forbidden."}
_RATE_LIMITED = {"code": 42910000, "message": "rate limit exceeded"}
_MAX_ORDERS_PAGE = 500


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=json.dumps)


def _error(status: int, code: int, message: str) -> web.Response:
    return _json(wire.error(code, message), status)


class Sandbox:
    """A local Alpaca paper broker on a real socket (see module docstring)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        key_id: str = "SANDBOXKEY",
        secret_key: str = "SANDBOXSECRET",
        tick_interval: float = 0.05,
        bar_interval: float = 60.0,
        faults: Faults | None = None,
        sip_allowed: bool = True,
        *,
        always_open: bool = False,
        market_closed: bool = False,
        now: datetime | None = None,
        rate_limit: int = DEFAULT_PER_MINUTE,
        rate_clock: Callable[[], float] = time.time,
    ) -> None:
        """`now` starts the sandbox's clock at that instant (it runs on from there);
        `rate_limit` is requests per minute per key (0: unlimited), counted on `rate_clock`."""
        self.host = host
        self.port = port
        self.seed = seed
        self.key_id = key_id
        self.secret_key = secret_key
        self.tick_interval = tick_interval
        self.bar_interval = bar_interval
        self.sip_allowed = sip_allowed  # False: /v2/sip answers 409 insufficient subscription
        self.faults = faults if faults is not None else Faults()
        self._clock_offset = timedelta(0)
        if now is not None:
            self.set_now(now)
        self.engine = PaperBroker(seed=seed, now=self.now, always_open=always_open, market_closed=market_closed)
        # The engine behind Alpaca's JSON: what the REST routes (and in-process tests) call.
        self.broker = BrokerApi(self.engine)
        self.activities = ActivityLog()
        self.broker.listeners.append(self.activities.on_trade_update)
        self.watchlists = Watchlists(self.now)
        self.configuration: dict[str, Any] = {}
        self._new_account_records(self.engine.cash)
        self._rate_clock = rate_clock
        self.limiter: RateLimiter | None = None
        self.set_rate_limit(rate_limit)
        self.request_counts: Counter[str] = Counter()
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.app = self._build_app()

    # ------------------------------------------------------------ the clock

    def now(self) -> datetime:
        """The sandbox's time: the wall clock, shifted when started `now=` or moved by admin."""
        return datetime.now(UTC) + self._clock_offset

    def set_now(self, at: datetime | None) -> None:
        """Run the clock from `at` on (None: back to the wall clock)."""
        self._clock_offset = timedelta(0) if at is None else at - datetime.now(UTC)

    def _new_account_records(self, cash: Decimal) -> None:
        """A new account's records: its funding deposit, no watchlists, the default configuration."""
        self.activities.reset(cash, self.now())
        self.watchlists = Watchlists(self.now)
        self.configuration = default_configuration()

    def set_rate_limit(self, per_minute: int) -> None:
        """Requests per minute per key; 0 turns the limit off. Budgets start full."""
        if per_minute < 0:
            raise ValueError("rate_limit must be >= 0")
        self.rate_limit = per_minute
        self.limiter = RateLimiter(per_minute, self._rate_clock) if per_minute else None

    # -------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Bind, start serving, and start the tick loop; `.url` names the bound port."""
        self._runner = web.AppRunner(self.app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            self._runner = None
            raise
        self.port = self._runner.addresses[0][1]
        # A wildcard bind is reached through loopback; IPv6 literals need brackets.
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        self.url = f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"
        self._ticker = asyncio.get_running_loop().create_task(self._tick_loop())

    async def stop(self) -> None:
        """Stop ticking and close every connection (streams included)."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            try:
                self.engine.step()
            except Exception:
                log.exception("sandbox step failed")
            next_at += self.tick_interval
            delay = next_at - loop.time()
            if delay < 0:  # fell behind (a slow step or a busy loop): do not burst
                next_at = loop.time()
                delay = 0
            await asyncio.sleep(delay)

    # -------------------------------------------------------------------- app

    def _build_app(self) -> web.Application:
        from alpaca_cli.sandbox import accountrest, datarest, streams

        app = web.Application(middlewares=[self._count, self._guard])
        r = app.router
        r.add_get("/v2/account", self._account)
        r.add_get("/v2/positions", self._positions)
        r.add_delete("/v2/positions", self._close_all_positions)
        r.add_get("/v2/positions/{symbol}", self._position)
        r.add_delete("/v2/positions/{symbol}", self._close_position)
        r.add_get("/v2/clock", self._clock)
        r.add_get("/v2/calendar", self._calendar)
        r.add_get("/v2/assets", self._assets)
        r.add_get("/v2/assets/{symbol_or_id}", self._asset)
        r.add_get("/v2/orders", self._list_orders)
        r.add_post("/v2/orders", self._submit)
        r.add_delete("/v2/orders", self._cancel_all)
        r.add_get("/v2/orders:by_client_order_id", self._order_by_client_id)
        r.add_get("/v2/orders/{order_id}", self._get_order)
        r.add_patch("/v2/orders/{order_id}", self._replace)
        r.add_delete("/v2/orders/{order_id}", self._cancel)
        r.add_get("/v2/stocks/bars", self._bars)
        r.add_get("/v2/stocks/{symbol}/bars", self._symbol_bars)
        r.add_get("/admin/faults", self._admin_get_faults)
        r.add_post("/admin/faults", self._admin_set_faults)
        r.add_get("/admin/stats", self._admin_stats)
        r.add_post("/admin/price", self._admin_price)
        r.add_post("/admin/step", self._admin_step)
        r.add_post("/admin/seed", self._admin_seed)
        r.add_post("/admin/halt", self._admin_halt)
        r.add_post("/admin/market", self._admin_market)
        r.add_get("/admin/clock", self._admin_get_clock)
        r.add_post("/admin/clock", self._admin_set_clock)
        r.add_get("/admin/rate-limit", self._admin_get_rate_limit)
        r.add_post("/admin/rate-limit", self._admin_set_rate_limit)
        r.add_post("/admin/reset", self._admin_reset)
        r.add_post("/admin/expire", self._admin_expire)
        datarest.setup(app, self)
        accountrest.setup(app, self)
        streams.setup(app, self)
        return app

    @web.middleware
    async def _count(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Count requests by route template ("POST /v2/orders"), for tests and stats."""
        info = request.match_info
        route = info.route.resource.canonical if info.route.resource is not None else request.path
        self.request_counts[f"{request.method} {route}"] += 1
        return await handler(request)

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Admin is loopback-only; REST gets faults, Alpaca's key check, then the rate limit.

        Unknown routes answer Alpaca's JSON error on every path, admin included.
        """
        path = request.path
        if path.startswith("/admin/") and not _is_loopback(request.remote):
            return _json(_FORBIDDEN, 403)
        missing = request.match_info.http_exception
        if missing is not None:
            if missing.status == 405:
                return _error(405, 40510000, "method not allowed")
            return _error(404, 40410000, "endpoint not found")
        is_websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        if not path.startswith(("/v2/", "/v3/")) or is_websocket:
            return await handler(request)  # admin; the streams do their own auth and faults
        faults = self.faults
        if faults.refuse_auth:
            return _json(_UNAUTHORIZED, 401)
        status = faults.next_rest_status()
        if status is not None:
            phrase = http.HTTPStatus(status).phrase.lower() if status in _STATUSES else "error"
            return _error(status, status * 100000 + 10000, phrase)
        key = request.headers.get("APCA-API-KEY-ID")
        secret = request.headers.get("APCA-API-SECRET-KEY")
        if not key or not secret:
            return _json(_FORBIDDEN, 403)
        if key != self.key_id or secret != self.secret_key:
            return _json(_UNAUTHORIZED, 401)
        verdict = self.limiter.take(key) if self.limiter is not None else None
        if verdict is not None and not verdict.allowed:
            refused = _json(_RATE_LIMITED, 429)
            refused.headers.update(verdict.headers())
            return refused
        response: web.StreamResponse
        try:
            response = await handler(request)
        except BrokerError as exc:
            response = _json(wire.refusal(exc), exc.status)
        except BadRequest as exc:
            response = _error(exc.status, exc.code, exc.message)
        if verdict is not None:
            response.headers.update(verdict.headers())
        return response

    # ------------------------------------------------------------- trading

    async def _account(self, request: web.Request) -> web.Response:
        return _json(self.broker.account())

    async def _positions(self, request: web.Request) -> web.Response:
        return _json(self.broker.positions())

    async def _position(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"].upper()
        for pos in self.broker.positions():
            if pos["symbol"] == symbol or pos["asset_id"] == request.match_info["symbol"]:
                return _json(pos)
        return _error(404, 40410000, "position does not exist")

    async def _close_position(self, request: web.Request) -> web.Response:
        q = request.query
        qty = parse_decimal(q.get("qty") or None, "qty")
        percentage = parse_decimal(q.get("percentage") or None, "percentage")
        order = self.broker.close_position(request.match_info["symbol"], qty, percentage)
        self._drop_if_asked(request)
        return _json(order)

    async def _close_all_positions(self, request: web.Request) -> web.Response:
        cancel = params.boolean(request.query.get("cancel_orders"), "cancel_orders")
        closings = self.broker.close_all_positions(cancel_orders=cancel)
        self._drop_if_asked(request)
        return _json(closings, 207)

    async def _clock(self, request: web.Request) -> web.Response:
        return _json(self.broker.clock())

    async def _calendar(self, request: web.Request) -> web.Response:
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
        return _json([wire.calendar_day(s) for s in days])

    async def _assets(self, request: web.Request) -> web.Response:
        """`GET /v2/assets`: the listed assets, filtered by `status`, `asset_class`, `exchange`."""
        q = request.query
        status = q.get("status", "").lower()
        exchange = q.get("exchange", "").upper()
        if q.get("asset_class", "us_equity").lower() != "us_equity":
            return _json([])
        listed = [
            a.wire()
            for a in assets.all_assets().values()
            if (not status or status == ("active" if a.active else "inactive"))
            and (not exchange or exchange == a.exchange)
        ]
        return _json(listed)

    async def _asset(self, request: web.Request) -> web.Response:
        wanted = request.match_info["symbol_or_id"]
        found = assets.find(wanted)
        if found is None:
            return _error(404, 40410000, f"asset not found for {wanted}")
        return _json(found.wire())

    async def _list_orders(self, request: web.Request) -> web.Response:
        q = request.query
        limit = min(params.integer(q.get("limit"), "limit", 50), _MAX_ORDERS_PAGE)
        symbols = [s for s in q.get("symbols", "").split(",") if s.strip()] or None
        orders = self.broker.list_orders(
            status=q.get("status", "open").lower(),
            limit=limit,
            after=params.instant(q.get("after"), "after"),
            until=params.instant(q.get("until"), "until"),
            direction=q.get("direction", "desc").lower(),
            symbols=[s.strip() for s in symbols] if symbols else None,
            side=q.get("side", "").lower() or None,
            nested=params.boolean(q.get("nested"), "nested"),
        )
        return _json(orders)

    async def _submit(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, 40010000, "request body format is invalid")
        order = self.broker.submit(body)
        self._drop_if_asked(request)
        return _json(order)

    def _drop_if_asked(self, request: web.Request) -> None:
        """The `drop_after_accept` fault, after a request that made an order (submit, replace, close)."""
        faults = self.faults
        if faults.drop_after_accept > 0:
            faults.drop_after_accept -= 1
            transport = request.transport
            if transport is not None:
                transport.abort()  # the order stands; its answer never arrives
            raise asyncio.CancelledError

    async def _replace(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, 40010000, "request body format is invalid")
        replacement = self.broker.replace(request.match_info["order_id"], body)
        self._drop_if_asked(request)
        return _json(replacement)

    async def _get_order(self, request: web.Request) -> web.Response:
        nested = params.boolean(request.query.get("nested"), "nested")
        return _json(self.broker.get_order(request.match_info["order_id"], nested=nested))

    async def _order_by_client_id(self, request: web.Request) -> web.Response:
        client_id = request.query.get("client_order_id")
        if not client_id:
            return _error(422, 40010001, "client_order_id is required")
        return _json(self.broker.get_order_by_client_id(client_id))

    async def _cancel(self, request: web.Request) -> web.Response:
        self.broker.cancel(request.match_info["order_id"])
        return web.Response(status=204)

    async def _cancel_all(self, request: web.Request) -> web.Response:
        return _json(self.broker.cancel_all(), 207)

    # ----------------------------------------------------------------- data

    def _bars_query(self, request: web.Request, symbols: list[str]) -> dict[str, Any]:
        q = request.query
        params.check_feed(q.get("feed"))
        sort = q.get("sort", "asc").lower()
        if sort not in ("asc", "desc"):
            raise BadRequest(f"invalid sort: {sort}", 400, 40010000)
        page = self.engine.bars(
            symbols,
            timeframe=q.get("timeframe", ""),
            start=params.instant(q.get("start"), "start"),
            end=params.instant(q.get("end"), "end"),
            limit=params.integer(q.get("limit"), "limit", 1000),
            page_token=q.get("page_token") or None,
        )
        step = -1 if sort == "desc" else 1  # desc: newest first within the page, symbols still in order
        bars = {s: [wire.bar(b) for b in found[::step]] for s, found in page.bars.items()}
        return {"bars": bars, "next_page_token": page.next_page_token}

    async def _bars(self, request: web.Request) -> web.Response:
        symbols = [s for s in request.query.get("symbols", "").split(",") if s.strip()]
        if not symbols:
            raise BadRequest("missing symbols", 400, 40010000)
        return _json(self._bars_query(request, symbols))

    async def _symbol_bars(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"].upper()
        result = self._bars_query(request, [symbol])
        return _json(
            {
                "bars": result["bars"].get(symbol, []),
                "symbol": symbol,
                "next_page_token": result["next_page_token"],
            }
        )

    # ---------------------------------------------------------------- admin

    async def _admin_get_faults(self, request: web.Request) -> web.Response:
        return _json(self.faults.as_dict())

    async def _admin_set_faults(self, request: web.Request) -> web.Response:
        body = await _admin_body(request)
        try:
            self.faults.update(**body)
        except ValueError as exc:
            return _error(422, 40010001, str(exc))
        return _json(self.faults.as_dict())

    async def _admin_stats(self, request: web.Request) -> web.Response:
        broker = self.engine
        return _json(
            {
                "requests": dict(self.request_counts),
                "orders": broker.order_count(),
                "open_orders": broker.open_order_count(),
                "positions": len(broker.positions()),
                "symbols": broker.symbols(),
            }
        )

    async def _admin_price(self, request: web.Request) -> web.Response:
        body = await _admin_body(request)
        symbol = body.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            return _error(422, 40010001, "symbol is required")
        try:
            self.broker.set_price(symbol.upper(), body.get("price"))
        except BrokerError as exc:
            return _json(wire.refusal(exc), exc.status)
        return _json({"symbol": symbol.upper(), "price": wire.num(self.broker.price(symbol.upper()))})

    async def _admin_step(self, request: web.Request) -> web.Response:
        body = await _admin_body(request)
        n = body.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= 100_000:
            return _error(422, 40010001, "n must be an integer between 0 and 100000")
        for _ in range(n):
            self.broker.step()
        return _json({"steps": n})

    async def _admin_halt(self, request: web.Request) -> web.Response:
        body = await _admin_body(request)
        symbol, halted = body.get("symbol"), body.get("halted", True)
        if not isinstance(symbol, str) or not symbol or not isinstance(halted, bool):
            return _error(422, 40010001, 'expected {"symbol": str, "halted": bool}')
        if halted:
            self.broker.halted.add(symbol.upper())
        else:
            self.broker.halted.discard(symbol.upper())
        return _json({"halted": sorted(self.broker.halted)})

    async def _admin_market(self, request: web.Request) -> web.Response:
        """`{"open": false}` forces the market closed; `{"open": true}` opens it around the clock."""
        body = await _admin_body(request)
        is_open = body.get("open")
        if not isinstance(is_open, bool):
            return _error(422, 40010001, 'expected {"open": bool}')
        self.engine.market_closed = not is_open
        self.engine.always_open = is_open
        return _json(self.broker.clock())

    def _clock_state(self) -> dict[str, Any]:
        engine = self.engine
        return {
            "now": wire.ts(self.now()),
            "always_open": engine.always_open,
            "market_closed": engine.market_closed,
            "clock": self.broker.clock(),
        }

    async def _admin_get_clock(self, request: web.Request) -> web.Response:
        return _json(self._clock_state())

    async def _admin_set_clock(self, request: web.Request) -> web.Response:
        """`{"now": T | null, "always_open": bool, "market_closed": bool}`, any of them."""
        body = await _admin_body(request)
        unknown = set(body) - {"now", "always_open", "market_closed"}
        if unknown:
            return _error(422, 40010001, f"unknown clock setting {sorted(unknown)[0]!r}")
        switches = {k: body[k] for k in ("always_open", "market_closed") if k in body}
        if not all(isinstance(v, bool) for v in switches.values()):
            return _error(422, 40010001, "always_open and market_closed must be booleans")
        if "now" in body:
            raw = body["now"]
            if raw is not None and not isinstance(raw, str):
                return _error(422, 40010001, "now must be an RFC 3339 time or null")
            try:
                self.set_now(params.instant(raw, "now"))
            except BadRequest as exc:
                return _error(exc.status, exc.code, exc.message)
        for name, value in switches.items():
            setattr(self.engine, name, value)
        return _json(self._clock_state())

    async def _admin_get_rate_limit(self, request: web.Request) -> web.Response:
        return _json({"rate_limit": self.rate_limit})

    async def _admin_set_rate_limit(self, request: web.Request) -> web.Response:
        """`{"rate_limit": N}`: requests per minute per key, 0 for none (as `--rate-limit`)."""
        body = await _admin_body(request)
        value = body.get("rate_limit")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return _error(422, 40010001, "rate_limit must be an integer >= 0")
        self.set_rate_limit(value)
        return _json({"rate_limit": self.rate_limit})

    async def _admin_reset(self, request: web.Request) -> web.Response:
        body = await _admin_body(request)
        try:
            cash = parse_decimal(body.get("cash", "100000"), "cash")
        except BrokerError as exc:
            return _json(wire.refusal(exc), exc.status)
        if cash is None or cash < 0:
            return _error(422, 40010001, "cash must be >= 0")
        self.engine.reset(cash)
        self._new_account_records(cash)
        self.faults.reset()
        return _json(self.broker.account())

    async def _admin_expire(self, request: web.Request) -> web.Response:
        return _json({"expired": self.engine.expire_day_orders()})

    async def _admin_seed(self, request: web.Request) -> web.Response:
        body = await _admin_body(request)
        counts = {k: body.get(k, 0) for k in ("open_orders", "positions")}
        for name, value in counts.items():
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 1_000_000:
                return _error(422, 40010001, f"{name} must be an integer between 0 and 1000000")
        started = time.perf_counter()
        self.engine.seed_bulk(counts["open_orders"], counts["positions"])
        return _json({**counts, "seconds": round(time.perf_counter() - started, 3)})


_STATUSES = {s.value for s in http.HTTPStatus}


async def _admin_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise _json_bad_request("body must be JSON") from None
    if not isinstance(body, dict):
        raise _json_bad_request("body must be a JSON object")
    return body


def _json_bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps(wire.error(40010000, message)), content_type="application/json")


def _is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote.split("%")[0]).is_loopback
    except ValueError:
        return False


class SandboxThread:
    """A `Sandbox` on its own event loop in a daemon thread.

    `with SandboxThread(port=0) as sb:` returns once the server listens;
    `sb.url` is its base URL, `sb.sandbox` the `Sandbox`, `sb.call(fn)` runs
    `fn()` on the sandbox's loop (awaiting it if it returns an awaitable) and
    returns the result: the thread-safe way to touch the broker or faults.
    """

    def __init__(self, **sandbox_kwargs: Any) -> None:
        self._kwargs = sandbox_kwargs
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._sandbox: Sandbox | None = None

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            raise RuntimeError("sandbox not started")
        return self._sandbox

    @property
    def url(self) -> str:
        return self.sandbox.url

    def start(self, timeout: float = 10.0) -> SandboxThread:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def boot() -> None:
                self._sandbox = Sandbox(**self._kwargs)
                await self._sandbox.start()

            try:
                loop.run_until_complete(boot())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="alpaca-cli-sandbox", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("sandbox did not start in time")
        if failure:
            raise failure[0]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or loop.is_closed():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.sandbox.stop(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = None

    def __enter__(self) -> SandboxThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def call(self, fn: Callable[[], T | Awaitable[T]], timeout: float = 10.0) -> T:
        """Run `fn()` on the sandbox loop and return its result (awaited if awaitable)."""
        if self._loop is None:
            raise RuntimeError("sandbox not started")

        async def invoke() -> T:
            result = fn()
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                return await result
            return result  # type: ignore[return-value]

        return asyncio.run_coroutine_threadsafe(invoke(), self._loop).result(timeout)

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call an admin route over HTTP (`admin("POST", "/admin/faults", {...})`)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
        return json.loads(raw) if raw else None
