"""The market-data REST routes, stocks (`/v2/stocks`) and crypto (`/v1beta3/crypto/us`).

Historical bars, trades and quotes, latest bars, trades and quotes, and
snapshots, one symbol or many, as Alpaca's data API shapes them (and
alpaca-py's `StockHistoricalDataClient` and `CryptoHistoricalDataClient`
parse them). Every answer comes from the engine's one bar series (see
`history`): the bars the data stream sent are the `1Min` bars served here;
trades and quotes are derived from those bars (see `quotes`). Stocks trade in
the calendar's sessions (extended hours included, as IEX has them), crypto
around the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, time, timedelta
from typing import Any, Protocol

from aiohttp import web

from alpaca_cli.sandbox import assets, params, quotes, respond, wire
from alpaca_cli.sandbox.calendar import NEW_YORK
from alpaca_cli.sandbox.engine import PaperBroker
from alpaca_cli.sandbox.model import Bar
from alpaca_cli.sandbox.params import BadRequest

# The crypto locations Alpaca's data API knows; the sandbox serves one simulated market on each.
CRYPTO_LOCATIONS = ("us", "us-1", "eu-1")


class Host(Protocol):
    """What the routes read of the running sandbox (its `Sandbox`), at request time."""

    engine: PaperBroker

    def now(self) -> datetime: ...


def setup(app: web.Application, sandbox: Host) -> None:
    """Add the routes to `app`; they read `sandbox.engine` at request time (it survives resets)."""
    stocks = _Routes(sandbox, crypto=False)
    r = app.router
    r.add_get("/v2/stocks/bars", stocks.bars)
    r.add_get("/v2/stocks/{symbol}/bars", stocks.symbol_bars)
    r.add_get("/v2/stocks/bars/latest", stocks.latest_bars)
    r.add_get("/v2/stocks/{symbol}/bars/latest", stocks.latest_bar)
    r.add_get("/v2/stocks/trades/latest", stocks.latest_trades)
    r.add_get("/v2/stocks/{symbol}/trades/latest", stocks.latest_trade)
    r.add_get("/v2/stocks/quotes/latest", stocks.latest_quotes)
    r.add_get("/v2/stocks/{symbol}/quotes/latest", stocks.latest_quote)
    r.add_get("/v2/stocks/snapshots", stocks.snapshots)
    r.add_get("/v2/stocks/{symbol}/snapshot", stocks.snapshot)
    r.add_get("/v2/stocks/trades", stocks.trades)
    r.add_get("/v2/stocks/{symbol}/trades", stocks.symbol_trades)
    r.add_get("/v2/stocks/quotes", stocks.quotes)
    r.add_get("/v2/stocks/{symbol}/quotes", stocks.symbol_quotes)
    crypto = _Routes(sandbox, crypto=True)
    base = "/v1beta3/crypto/{loc:" + "|".join(CRYPTO_LOCATIONS) + "}"
    r.add_get(base + "/bars", crypto.bars)
    r.add_get(base + "/latest/bars", crypto.latest_bars)
    r.add_get(base + "/latest/trades", crypto.latest_trades)
    r.add_get(base + "/latest/quotes", crypto.latest_quotes)
    r.add_get(base + "/snapshots", crypto.snapshots)
    r.add_get(base + "/trades", crypto.trades)
    r.add_get(base + "/quotes", crypto.quotes)


def _symbols(request: web.Request) -> list[str]:
    found = params.symbol_list(request.query.get("symbols"))
    if not found:
        raise BadRequest("missing symbols", 400, 40010000)
    return found


def _sort(request: web.Request) -> int:
    """`sort=asc|desc` as a slice step: desc is newest first within the page, symbols still in order."""
    sort = request.query.get("sort", "asc").lower()
    if sort not in ("asc", "desc"):
        raise BadRequest(f"invalid sort: {sort}", 400, 40010000)
    return -1 if sort == "desc" else 1


class _Routes:
    """The data routes of one asset class: stocks (with a `feed`) or crypto pairs."""

    def __init__(self, sandbox: Host, *, crypto: bool) -> None:
        self._sandbox = sandbox
        self._crypto = crypto

    # ------------------------------------------------------------- sources

    def _check(self, request: web.Request) -> None:
        if not self._crypto:
            params.check_feed(request.query.get("feed"))

    def _known(self, symbol: str) -> bool:
        """Whether these routes serve `symbol`; a listed one asked for starts trading from now on
        (its walk), so a second look sees it move."""
        listed = assets.find(symbol)
        if listed is not None:
            if (listed.asset_class == "crypto") != self._crypto:
                return False
            self._sandbox.engine.price(symbol)
            return True
        return not self._crypto and symbol in self._sandbox.engine.symbols()

    def _minute_bars(self, symbol: str, start: datetime, end: datetime) -> Iterator[Bar]:
        engine, token = self._sandbox.engine, None
        while True:
            page = engine.bars([symbol], "1Min", start=start, end=end, limit=10000, page_token=token)
            yield from page.bars.get(symbol, [])
            token = page.next_page_token
            if token is None:
                return

    def _latest_bar(self, symbol: str) -> Bar | None:
        return self._sandbox.engine.latest_bar(symbol)

    def _latest_print(self, symbol: str) -> quotes.Print | None:
        engine = self._sandbox.engine
        recorded = engine.last_print(symbol)
        if recorded is not None:
            price, size, at = recorded
            return at, float(price), size
        bar = self._latest_bar(symbol)
        return None if bar is None else quotes.prints(symbol, bar, engine.history.span(bar.t))[-1]

    def _latest_trade(self, symbol: str) -> dict[str, Any] | None:
        found = self._latest_print(symbol)
        return None if found is None else quotes.trade(symbol, *found, crypto=self._crypto)

    def _latest_quote(self, symbol: str) -> dict[str, Any] | None:
        found = self._latest_print(symbol)
        return None if found is None else quotes.quote(symbol, found[0], found[1], crypto=self._crypto)

    def _latest_bar_json(self, symbol: str) -> dict[str, Any] | None:
        found = self._latest_bar(symbol)
        return None if found is None else wire.bar(found)

    def _snapshot(self, symbol: str) -> dict[str, Any] | None:
        if not self._known(symbol):
            return None
        now = self._sandbox.now()
        daily = self._sandbox.engine.bars([symbol], "1Day", start=now - timedelta(days=14), end=now, limit=10000)
        days = [wire.bar(b) for b in daily.bars.get(symbol, [])]
        return {
            "latestTrade": self._latest_trade(symbol),
            "latestQuote": self._latest_quote(symbol),
            "minuteBar": self._latest_bar_json(symbol),
            "dailyBar": days[-1] if days else None,
            "prevDailyBar": days[-2] if len(days) > 1 else None,
        }

    # ------------------------------------------------------------- latest

    def _many(self, request: web.Request, key: str, latest: Callable[[str], Any]) -> web.Response:
        self._check(request)
        found = {}
        for symbol in _symbols(request):
            value = latest(symbol) if self._known(symbol) else None
            if value is not None:
                found[symbol] = value
        return respond.json({key: found})

    def _one(self, request: web.Request, key: str, latest: Callable[[str], Any]) -> web.Response:
        self._check(request)
        symbol = request.match_info["symbol"].upper()
        value = latest(symbol) if self._known(symbol) else None
        if value is None:
            raise BadRequest(f"no {key} found for {symbol}", 404, 40410000)
        return respond.json({"symbol": symbol, key: value})

    async def latest_bars(self, request: web.Request) -> web.Response:
        return self._many(request, "bars", self._latest_bar_json)

    async def latest_bar(self, request: web.Request) -> web.Response:
        return self._one(request, "bar", self._latest_bar_json)

    async def latest_trades(self, request: web.Request) -> web.Response:
        return self._many(request, "trades", self._latest_trade)

    async def latest_trade(self, request: web.Request) -> web.Response:
        return self._one(request, "trade", self._latest_trade)

    async def latest_quotes(self, request: web.Request) -> web.Response:
        return self._many(request, "quotes", self._latest_quote)

    async def latest_quote(self, request: web.Request) -> web.Response:
        return self._one(request, "quote", self._latest_quote)

    async def snapshots(self, request: web.Request) -> web.Response:
        """Stocks: keyed by symbol at the top level; crypto: under `snapshots`, as Alpaca answers each."""
        self._check(request)
        found = {s: snap for s in _symbols(request) if (snap := self._snapshot(s)) is not None}
        return respond.json({"snapshots": found} if self._crypto else found)

    async def snapshot(self, request: web.Request) -> web.Response:
        self._check(request)
        symbol = request.match_info["symbol"].upper()
        found = self._snapshot(symbol)
        if found is None:
            raise BadRequest(f"no snapshot found for {symbol}", 404, 40410000)
        return respond.json({"symbol": symbol, **found})

    # ---------------------------------------------------------- historical

    def _history(self, request: web.Request, kind: str, symbols: list[str]) -> dict[str, Any]:
        self._check(request)
        step = _sort(request)
        q = request.query
        now = self._sandbox.now()
        end = min(params.instant(q.get("end"), "end") or now, now)
        midnight = datetime.combine(now.astimezone(NEW_YORK).date(), time(0), NEW_YORK)
        start = params.instant(q.get("start"), "start") or midnight
        result = quotes.history(
            kind,
            [s for s in symbols if self._known(s)],
            self._minute_bars,
            start,
            end,
            params.integer(q.get("limit"), "limit", 1000),
            q.get("page_token") or None,
            span=self._sandbox.engine.history.span,
            crypto=self._crypto,
        )
        result[kind] = {s: items[::step] for s, items in result[kind].items()}
        return result

    async def trades(self, request: web.Request) -> web.Response:
        return respond.json(self._history(request, "trades", _symbols(request)))

    async def quotes(self, request: web.Request) -> web.Response:
        return respond.json(self._history(request, "quotes", _symbols(request)))

    def _symbol_history(self, request: web.Request, kind: str) -> web.Response:
        symbol = request.match_info["symbol"].upper()
        result = self._history(request, kind, [symbol])
        body = {kind: result[kind].get(symbol, []), "symbol": symbol, "next_page_token": result["next_page_token"]}
        return respond.json(body)

    async def symbol_trades(self, request: web.Request) -> web.Response:
        return self._symbol_history(request, "trades")

    async def symbol_quotes(self, request: web.Request) -> web.Response:
        return self._symbol_history(request, "quotes")

    # ---------------------------------------------------------------- bars

    def _bars(self, request: web.Request, symbols: list[str]) -> dict[str, Any]:
        """Bars of the one series (see `history`), paged with `page_token`."""
        self._check(request)
        step = _sort(request)
        q = request.query
        page = self._sandbox.engine.bars(
            symbols,
            timeframe=q.get("timeframe", ""),
            start=params.instant(q.get("start"), "start"),
            end=params.instant(q.get("end"), "end"),
            limit=params.integer(q.get("limit"), "limit", 1000),
            page_token=q.get("page_token") or None,
        )
        bars = {s: [wire.bar(b) for b in found[::step]] for s, found in page.bars.items()}
        return {"bars": bars, "next_page_token": page.next_page_token}

    async def bars(self, request: web.Request) -> web.Response:
        return respond.json(self._bars(request, _symbols(request)))

    async def symbol_bars(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"].upper()
        result = self._bars(request, [symbol])
        return respond.json(
            {"bars": result["bars"].get(symbol, []), "symbol": symbol, "next_page_token": result["next_page_token"]}
        )
