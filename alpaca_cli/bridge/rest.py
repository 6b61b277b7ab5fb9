"""The REST half of the broker bridge.

alpaca-py's REST clients are blocking (`requests`), so every call runs on a
dedicated 4-thread pool through `run_in_executor`: the event loop (and with it
the streams, spinners and signal handling) never waits on a socket, and the
loop's default executor stays free for everything else.

Failures leave here as the project's own errors (`alpaca_cli.errors`), with
the contract's exit codes, and results as domain types (`alpaca_cli.domain`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import requests
from alpaca.common.exceptions import APIError
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import (
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    StopLimitOrderRequest,
    StopOrderRequest,
    TrailingStopOrderRequest,
)
from requests.adapters import HTTPAdapter

from alpaca_cli.bridge import mapping
from alpaca_cli.config import Connection
from alpaca_cli.domain import Account, Bar, Clock, Order, OrderRequest, Position, Snapshot
from alpaca_cli.errors import (
    AuthError,
    BrokerRejected,
    CliError,
    UnreachableError,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

REST_WORKERS = 4
PAGE_LIMIT = 500  # Alpaca's cap per GET /v2/orders
HTTP_TIMEOUT = (5.0, 30.0)  # connect, read: the SDK itself sets none and could hang forever
TRANSIENT_RETRIES = 2  # for idempotent reads only, on 5xx and dropped connections
BUYING_POWER_CODE = 40310000


class _TimeoutAdapter(HTTPAdapter):
    def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = HTTP_TIMEOUT
        return super().send(request, **kwargs)


def _with_timeouts(client: Any) -> Any:
    adapter = _TimeoutAdapter()
    client._session.mount("http://", adapter)
    client._session.mount("https://", adapter)
    return client


def _api_message(error: APIError) -> str:
    try:
        return str(error.message)
    except (ValueError, KeyError, TypeError):
        return str(error)[:200] or "no message"


def translate(error: BaseException, what: str) -> CliError:
    """Map an SDK or transport failure onto the contract's error classes."""
    if isinstance(error, APIError):
        status = error.status_code or 0
        message = _api_message(error)
        code: int | None
        try:
            code = int(error.code)
        except (ValueError, KeyError, TypeError):
            code = None
        if status == 401 or (status == 403 and code != BUYING_POWER_CODE and "buying power" not in message):
            return AuthError(
                f"{what}: the broker refused the credentials ({status} {message})",
                hint="check APCA_API_KEY_ID / APCA_API_SECRET_KEY and paper vs live",
            )
        if status == 429:
            return UnreachableError(f"{what}: rate limited by the broker after retries ({message})")
        if status >= 500 or status == 0:
            return UnreachableError(f"{what}: the broker failed ({status} {message})", hint="try again later")
        return BrokerRejected(f"{what}: {message}", status=status, code=code)
    if isinstance(error, requests.exceptions.Timeout):
        return UnreachableError(f"{what}: the broker did not answer in time")
    if isinstance(error, requests.exceptions.ConnectionError):
        return UnreachableError(f"{what}: cannot reach the broker", hint="is the URL right and the service up?")
    return UnreachableError(f"{what}: {type(error).__name__}: {error}")


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, APIError):
        return (error.status_code or 0) >= 500
    return isinstance(error, requests.exceptions.ConnectionError | requests.exceptions.Timeout)


def sdk_order_request(request: OrderRequest) -> Any:
    """Our validated order request -> the SDK's request model for that order type."""
    fields: dict[str, Any] = {
        "symbol": request.symbol,
        "side": request.side,
        "time_in_force": request.time_in_force,
        "client_order_id": request.client_order_id,
        "extended_hours": request.extended_hours or None,
    }
    if request.qty is not None:
        fields["qty"] = float(request.qty) if request.qty != request.qty.to_integral() else int(request.qty)
    if request.notional is not None:
        fields["notional"] = float(request.notional)
    kinds: dict[str, tuple[type, tuple[str, ...]]] = {
        "market": (MarketOrderRequest, ()),
        "limit": (LimitOrderRequest, ("limit_price",)),
        "stop": (StopOrderRequest, ("stop_price",)),
        "stop_limit": (StopLimitOrderRequest, ("limit_price", "stop_price")),
        "trailing_stop": (TrailingStopOrderRequest, ("trail_percent", "trail_price")),
    }
    model, extra = kinds[request.type]
    for name in extra:
        value = getattr(request, name)
        if value is not None:
            fields[name] = float(value)
    return model(**{k: v for k, v in fields.items() if v is not None})


def _submitted_at(raw: Any) -> datetime | None:
    """An order's `submitted_at` straight from the wire (as `mapping.order` reads it), for paging."""
    return mapping.to_datetime(raw.get("submitted_at")) or mapping.to_datetime(raw.get("created_at"))


class RestBridge:
    """Blocking SDK clients behind an executor; results as domain types."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._executor = ThreadPoolExecutor(max_workers=REST_WORKERS, thread_name_prefix="alpaca-rest")
        secret = connection.secret.get_secret_value()
        paper = not connection.is_live
        self._trading = _with_timeouts(
            TradingClient(connection.key_id, secret, paper=paper, raw_data=True, url_override=connection.trading_url)
        )
        # Order entry gets its own client with the SDK's blind retry switched off:
        # a POST retried on 429/504 could place a second order. `submit` decides
        # what to do after a failure (look the order up by its client id first).
        self._orders = _with_timeouts(
            TradingClient(connection.key_id, secret, paper=paper, raw_data=True, url_override=connection.trading_url)
        )
        self._orders._retry = 0
        self._data = _with_timeouts(
            StockHistoricalDataClient(connection.key_id, secret, raw_data=True, url_override=connection.data_url)
        )

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self, what: str, fn: Callable[..., T], *args: Any, idempotent: bool = True) -> T:
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            try:
                return await loop.run_in_executor(self._executor, functools.partial(fn, *args))
            except Exception as error:
                if idempotent and attempt < TRANSIENT_RETRIES and _is_transient(error):
                    attempt += 1
                    log.debug("%s failed (%s), retry %d", what, type(error).__name__, attempt)
                    await asyncio.sleep(0.2 * attempt)
                    continue
                raise translate(error, what) from error

    # -- account and market ---------------------------------------------------------------

    async def account(self) -> Account:
        return mapping.account(await self._run("get account", self._trading.get_account))

    async def clock(self) -> Clock:
        return mapping.clock(await self._run("get clock", self._trading.get_clock))

    async def positions(self) -> list[Position]:
        raw = await self._run("list positions", self._trading.get_all_positions)
        return [mapping.position(item) for item in raw]

    # -- orders ---------------------------------------------------------------------------

    async def order(self, order_id: str) -> Order:
        return mapping.order(await self._run(f"get order {order_id}", self._trading.get_order_by_id, order_id))

    async def order_by_client_id(self, client_order_id: str, *, sdk_retry: bool = True) -> Order | None:
        """The order with this client id, or None when the broker has none.

        `sdk_retry=False` skips the SDK's 3 s sleeps on 429/504: for callers
        that back off on their own (submit's recovery after a failed POST).
        """
        client = self._trading if sdk_retry else self._orders
        try:
            raw = await self._run(
                f"get order by client id {client_order_id}",
                client.get_order_by_client_id,
                client_order_id,
            )
        except BrokerRejected as rejected:
            if rejected.status == 404:
                return None
            raise
        return mapping.order(raw)

    async def orders(
        self,
        status: str = "open",
        *,
        symbols: Iterable[str] | None = None,
        limit: int | None = None,
        after: datetime | None = None,
    ) -> list[Order]:
        """Every order of `status` (submitted after `after`, exclusive), paging past the 500-per-request cap.

        Oldest first; with `limit`, only the newest `limit` of them (paging stops once it has those).

        Pages newest first and moves `until` back to the oldest `submitted_at`
        seen. `until` is exclusive, so it is set one microsecond later than that
        time and ids already seen are skipped: orders sharing a timestamp at a
        page boundary are neither lost nor counted twice.

        Paging is sequential by nature, so the next page is requested as soon
        as its `until` is known from the raw page, and the current page is
        mapped while that request is in flight (10,000 orders: 20 pages).
        """
        seen: dict[str, Order] = {}
        wanted = list(symbols) if symbols else None

        def fetch(until: datetime | None) -> asyncio.Future[Any]:
            request = GetOrdersRequest(
                status=QueryOrderStatus(status),
                limit=PAGE_LIMIT,
                direction="desc",
                after=after,
                until=until,
                symbols=wanted,
            )
            return asyncio.ensure_future(self._run("list orders", self._trading.get_orders, request))

        pending: asyncio.Future[Any] | None = fetch(None)
        try:
            while pending is not None:
                page = await pending
                pending = None
                fresh = [raw for raw in page if str(raw["id"]) not in seen]
                oldest = min(filter(None, map(_submitted_at, page)), default=None)
                wanted_more = limit is None or len(seen) + len(fresh) < limit
                if len(page) >= PAGE_LIMIT and fresh and oldest is not None and wanted_more:
                    pending = fetch(oldest + timedelta(microseconds=1))
                for raw in fresh:
                    item = mapping.order(raw)
                    seen[item.id] = item
        finally:
            if pending is not None:  # only when mapping failed: do not leave the request dangling
                pending.cancel()
        result = sorted(seen.values(), key=lambda o: (o.submitted_at, o.id))
        return result if limit is None else result[max(len(result) - limit, 0) :]

    async def submit_order(self, request: OrderRequest) -> Order:
        """POST one order, exactly once: no retry here, ever (see `__init__`)."""
        model = sdk_order_request(request)
        raw = await self._run(
            f"submit {request.side} {request.symbol}", self._orders.submit_order, model, idempotent=False
        )
        return mapping.order(raw)

    async def cancel_order(self, order_id: str) -> None:
        await self._run(f"cancel order {order_id}", self._orders.cancel_order_by_id, order_id)

    async def cancel_all(self) -> list[dict[str, Any]]:
        """Cancel every open order; the broker's per-order answers (`id`, `status`)."""
        raw = await self._run("cancel all orders", self._orders.cancel_orders, idempotent=False)
        return [{"id": str(item.get("id")), "status": int(item.get("status", 0))} for item in raw or []]

    # -- market data ----------------------------------------------------------------------

    async def bars(
        self, symbols: list[str], start: datetime, end: datetime | None = None, *, feed: str = "iex"
    ) -> list[Bar]:
        request = StockBarsRequest(
            symbol_or_symbols=symbols,
            timeframe=TimeFrame(1, TimeFrameUnit.Minute),
            start=start,
            end=end,
            feed=feed,
        )
        raw = await self._run("get bars", self._data.get_stock_bars, request)
        return [mapping.bar(item, symbol) for symbol, items in (raw or {}).items() for item in items]

    # -- the snapshot ---------------------------------------------------------------------

    async def snapshot(self, believed_open: Iterable[str] = ()) -> Snapshot:
        """The broker's truth now: account, positions, every open order, and the
        final state of each order we believed open that the broker no longer lists.

        The three listings are fetched concurrently; the follow-up lookups too.
        """
        started = time.time()
        account, positions, open_orders = await asyncio.gather(self.account(), self.positions(), self.orders("open"))
        listed = {o.id for o in open_orders}
        missing = [order_id for order_id in believed_open if order_id not in listed]
        finals = await asyncio.gather(*(self.order(order_id) for order_id in missing))
        log.debug("snapshot: %d open, %d looked up, %.2fs", len(open_orders), len(finals), time.time() - started)
        return Snapshot(
            account=account,
            positions=tuple(positions),
            open_orders=tuple(open_orders),
            taken_at=datetime.fromtimestamp(started, UTC),
            final_orders=tuple(finals),
        )
