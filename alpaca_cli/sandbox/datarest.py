"""The market-data REST routes: historical bars, trades and quotes, latest bars, trades and quotes,
and snapshots, one symbol or many, as Alpaca's data API shapes them.

Every answer is derived from the engine's price walk (see `quotes`): a symbol
that printed since the sandbox started answers from its recorded prints, any
other listed symbol from the deterministic history before, so nothing is
invented outside the calendar's sessions (extended hours included, as IEX has them).
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

# How far back a latest bar, trade or quote is looked for (a long weekend plus a holiday).
_LOOKBACK_DAYS = 7


class Host(Protocol):
    """What the routes read of the running sandbox (its `Sandbox`), at request time."""

    engine: PaperBroker

    def now(self) -> datetime: ...


def setup(app: web.Application, sandbox: Host) -> None:
    """Add the routes to `app`; they read `sandbox.engine` at request time (it survives resets)."""
    routes = _Routes(sandbox)
    r = app.router
    r.add_get("/v2/stocks/bars", routes.bars)
    r.add_get("/v2/stocks/{symbol}/bars", routes.symbol_bars)
    r.add_get("/v2/stocks/bars/latest", routes.latest_bars)
    r.add_get("/v2/stocks/{symbol}/bars/latest", routes.latest_bar)
    r.add_get("/v2/stocks/trades/latest", routes.latest_trades)
    r.add_get("/v2/stocks/{symbol}/trades/latest", routes.latest_trade)
    r.add_get("/v2/stocks/quotes/latest", routes.latest_quotes)
    r.add_get("/v2/stocks/{symbol}/quotes/latest", routes.latest_quote)
    r.add_get("/v2/stocks/snapshots", routes.snapshots)
    r.add_get("/v2/stocks/{symbol}/snapshot", routes.snapshot)
    r.add_get("/v2/stocks/trades", routes.trades)
    r.add_get("/v2/stocks/{symbol}/trades", routes.symbol_trades)
    r.add_get("/v2/stocks/quotes", routes.quotes)
    r.add_get("/v2/stocks/{symbol}/quotes", routes.symbol_quotes)


def _check_feed(request: web.Request) -> None:
    params.check_feed(request.query.get("feed"))


def _symbols(request: web.Request) -> list[str]:
    found = params.symbol_list(request.query.get("symbols"))
    if not found:
        raise BadRequest("missing symbols", 400, 40010000)
    return found


class _Routes:
    def __init__(self, sandbox: Host) -> None:
        self._sandbox = sandbox

    # ------------------------------------------------------------- sources

    def _known(self, symbol: str) -> bool:
        return assets.find(symbol) is not None or symbol in self._sandbox.engine.symbols()

    def _minute_bars(self, symbol: str, start: datetime, end: datetime) -> Iterator[Bar]:
        engine, token = self._sandbox.engine, None
        while True:
            page = engine.bars([symbol], "1Min", start=start, end=end, limit=10000, page_token=token)
            yield from page.bars.get(symbol, [])
            token = page.next_page_token
            if token is None:
                return

    def _last_bar(self, symbol: str, timeframe: str, lookback: timedelta) -> Bar | None:
        """The latest bar of `timeframe` within `lookback`, searched a day at a time from now."""
        now = self._sandbox.now()
        for days in range(lookback.days):
            end = now - timedelta(days=days)
            page = self._sandbox.engine.bars([symbol], timeframe, start=end - timedelta(days=1), end=end, limit=10000)
            found = page.bars.get(symbol)
            if found:
                return found[-1]
        return None

    def _latest_bar(self, symbol: str) -> dict[str, Any] | None:
        """The minute of the latest prints: recorded ones, else the history's last minute."""
        engine = self._sandbox.engine
        if engine.last_print(symbol) is not None:
            found = engine.latest_bar(symbol)
        else:
            found = self._last_bar(symbol, "1Min", timedelta(days=_LOOKBACK_DAYS))
        return None if found is None else wire.bar(found)

    def _latest_print(self, symbol: str) -> quotes.Print | None:
        recorded = self._sandbox.engine.last_print(symbol)
        if recorded is not None:
            price, size, at = recorded
            return at, float(price), size
        bar = self._last_bar(symbol, "1Min", timedelta(days=_LOOKBACK_DAYS))
        return None if bar is None else quotes.prints(symbol, bar)[-1]

    def _latest_trade(self, symbol: str) -> dict[str, Any] | None:
        found = self._latest_print(symbol)
        return None if found is None else quotes.trade(symbol, *found)

    def _latest_quote(self, symbol: str) -> dict[str, Any] | None:
        found = self._latest_print(symbol)
        return None if found is None else quotes.quote(symbol, found[0], found[1])

    def _snapshot(self, symbol: str) -> dict[str, Any] | None:
        if not self._known(symbol):
            return None
        now = self._sandbox.now()
        daily = self._sandbox.engine.bars([symbol], "1Day", start=now - timedelta(days=14), end=now, limit=10000)
        days = [wire.bar(b) for b in daily.bars.get(symbol, [])]
        return {
            "latestTrade": self._latest_trade(symbol),
            "latestQuote": self._latest_quote(symbol),
            "minuteBar": self._latest_bar(symbol),
            "dailyBar": days[-1] if days else None,
            "prevDailyBar": days[-2] if len(days) > 1 else None,
        }

    # ------------------------------------------------------------- latest

    def _many(self, request: web.Request, key: str, latest: Callable[[str], Any]) -> web.Response:
        _check_feed(request)
        found = {}
        for symbol in _symbols(request):
            value = latest(symbol) if self._known(symbol) else None
            if value is not None:
                found[symbol] = value
        return web.json_response({key: found})

    def _one(self, request: web.Request, key: str, latest: Callable[[str], Any]) -> web.Response:
        _check_feed(request)
        symbol = request.match_info["symbol"].upper()
        value = latest(symbol) if self._known(symbol) else None
        if value is None:
            raise BadRequest(f"no {key} found for {symbol}", 404, 40410000)
        return web.json_response({"symbol": symbol, key: value})

    async def latest_bars(self, request: web.Request) -> web.Response:
        return self._many(request, "bars", self._latest_bar)

    async def latest_bar(self, request: web.Request) -> web.Response:
        return self._one(request, "bar", self._latest_bar)

    async def latest_trades(self, request: web.Request) -> web.Response:
        return self._many(request, "trades", self._latest_trade)

    async def latest_trade(self, request: web.Request) -> web.Response:
        return self._one(request, "trade", self._latest_trade)

    async def latest_quotes(self, request: web.Request) -> web.Response:
        return self._many(request, "quotes", self._latest_quote)

    async def latest_quote(self, request: web.Request) -> web.Response:
        return self._one(request, "quote", self._latest_quote)

    async def snapshots(self, request: web.Request) -> web.Response:
        """Keyed by symbol at the top level, as Alpaca answers the many-symbol form."""
        _check_feed(request)
        found = {s: snap for s in _symbols(request) if (snap := self._snapshot(s)) is not None}
        return web.json_response(found)

    async def snapshot(self, request: web.Request) -> web.Response:
        _check_feed(request)
        symbol = request.match_info["symbol"].upper()
        found = self._snapshot(symbol)
        if found is None:
            raise BadRequest(f"no snapshot found for {symbol}", 404, 40410000)
        return web.json_response({"symbol": symbol, **found})

    # ---------------------------------------------------------- historical

    def _history(self, request: web.Request, kind: str, symbols: list[str]) -> dict[str, Any]:
        _check_feed(request)
        q = request.query
        sort = q.get("sort", "asc").lower()
        if sort not in ("asc", "desc"):
            raise BadRequest(f"invalid sort: {sort}", 400, 40010000)
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
        )
        if sort == "desc":  # newest first within the page, symbols still in order
            result[kind] = {s: items[::-1] for s, items in result[kind].items()}
        return result

    async def trades(self, request: web.Request) -> web.Response:
        return web.json_response(self._history(request, "trades", _symbols(request)))

    async def quotes(self, request: web.Request) -> web.Response:
        return web.json_response(self._history(request, "quotes", _symbols(request)))

    def _symbol_history(self, request: web.Request, kind: str) -> web.Response:
        symbol = request.match_info["symbol"].upper()
        result = self._history(request, kind, [symbol])
        body = {kind: result[kind].get(symbol, []), "symbol": symbol, "next_page_token": result["next_page_token"]}
        return web.json_response(body)

    async def symbol_trades(self, request: web.Request) -> web.Response:
        return self._symbol_history(request, "trades")

    async def symbol_quotes(self, request: web.Request) -> web.Response:
        return self._symbol_history(request, "quotes")

    # ---------------------------------------------------------------- bars

    def _bars_query(self, request: web.Request, symbols: list[str]) -> dict[str, Any]:
        q = request.query
        params.check_feed(q.get("feed"))
        sort = q.get("sort", "asc").lower()
        if sort not in ("asc", "desc"):
            raise BadRequest(f"invalid sort: {sort}", 400, 40010000)
        page = self._sandbox.engine.bars(
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

    async def bars(self, request: web.Request) -> web.Response:
        symbols = [s for s in request.query.get("symbols", "").split(",") if s.strip()]
        if not symbols:
            raise BadRequest("missing symbols", 400, 40010000)
        return respond.json(self._bars_query(request, symbols))

    async def symbol_bars(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"].upper()
        result = self._bars_query(request, [symbol])
        return respond.json(
            {
                "bars": result["bars"].get(symbol, []),
                "symbol": symbol,
                "next_page_token": result["next_page_token"],
            }
        )
