"""The account's REST routes beyond orders and positions: activities, portfolio history,
configurations and watchlists, plus Alpaca's `/v3` multi-market clock and calendar.

Handlers only: the records live in `activities`, `portfolio` and `watchlists`
(pure), owned by the `Sandbox` so `/admin/reset` starts them over with the account.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Protocol

from aiohttp import web

from alpaca_cli.sandbox import calendar, params, portfolio, watchlists, wire
from alpaca_cli.sandbox.activities import ACTIVITY_TYPES, ActivityLog
from alpaca_cli.sandbox.engine import PaperBroker
from alpaca_cli.sandbox.params import BadRequest


class Host(Protocol):
    """What the routes read of the running sandbox (its `Sandbox`), at request time: a reset replaces them."""

    engine: PaperBroker
    activities: ActivityLog
    watchlists: watchlists.Watchlists
    configuration: dict[str, Any]

    def now(self) -> datetime: ...


def setup(app: web.Application, sandbox: Host) -> None:
    routes = _Routes(sandbox)
    r = app.router
    r.add_get("/v2/account/activities", routes.activities)
    r.add_get("/v2/account/activities/{activity_type}", routes.activities)
    r.add_get("/v2/account/portfolio/history", routes.portfolio_history)
    r.add_get("/v2/account/configurations", routes.configurations)
    r.add_patch("/v2/account/configurations", routes.patch_configurations)
    r.add_get("/v2/watchlists", routes.list_watchlists)
    r.add_post("/v2/watchlists", routes.create_watchlist)
    r.add_get("/v2/watchlists:by_name", routes.get_watchlist)
    r.add_put("/v2/watchlists:by_name", routes.update_watchlist)
    r.add_post("/v2/watchlists:by_name", routes.add_to_watchlist)
    r.add_delete("/v2/watchlists:by_name", routes.delete_watchlist)
    r.add_get("/v2/watchlists/{watchlist_id}", routes.get_watchlist)
    r.add_put("/v2/watchlists/{watchlist_id}", routes.update_watchlist)
    r.add_post("/v2/watchlists/{watchlist_id}", routes.add_to_watchlist)
    r.add_delete("/v2/watchlists/{watchlist_id}", routes.delete_watchlist)
    r.add_delete("/v2/watchlists/{watchlist_id}/{symbol}", routes.remove_from_watchlist)
    r.add_get("/v3/clock", routes.clock_v3)
    r.add_get("/v3/calendar/{market}", routes.calendar_v3)


async def _body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise BadRequest("request body format is invalid", 400, 40010000) from None


def _market(name: str) -> None:
    if name.upper() != wire.NYSE["acronym"]:
        raise BadRequest(f"unsupported market: {name}", 400, 40010000)


class _Routes:
    def __init__(self, sandbox: Host) -> None:
        self._sandbox = sandbox

    # ---------------------------------------------------------- activities

    async def activities(self, request: web.Request) -> web.Response:
        q = request.query
        one = request.match_info.get("activity_type")
        if one is not None and one.upper() not in ACTIVITY_TYPES:
            raise BadRequest(f"invalid activity type: {one}")
        types = [one] if one is not None else [t for t in q.get("activity_types", "").split(",") if t.strip()]
        size = q.get("page_size")
        found = self._sandbox.activities.query(
            types=[t.strip() for t in types] or None,
            category=q.get("category") or None,
            on=params.day(q.get("date"), "date"),
            after=params.instant(q.get("after"), "after"),
            until=params.instant(q.get("until"), "until"),
            direction=q.get("direction", "desc").lower(),
            page_size=None if size in (None, "") else params.integer(size, "page_size", 0),
            page_token=q.get("page_token") or None,
        )
        return web.json_response(found)

    async def portfolio_history(self, request: web.Request) -> web.Response:
        q = request.query
        broker = self._sandbox.engine
        found = portfolio.history(
            now=self._sandbox.now(),
            equity=broker.equity(),
            base_value=broker.last_equity,
            period=q.get("period") or None,
            timeframe=q.get("timeframe") or None,
            start=params.instant(q.get("start"), "start"),
            end=params.instant(q.get("end"), "end"),
            date_end=params.day(q.get("date_end"), "date_end"),
            extended_hours=params.boolean(q.get("extended_hours"), "extended_hours"),
        )
        return web.json_response(found)

    # ------------------------------------------------------ configurations

    async def configurations(self, request: web.Request) -> web.Response:
        return web.json_response(self._sandbox.configuration)

    async def patch_configurations(self, request: web.Request) -> web.Response:
        sandbox = self._sandbox
        sandbox.configuration = watchlists.patch_configuration(sandbox.configuration, await _body(request))
        return web.json_response(sandbox.configuration)

    # ---------------------------------------------------------- watchlists

    def _find(self, request: web.Request) -> watchlists.Watchlist:
        lists = self._sandbox.watchlists
        watchlist_id = request.match_info.get("watchlist_id")
        if watchlist_id is not None:
            return lists.find(watchlist_id=watchlist_id)
        name = request.query.get("name")
        if not name:
            raise BadRequest("name is required")
        return lists.find(name=name)

    async def list_watchlists(self, request: web.Request) -> web.Response:
        return web.json_response(self._sandbox.watchlists.all())

    async def create_watchlist(self, request: web.Request) -> web.Response:
        return web.json_response(self._sandbox.watchlists.create(await _body(request)).wire())

    async def get_watchlist(self, request: web.Request) -> web.Response:
        return web.json_response(self._find(request).wire())

    async def update_watchlist(self, request: web.Request) -> web.Response:
        found = self._find(request)
        return web.json_response(self._sandbox.watchlists.update(found, await _body(request)).wire())

    async def add_to_watchlist(self, request: web.Request) -> web.Response:
        found = self._find(request)
        return web.json_response(self._sandbox.watchlists.add(found, await _body(request)).wire())

    async def remove_from_watchlist(self, request: web.Request) -> web.Response:
        found = self._find(request)
        return web.json_response(self._sandbox.watchlists.remove(found, request.match_info["symbol"]).wire())

    async def delete_watchlist(self, request: web.Request) -> web.Response:
        self._sandbox.watchlists.delete(self._find(request))
        return web.Response(status=204)

    # -------------------------------------------------------------- /v3

    async def clock_v3(self, request: web.Request) -> web.Response:
        """`?markets=NYSE` (the only one known) and `?time=` for the clock at another instant."""
        q = request.query
        for name in q.get("markets", "NYSE").split(","):
            _market(name.strip())
        asked = params.instant(q.get("time"), "time")
        broker = self._sandbox.engine
        now = asked or self._sandbox.now()
        is_open = calendar.is_open(now) if asked is not None else broker.is_open_at(now)
        today = calendar.session(calendar.local_day(now))
        if is_open:
            close = calendar.next_close(now)
            opening = calendar.next_open(close)
            phase, until = "core", close
        else:
            opening = calendar.next_open(now)
            close = calendar.next_close(opening)
            phase, until = _closed_phase(now, today, opening)
        clock = wire.clock_v3(
            now,
            is_open=is_open,
            is_market_day=today is not None,
            phase=phase,
            phase_until=until,
            opening=opening,
            close=close,
        )
        return web.json_response({"clocks": [clock]})

    async def calendar_v3(self, request: web.Request) -> web.Response:
        _market(request.match_info["market"])
        q = request.query
        start = params.day(q.get("start"), "start") or date(calendar.COVERED_YEARS.start, 1, 1)
        end = params.day(q.get("end"), "end") or date(calendar.COVERED_YEARS.stop - 1, 12, 31)
        if end < start:
            raise BadRequest("end should not be before start")
        if end - start > timedelta(days=3 * 366):
            raise BadRequest("the range may span at most three years")
        days = [wire.calendar_day_v3(s) for s in calendar.sessions(start, end)]
        return web.json_response({"market": wire.NYSE, "calendar": days})


def _closed_phase(now: datetime, today: calendar.Session | None, opening: datetime) -> tuple[str, datetime]:
    """Outside the core session: pre-market or after-hours inside the day's extended hours, else closed."""
    if today is not None and today.extended_open <= now < today.open:
        return "pre", today.open
    if today is not None and today.close <= now < today.extended_close:
        return "post", today.extended_close
    following = calendar.session(calendar.local_day(opening))
    return "closed", following.extended_open if following is not None else opening
