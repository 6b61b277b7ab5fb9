"""The sandbox's HTTP server: its state, the guard every request passes, the tick loop.

`Sandbox` owns one `PaperBroker` (and its `BrokerApi`), one `Faults`, one
`RateLimiter` and one aiohttp application; the routes live in `tradingrest`,
`datarest`, `accountrest` and `adminrest`, the WebSockets in `streams`.
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
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from aiohttp import web

from alpaca_cli.sandbox import respond, wire
from alpaca_cli.sandbox.activities import ActivityLog
from alpaca_cli.sandbox.engine import PaperBroker
from alpaca_cli.sandbox.faults import Faults
from alpaca_cli.sandbox.model import BrokerError
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
        # The market records bars of `bar_interval`: the stream sends them, the bars API serves them.
        self.engine = PaperBroker(
            seed=seed, now=self.now, bar_seconds=bar_interval, always_open=always_open, market_closed=market_closed
        )
        # The engine behind Alpaca's JSON: what the REST routes (and in-process tests) call.
        self.broker = BrokerApi(self.engine)
        self.activities = ActivityLog()
        self.broker.listeners.append(self.activities.on_trade_update)
        self.watchlists = Watchlists(self.now)
        self.configuration: dict[str, Any] = {}
        self.new_account_records(self.engine.cash)
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

    def new_account_records(self, cash: Decimal) -> None:
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
        from alpaca_cli.sandbox import accountrest, adminrest, datarest, streams, tradingrest

        app = web.Application(middlewares=[self._count, self._guard])
        tradingrest.setup(app, self)
        datarest.setup(app, self)
        accountrest.setup(app, self)
        adminrest.setup(app, self)
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
            return respond.json(_FORBIDDEN, 403)
        missing = request.match_info.http_exception
        if missing is not None:
            if missing.status == 405:
                return respond.error(405, 40510000, "method not allowed")
            return respond.error(404, 40410000, "endpoint not found")
        is_websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        if not path.startswith(("/v2/", "/v3/", "/v1beta3/")) or is_websocket:
            return await handler(request)  # admin; the streams do their own auth and faults
        faults = self.faults
        if faults.refuse_auth:
            return respond.json(_UNAUTHORIZED, 401)
        status = faults.next_rest_status()
        if status is not None:
            phrase = http.HTTPStatus(status).phrase.lower() if status in _STATUSES else "error"
            return respond.error(status, status * 100000 + 10000, phrase)
        key = request.headers.get("APCA-API-KEY-ID")
        secret = request.headers.get("APCA-API-SECRET-KEY")
        if not key or not secret:
            return respond.json(_FORBIDDEN, 403)
        if key != self.key_id or secret != self.secret_key:
            return respond.json(_UNAUTHORIZED, 401)
        verdict = self.limiter.take(key) if self.limiter is not None else None
        if verdict is not None and not verdict.allowed:
            refused = respond.json(_RATE_LIMITED, 429)
            refused.headers.update(verdict.headers())
            return refused
        response: web.StreamResponse
        try:
            response = await handler(request)
        except BrokerError as exc:
            response = respond.json(wire.refusal(exc), exc.status)
        except BadRequest as exc:
            response = respond.error(exc.status, exc.code, exc.message)
        if verdict is not None:
            response.headers.update(verdict.headers())
        return response


_STATUSES = {s.value for s in http.HTTPStatus}


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
