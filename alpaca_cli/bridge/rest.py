"""The REST half of the broker bridge.

alpaca-py's REST clients are blocking (`requests`), so every call runs on a
dedicated 4-thread pool through `run_in_executor`: the event loop (and with it
the streams, spinners and signal handling) never waits on a socket, and the
loop's default executor stays free for everything else.

Reads (account, clock, positions, orders) go through alpaca-py's base
`RESTClient` with the very routes and parameters `TradingClient` sends: with
raw data that is all `TradingClient` does for them, and importing it (the
`alpaca.trading` package) builds some hundred pydantic models of requests,
answers and the stream's, about 45 ms that a command only reading never uses.
`TradingClient` is loaded on the first write (or calendar and asset call),
whose request models check what we send, and shares the same session.

Failures leave here as the project's own errors (`alpaca_cli.errors`), with
the contract's exit codes, and results as domain types (`alpaca_cli.domain`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from alpaca.common.rest import RESTClient
from alpaca.common.utils import validate_symbol_or_asset_id, validate_uuid_id_param

from alpaca_cli.bridge import mapping, transport
from alpaca_cli.bridge.translate import translate
from alpaca_cli.config import Connection
from alpaca_cli.domain import (
    Account,
    Activity,
    Asset,
    Bar,
    CalendarDay,
    Clock,
    Closing,
    MarketSnapshot,
    Order,
    OrderChanges,
    OrderRequest,
    Position,
    Snapshot,
)
from alpaca_cli.errors import BrokerRejected
from alpaca_cli.symbols import is_crypto

log = logging.getLogger(__name__)
T = TypeVar("T")

REST_WORKERS = 4
PAGE_LIMIT = 500  # Alpaca's cap per GET /v2/orders
ACTIVITY_PAGE = 100  # Alpaca's cap per GET /v2/account/activities (without a date)
FEW_LOOKUPS = 3  # vanished orders looked up one by one; more are found in the closed listing
DATA_PAGE = 10_000  # Alpaca's cap per page of historical market data
ABORT_GRACE = 2.0  # seconds an aborted call's worker gets to notice before the bridge moves on


def sdk_order_request(request: OrderRequest) -> Any:
    """Our validated order request -> the SDK's request model for that order type."""
    from alpaca.trading.requests import (
        LimitOrderRequest,
        MarketOrderRequest,
        StopLimitOrderRequest,
        StopLossRequest,
        StopOrderRequest,
        TakeProfitRequest,
        TrailingStopOrderRequest,
    )

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
    if request.order_class != "simple":
        fields["order_class"] = request.order_class
        if request.take_profit is not None:
            fields["take_profit"] = TakeProfitRequest(limit_price=float(request.take_profit))
        if request.stop_loss is not None:
            limit = None if request.stop_loss_limit is None else float(request.stop_loss_limit)
            fields["stop_loss"] = StopLossRequest(stop_price=float(request.stop_loss), limit_price=limit)
    return model(**{k: v for k, v in fields.items() if v is not None})


class Submitted(Protocol):
    """What `snapshot` needs of an order believed open: when it was submitted."""

    @property
    def submitted_at(self) -> datetime: ...


class RestBridge:
    """Blocking SDK clients behind an executor; results as domain types.

    Every call goes through `_run`: one `transport.Call` with the connection's
    deadline, run on the pool, aborted by the loop when the deadline passes, its
    answer mapped (and checked) on the worker, its failure translated once.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.deadline = connection.deadline
        self._executor = ThreadPoolExecutor(max_workers=REST_WORKERS, thread_name_prefix="alpaca-rest")
        self._calls: set[transport.Call] = set()
        self.budget = transport.RequestBudget()
        self._reads = transport.mount(
            RESTClient(
                connection.trading_url,
                connection.key_id,
                connection.secret.get_secret_value(),
                api_version="v2",
                sandbox=not connection.is_live,
                raw_data=True,
            ),
            self.budget,
        )
        self._data: dict[str, Any] = {}  # the historical-data clients, by API version, made on first use

    @functools.cached_property
    def _trading(self) -> Any:
        """alpaca-py's `TradingClient`, made on first use, sending through the readers' session."""
        from alpaca.trading.client import TradingClient

        c = self.connection
        client = TradingClient(
            c.key_id, c.secret.get_secret_value(), paper=not c.is_live, raw_data=True, url_override=c.trading_url
        )
        client._session.close()
        client._session = self._reads._session  # already routed through the budget and the deadline
        client._retry = 0
        return client

    def close(self) -> None:
        """Abort calls under way (their threads end at once) and shut the pool."""
        for call in list(self._calls):
            call.abort()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _run(
        self,
        what: str,
        fn: Callable[..., Any],
        *args: Any,
        parse: Callable[[Any], T],
        retry: bool = True,
        data: bool = False,
        lookup: bool = False,
    ) -> T:
        """`parse(fn(*args))` on the pool, within the deadline; failures as the contract's errors.

        `retry=False` for anything that must not be sent twice blindly (an
        order): the caller decides after looking. `data` marks calls to the
        market-data host (for the hint naming which base URL is wrong);
        `lookup` calls that fetch one order, whose 404 may mean "no such order".
        """
        call = transport.Call(what, self.deadline, lookup=lookup)
        self._calls.add(call)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(
            self._executor, functools.partial(call.run, lambda: parse(fn(*args)), retry=retry)
        )
        try:
            # `asyncio.wait`, not `wait_for`: Python 3.11's `wait_for` drops a cancellation that
            # arrives as the call completes, and a stopped `tail` then ran on (1 start in 10).
            try:
                done, _ = await asyncio.wait({future}, timeout=call.remaining())
            except asyncio.CancelledError:
                call.abort()
                future.add_done_callback(_retrieve)  # the worker's own error is ours to drop now
                raise
            if not done:
                call.abort()
                future.add_done_callback(_retrieve)
                await asyncio.wait({future}, timeout=ABORT_GRACE)
                raise transport.DeadlineExceeded from None
            return future.result()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            sandbox = self.connection.environment == "sandbox"
            raise translate(error, call, self._base_setting(data), sandbox=sandbox) from error
        finally:
            self._calls.discard(call)

    def _base_setting(self, data: bool) -> str:
        if self.connection.environment == "sandbox":
            return "the sandbox URL (--sandbox / ALPACA_CLI_SANDBOX_URL)"
        return "APCA_API_DATA_URL" if data else "APCA_API_BASE_URL"

    # -- account and market ---------------------------------------------------------------

    async def account(self) -> Account:
        return await self._run("get account", self._reads.get, "/account", parse=mapping.account)

    async def clock(self) -> Clock:
        return await self._run("get clock", self._reads.get, "/clock", parse=mapping.clock)

    async def calendar(self, start: date | None = None, end: date | None = None) -> list[CalendarDay]:
        from alpaca.trading.requests import GetCalendarRequest

        request = GetCalendarRequest(start=start, end=end) if start or end else None
        return await self._run("get calendar", self._trading.get_calendar, request, parse=mapping.calendar)

    async def asset(self, symbol: str) -> Asset | None:
        """The listed asset `symbol`, or None when the broker has no such asset."""
        try:
            return await self._run(
                f"get asset {symbol}", self._trading.get_asset, symbol, parse=mapping.asset, lookup=True
            )
        except BrokerRejected as rejected:
            if rejected.status == 404:
                return None
            raise

    async def assets(self) -> list[Asset]:
        """Every active US equity the broker lists (one request: Alpaca does not page this route)."""
        from alpaca.trading.enums import AssetClass, AssetStatus
        from alpaca.trading.requests import GetAssetsRequest

        request = GetAssetsRequest(status=AssetStatus.ACTIVE, asset_class=AssetClass.US_EQUITY)
        return await self._run("list assets", self._trading.get_all_assets, request, parse=mapping.assets)

    async def activities(
        self,
        types: Iterable[str] | None = None,
        *,
        after: datetime | None = None,
        until: datetime | None = None,
        on: date | None = None,
    ) -> list[Activity]:
        """Every account activity of `types` in the range (or on day `on`), oldest first.

        alpaca-py's trading client has no call for this route, so it goes
        through the client's own `get` (same session, budget and deadline), and
        pages with `page_token` (the last id seen), newest first, 100 at a time.
        """
        params: dict[str, Any] = {"direction": "desc", "page_size": ACTIVITY_PAGE}
        if types:
            params["activity_types"] = ",".join(types)
        if after is not None:
            params["after"] = after.isoformat()
        if until is not None:
            params["until"] = until.isoformat()
        if on is not None:
            params["date"] = on.isoformat()
        found: list[Activity] = []
        seen: set[str] = set()
        while True:
            page = await self._run(
                "list account activities",
                self._reads.get,
                "/account/activities",
                dict(params),
                parse=mapping.activities,
            )
            fresh = [item for item in page if item.id not in seen]
            found += fresh
            seen.update(item.id for item in fresh)
            if len(page) < ACTIVITY_PAGE or not fresh:
                break
            params["page_token"] = page[-1].id
        found.reverse()
        return found

    async def positions(self) -> list[Position]:
        return await self._run("list positions", self._reads.get, "/positions", parse=mapping.positions)

    async def position(self, symbol: str) -> Position | None:
        """The open position in `symbol`, or None when the broker says there is none."""
        try:
            return await self._run(
                f"get position {symbol}",
                self._reads.get,
                f"/positions/{validate_symbol_or_asset_id(symbol)}",
                parse=mapping.position,
                lookup=True,
            )
        except BrokerRejected as rejected:
            if rejected.status == 404:
                return None
            raise

    async def close_position(
        self, symbol: str, *, qty: Decimal | None = None, percentage: Decimal | None = None
    ) -> Order:
        """Close (part of) a position with a market order, exactly once: never retried here
        (`positions.close` looks before resending)."""
        from alpaca.trading.requests import ClosePositionRequest

        options = None
        if qty is not None or percentage is not None:
            options = ClosePositionRequest(
                qty=None if qty is None else str(qty), percentage=None if percentage is None else str(percentage)
            )
        return await self._run(
            f"close position {symbol}",
            self._trading.close_position,
            symbol,
            options,
            parse=mapping.order,
            retry=False,
            lookup=True,  # Alpaca's "position not found" is a 404: not a wrong URL
        )

    async def close_all_positions(self, *, cancel_orders: bool = False) -> list[Closing]:
        """Close every position (first canceling open orders, if asked); the broker's answer per symbol."""
        return await self._run(
            "close all positions",
            self._trading.close_all_positions,
            cancel_orders,
            parse=mapping.closings,
            retry=False,
        )

    # -- orders ---------------------------------------------------------------------------

    async def order(self, order_id: str, *, nested: bool = False) -> Order:
        """One order by id; `nested` puts a bracket's, OCO's or OTO's exits in its `legs`."""
        return await self._run(
            f"get order {order_id}",
            self._reads.get,
            f"/orders/{validate_uuid_id_param(order_id, 'order_id')}",
            {"nested": True} if nested else {},
            parse=mapping.order,
            lookup=True,
        )

    async def order_if_known(self, order_id: str) -> Order | None:
        """One order by id, or None when the broker says it has no such order (a reset paper
        account, an order of another account): for the snapshot, that is drift to report."""
        try:
            return await self.order(order_id)
        except BrokerRejected as rejected:
            if rejected.status == 404:
                return None
            raise

    async def order_by_client_id(self, client_order_id: str) -> Order | None:
        """The order with this client id, or None when the broker says it has none."""
        try:
            return await self._run(
                f"get order by client id {client_order_id}",
                self._reads.get,
                "/orders:by_client_order_id",
                {"client_order_id": client_order_id},
                parse=mapping.order,
                lookup=True,
            )
        except BrokerRejected as rejected:
            if rejected.status == 404:
                return None
            raise

    async def orders(
        self,
        status: str = "open",
        *,
        symbols: Iterable[str] | None = None,
        limit: int | None = None,
        after: datetime | None = None,
        until: datetime | None = None,
        side: str | None = None,
        nested: bool = False,
    ) -> list[Order]:
        """Every order of `status` submitted between `after` and `until` (both exclusive), paging past the
        500-per-request cap; `side` and `nested` as the broker has them (nested: a group's exits in `legs`).

        Oldest first; with `limit`, only the newest `limit` of them (paging stops once it has those).

        Pages newest first and moves `until` back to the oldest `submitted_at`
        seen. `until` is exclusive, so it is set one microsecond later than that
        time and ids already seen are skipped: orders sharing a timestamp at a
        page boundary are neither lost nor counted twice.
        """
        seen: dict[str, Order] = {}
        size = PAGE_LIMIT if limit is None else max(1, min(limit, PAGE_LIMIT))
        query: dict[str, Any] = {"status": status, "limit": size, "direction": "desc"}
        wanted = list(symbols or ())
        if wanted:
            query["symbols"] = ",".join(wanted)
        if side is not None:
            query["side"] = side
        if nested:
            query["nested"] = True  # sent as the SDK's request model sends it
        if after is not None:
            query["after"] = _wire_time(after)
        while True:
            if until is not None:
                query["until"] = _wire_time(until)
            page = await self._run("list orders", self._reads.get, "/orders", dict(query), parse=mapping.orders)
            fresh = [item for item in page if item.id not in seen]
            seen.update((item.id, item) for item in fresh)
            if len(page) < size or not fresh or (limit is not None and len(seen) >= limit):
                break
            until = min(item.submitted_at for item in page) + timedelta(microseconds=1)
        result = sorted(seen.values(), key=lambda o: (o.submitted_at, o.id))
        return result if limit is None else result[max(len(result) - limit, 0) :]

    async def submit_order(self, request: OrderRequest) -> Order:
        """POST one order, exactly once: never retried here (`orders.place` looks before resending)."""
        model = sdk_order_request(request)
        return await self._run(
            f"submit {request.side} {request.symbol}",
            self._trading.submit_order,
            model,
            parse=mapping.order,
            retry=False,
        )

    async def replace_order(self, order_id: str, changes: OrderChanges) -> Order:
        """PATCH one order, exactly once: never retried here (`replacing.replace` looks before resending)."""
        from alpaca.trading.requests import ReplaceOrderRequest

        fields: dict[str, Any] = {"client_order_id": changes.client_order_id, "time_in_force": changes.time_in_force}
        if changes.qty is not None:
            fields["qty"] = int(changes.qty)
        for name in ("limit_price", "stop_price", "trail"):
            value = getattr(changes, name)
            if value is not None:
                fields[name] = float(value)
        return await self._run(
            f"replace order {order_id}",
            self._trading.replace_order_by_id,
            order_id,
            ReplaceOrderRequest(**{k: v for k, v in fields.items() if v is not None}),
            parse=mapping.order,
            retry=False,
        )

    async def cancel_order(self, order_id: str) -> None:
        await self._run(
            f"cancel order {order_id}", self._trading.cancel_order_by_id, order_id, parse=_nothing, lookup=True
        )

    async def cancel_all(self) -> list[dict[str, Any]]:
        """Cancel every open order; the broker's per-order answers (`id`, `status`)."""
        return await self._run(
            "cancel all orders", self._trading.cancel_orders, parse=mapping.cancellations, retry=False
        )

    # -- market data ----------------------------------------------------------------------

    def _data_client(self, crypto: bool) -> Any:
        """The historical-data client of stocks (`/v2`) or crypto (`/v1beta3`), made on first use.

        alpaca-py's own data clients import its market-data models, and those
        import pandas; the bridge's base REST client sends the same requests
        (same headers, same session mount) without it, so `bars` and `quote`
        start as light as the trading commands.
        """
        from alpaca.common.rest import RESTClient

        version = "v1beta3" if crypto else "v2"
        client = self._data.get(version)
        if client is None:
            c = self.connection
            client = RESTClient(c.data_url, c.key_id, c.secret.get_secret_value(), api_version=version, raw_data=True)
            self._data[version] = transport.mount(client, self.budget)
        return client

    async def bar_pages(
        self,
        symbols: Iterable[str],
        start: datetime,
        end: datetime | None = None,
        *,
        timeframe: str = "1Min",
        feed: str = "iex",
    ) -> AsyncIterator[list[Bar]]:
        """Historical bars of the symbols from `start` to `end` (both inclusive, as at Alpaca), a page at a time.

        One paged request covers all the stock symbols, one all the crypto
        pairs: the cost grows with pages, not with symbols (a gap of 100
        symbols is one request per 10,000 bars). Within a page the bars come
        by symbol, oldest first, as the broker sends them.
        """
        wanted = list(dict.fromkeys(symbols))
        for crypto in (False, True):
            group = [s for s in wanted if is_crypto(s) == crypto]
            if not group:
                continue
            params: dict[str, Any] = {
                "symbols": ",".join(group),
                "timeframe": timeframe,
                "start": _wire_time(start),
                "limit": DATA_PAGE,
            }
            if end is not None:
                params["end"] = _wire_time(end)
            if not crypto:
                params["feed"] = feed
            path = "/crypto/us/bars" if crypto else "/stocks/bars"
            client = self._data_client(crypto)
            seen: set[str] = set()
            while True:
                page, token = await self._run(
                    "get bars", client.get, path, dict(params), parse=mapping.bar_page, data=True
                )
                yield page
                if token is None or token in seen:  # a token seen before would page forever
                    break
                seen.add(token)
                params["page_token"] = token

    async def bars(
        self,
        symbols: Iterable[str],
        start: datetime,
        end: datetime | None = None,
        *,
        timeframe: str = "1Min",
        feed: str = "iex",
    ) -> list[Bar]:
        """Every bar of `bar_pages`, all pages read."""
        found: list[Bar] = []
        async for page in self.bar_pages(symbols, start, end, timeframe=timeframe, feed=feed):
            found += page
        return found

    async def market_snapshots(self, symbols: Iterable[str], *, feed: str = "iex") -> list[MarketSnapshot]:
        """The latest trade, quote and minute bar of each symbol (one request for the stocks, one for crypto)."""
        wanted = list(dict.fromkeys(symbols))
        found: list[MarketSnapshot] = []
        for crypto in (False, True):
            group = [s for s in wanted if is_crypto(s) == crypto]
            if not group:
                continue
            params: dict[str, Any] = {"symbols": ",".join(group)}
            if not crypto:
                params["feed"] = feed
            path = "/crypto/us/snapshots" if crypto else "/stocks/snapshots"
            client = self._data_client(crypto)
            found += await self._run("get snapshots", client.get, path, params, parse=mapping.snapshots, data=True)
        order = {symbol: i for i, symbol in enumerate(wanted)}
        return sorted(found, key=lambda snap: order.get(snap.symbol, len(order)))

    # -- the snapshot ---------------------------------------------------------------------

    async def snapshot(
        self, believed_open: Mapping[str, Submitted] | None = None, *, closed_since: datetime | None = None
    ) -> Snapshot:
        """The broker's truth now: account, positions, every open order, and the
        final state of each order we believed open (id -> its record) that the
        broker no longer lists; with `closed_since`, also every order closed
        since then (`tail` recovers orders that opened and closed while it was away).

        The three listings are fetched concurrently. The final states come from
        the closed orders submitted since the oldest of them (a few pages, not a
        request per order: Alpaca allows about 200 requests a minute), in the
        same listing as `closed_since`'s; only the few a listing cannot place (or
        a handful in all) are looked up one by one, and none past the first few
        when the broker knows none of those.
        """
        started = time.time()
        account, positions, open_orders = await _all(self.account(), self.positions(), self.orders("open"))
        listed = {o.id for o in open_orders}
        missing = {oid: record.submitted_at for oid, record in (believed_open or {}).items() if oid not in listed}
        since = closed_since
        if len(missing) > FEW_LOOKUPS:
            oldest = min(missing.values()) - timedelta(microseconds=1)
            since = oldest if since is None else min(since, oldest)
        closed = await self.orders("closed", after=since) if since is not None else []
        finals = [o for o in closed if o.id in missing]
        placed = {o.id for o in finals}
        # What the listing cannot place is looked up one by one, but a few first: when none of
        # those is known either (a reset paper account forgets every order), neither are the
        # rest, and `diff` reports each as order_missing_at_broker without a request apiece.
        unplaced = [oid for oid in missing if oid not in placed]
        looked_up = await _all(*(self.order_if_known(oid) for oid in unplaced[:FEW_LOOKUPS]))
        if any(o is not None for o in looked_up):
            looked_up += await _all(*(self.order_if_known(oid) for oid in unplaced[FEW_LOOKUPS:]))
        finals += [o for o in looked_up if o is not None]
        if closed_since is not None:
            finals += [o for o in closed if o.is_final and o.id not in missing and o.id not in listed]
        log.debug("snapshot: %d open, %d final, %.2fs", len(open_orders), len(finals), time.time() - started)
        return Snapshot(
            account=account,
            positions=tuple(positions),
            open_orders=tuple(open_orders),
            taken_at=datetime.fromtimestamp(started, UTC),
            final_orders=tuple(finals),
        )


def _wire_time(moment: datetime) -> str:
    """A time as Alpaca's trading and data APIs take it: RFC 3339 in UTC with `Z` (naive is UTC)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _nothing(raw: Any) -> None:
    """The parse of an answer whose body carries nothing the tool needs (204 No Content)."""


async def _all(*calls: Awaitable[Any]) -> list[Any]:
    """`asyncio.gather`, but the first failure cancels the rest (their calls are aborted, not left running)."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
