"""The sandbox's matching engine: a deterministic paper broker.

Pure and synchronous: no I/O, no asyncio, no clock of its own beyond the
`now` callable it is given, and all randomness from one seed. The server
drives it (`step()` on a timer, REST calls in between); the streams listen
to it (`listeners` hear `TradeEvent`s, `market.listeners` every print).
It takes parsed requests (`orderrequest`) and answers with its own objects
(`model`); turning those into Alpaca's JSON is the server's business (`wire`).
Refusals are `BrokerError`s carrying Alpaca's HTTP status, code and message.

Model, in short: the market (`market`) walks every symbol asked about;
working orders are matched against the current price on each step while the
market is open (see `calendar`), at most `fill_chunk` shares per order per
step (so big orders fill in several partial fills); day orders expire at the
close; the account (`account`) bounds what can be bought or sold short.
Bracket, OCO and OTO groups follow `legs`. Ids are random UUID4s, apart from
the seeded prices.
"""

from __future__ import annotations

import copy
import itertools
import logging
import random
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from alpaca_cli.sandbox import assets, bulk, calendar, legs
from alpaca_cli.sandbox.account import Ledger
from alpaca_cli.sandbox.books import Book
from alpaca_cli.sandbox.calendar import NEW_YORK
from alpaca_cli.sandbox.history import History
from alpaca_cli.sandbox.market import Market, PrintListener
from alpaca_cli.sandbox.matching import Matcher, reference_cost, trail_stop
from alpaca_cli.sandbox.model import (
    CENT,
    ZERO,
    AccountView,
    Bar,
    BarPage,
    BrokerError,
    ClockView,
    Outcome,
    Position,
    PositionView,
    SimOrder,
    TradeEvent,
    digest,
    invalid,
    plain,
)
from alpaca_cli.sandbox.orderrequest import OrderRequest, refusals
from alpaca_cli.sandbox.orderstore import OrderStore

log = logging.getLogger(__name__)

EventListener = Callable[[TradeEvent], None]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PaperBroker:
    """A paper trading account plus a simulated market, driven by `step()`.

    Not thread-safe: the server calls it from its event loop only.
    """

    def __init__(
        self,
        seed: int = 0,
        cash: Decimal = Decimal("100000"),
        now: Callable[[], datetime] = _utcnow,
        *,
        fill_chunk: Decimal = Decimal(100),
        volatility: float = 0.0008,
        reversion: float = 0.001,
        max_move: float = 0.04,
        multiplier: int = 2,
        bar_seconds: float = 60.0,
        always_open: bool = False,
        market_closed: bool = False,
    ) -> None:
        self.seed = seed
        self.now = now
        self.fill_chunk = fill_chunk
        self.multiplier = multiplier
        self.market = Market(
            seed, volatility=volatility, reversion=reversion, max_move=max_move, bar_seconds=bar_seconds
        )
        # Open around the clock (demos, tests at any hour), or closed whatever the calendar says.
        self.always_open = always_open
        self.market_closed = market_closed
        # The session under way, so day orders expire when its close passes.
        self._session: calendar.Session | None = None
        # Symbols whose trading is halted: new orders on them end `rejected` at the next step.
        self.halted: set[str] = set()
        self.listeners: list[EventListener] = []
        self._last_ts: datetime | None = None
        self._start(Decimal(cash))

    def _start(self, cash: Decimal) -> None:
        """A fresh account and market (listeners and the time order of ids survive)."""
        self.market.reset()
        self.ledger = Ledger(cash, self.multiplier, self.price)
        self.history = History(self.market, self._time(), self._time)
        self._rng = random.Random(digest("broker", self.seed))
        self._books: dict[str, Book] = {}
        self.orders = OrderStore()
        self._seq = itertools.count()
        self._matcher = Matcher(
            self.ledger, self.fill_chunk, finish=self._finish, emit=self._emit, filled=self._filled, park=self._park
        )

    def reset(self, cash: Decimal = Decimal("100000")) -> None:
        """Start over: no orders, no positions, `cash`, start prices; walking symbols keep walking.

        Listeners stay attached, so running streams keep working across a reset.
        """
        walking = self.symbols()
        self.halted.clear()
        self._start(Decimal(cash))
        for symbol in walking:
            self.price(symbol)

    @property
    def trade_listeners(self) -> list[PrintListener]:
        """Who hears every print of the market (symbol, price, size, time)."""
        return self.market.listeners

    # ---------------------------------------------------------------- market

    def price(self, symbol: str) -> Decimal:
        """Current price; also starts the symbol's walk (so it prints on every step)."""
        ticker = self.market.ticker(symbol)
        ticker.walking = True
        return ticker.price

    def set_price(self, symbol: str, price: Decimal) -> None:
        """Move a symbol to `price` at once (a print at that price, matching on next step)."""
        if price <= 0:
            raise invalid("price must be > 0")
        self.market.set_price(self.market.ticker(symbol), price, self._time())

    def symbols(self) -> list[str]:
        """Symbols that currently walk and print."""
        return self.market.symbols()

    def last_print(self, symbol: str) -> tuple[Decimal, Decimal, datetime] | None:
        """Price, size and time of the symbol's latest print since the broker started, if any."""
        ticker = self.market.tickers.get(symbol.upper())
        return None if ticker is None else ticker.last_print

    @property
    def market_open(self) -> bool:
        return self.is_open_at(self._time())

    def is_open_at(self, at: datetime) -> bool:
        """Does the market trade at `at`: the calendar, unless forced closed or always open."""
        if self.market_closed:
            return False
        return self.always_open or calendar.is_open(at)

    def clock(self) -> ClockView:
        """`GET /v2/clock`: open per `is_open_at`; next open and close from the calendar.

        Open (even outside the calendar's hours, when always open), the next close
        comes first; closed (even forced closed mid-session), the next open does.
        """
        now = self._time()
        is_open = self.is_open_at(now)
        if is_open:
            close = calendar.next_close(now)
            opening = calendar.next_open(close)
        else:
            opening = calendar.next_open(now)
            close = calendar.next_close(opening)
        return ClockView(now, is_open, opening, close)

    def step(self, now: datetime | None = None) -> None:
        """One tick: end a finished session, then walk every active symbol, print, match.

        Stocks move only while the market is open; crypto pairs around the clock.
        """
        at = now if now is not None else self._time()
        self._track_session(at)
        stocks_trade = self.is_open_at(at)
        for ticker in list(self.market.tickers.values()):
            if not ticker.walking or not (stocks_trade or ticker.crypto):
                continue
            book = self._book(ticker.symbol)
            if ticker.symbol in self.halted:
                self._reject_fresh(book, at)
                continue
            book.fresh.clear()
            self.market.walk(ticker, at)
            self._matcher.match(book, at)

    def _track_session(self, at: datetime) -> None:
        """Expire day orders once the calendar's session close has passed.

        A clock moved back before the session's open (an admin jump) forgets it.
        """
        session = self._session
        if session is not None and at >= session.close:
            self._session = None
            self.expire_day_orders()
        elif session is not None and at < session.open:
            self._session = None
        if self._session is None and not self.always_open and calendar.is_open(at):
            self._session = calendar.current_or_next_session(at)

    def _reject_fresh(self, book: Book, at: datetime) -> None:
        """A halted symbol prints nothing; orders reaching it are rejected (asynchronously)."""
        for order in book.fresh:
            if order.is_open:
                order.failed_at = at
                self._finish(order, "rejected", at)
                self._emit("rejected", order)
        book.fresh.clear()

    def _book(self, symbol: str) -> Book:
        book = self._books.get(symbol)
        if book is None:
            book = self._books[symbol] = Book(self.market.ticker(symbol))
        return book

    # ------------------------------------------------------------------ bars

    def bars(
        self,
        symbols: Iterable[str],
        timeframe: str = "1Min",
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 1000,
        page_token: str | None = None,
    ) -> BarPage:
        """Historical bars (see `history`): recorded prints where the sandbox ran, a curve before."""
        return self.history.bars(symbols, timeframe, start, end, limit, page_token, always_open=self.always_open)

    def recorded_bar(self, symbol: str, index: int) -> Bar | None:
        """The bar the market recorded for interval `index` (see `Market.bar_index`), if it printed."""
        ticker = self.market.tickers.get(symbol)
        return None if ticker is None else self.history.recorded_bar(ticker, index)

    def report_late(self, symbol: str, index: int) -> Bar | None:
        """A late trade lands in recorded bar `index` (at its close): the corrected bar, or None."""
        ticker = self.market.tickers.get(symbol)
        if ticker is None:
            return None
        size = Decimal("0.01") if ticker.crypto else Decimal(100)
        if not self.market.late_print(ticker, index, size):
            return None
        return self.history.recorded_bar(ticker, index)

    def latest_bar(self, symbol: str) -> Bar | None:
        """The `1Min` bar of the latest minute with trading (`/v2/stocks/bars/latest`)."""
        return self.history.latest_bar(symbol.upper(), always_open=self.always_open)

    # --------------------------------------------------------------- account

    @property
    def cash(self) -> Decimal:
        return self.ledger.cash

    @property
    def last_equity(self) -> Decimal:
        return self.ledger.last_equity

    @property
    def daytrade_count(self) -> int:
        return self.ledger.daytrade_count

    def account(self) -> AccountView:
        ledger = self.ledger
        long_mv, short_mv = ledger.market_values()
        initial, maintenance = ledger.margins(long_mv, short_mv)
        return AccountView(
            cash=ledger.cash,
            long_market_value=long_mv,
            short_market_value=short_mv,
            buying_power=ledger.buying_power(),
            multiplier=ledger.multiplier,
            last_equity=ledger.last_equity,
            daytrade_count=ledger.daytrade_count,
            initial_margin=initial,
            maintenance_margin=maintenance,
            today=self._time().astimezone(NEW_YORK).date(),
        )

    def equity(self) -> Decimal:
        return self.ledger.equity()

    def buying_power(self) -> Decimal:
        return self.ledger.buying_power()

    def positions(self) -> list[PositionView]:
        out = []
        for symbol in sorted(self.ledger.positions):
            pos = self.ledger.positions[symbol]
            ticker = self.market.ticker(symbol)
            out.append(
                PositionView(
                    symbol=symbol,
                    exchange=self.exchange(symbol),
                    qty=pos.qty,
                    avg_entry_price=pos.avg_entry_price,
                    current_price=ticker.price,
                    lastday_price=ticker.lastday_price,
                    qty_available=self._available(symbol, pos.qty),
                )
            )
        return out

    def position_qty(self, symbol: str) -> Decimal:
        return self.ledger.position_qty(symbol)

    def exchange(self, symbol: str) -> str:
        """The listing exchange; seeded load-test symbols outside the asset list get one by hash."""
        listed = assets.find(symbol)
        if listed is not None:
            return listed.exchange
        return ("NASDAQ", "NYSE", "NASDAQ", "ARCA")[digest("exchange", symbol) % 4]

    def _available(self, symbol: str, qty: Decimal) -> Decimal:
        book = self._books.get(symbol)
        held = book.pending_close if book is not None else ZERO
        return qty - held if qty > 0 else qty + held

    # ---------------------------------------------------------------- orders

    def submit(self, request: OrderRequest) -> SimOrder:
        """Accept a parsed order (`POST /v2/orders`) the account can carry; emits `new`."""
        order = self._build(request)
        book = self._book(order.symbol)
        self._check_funds(order, book)
        plans = self._plan_legs(request, order, book)
        self._accept(order)
        self._emit("new", order)
        self._add_legs(order, plans)
        return order

    def _build(self, request: OrderRequest) -> SimOrder:
        """The order a request makes for this account: its id, times, and whether it closes."""
        client_id = request.client_order_id or str(uuid.uuid4())
        if self.orders.has_client_id(client_id):
            raise invalid("client_order_id must be unique")
        pos = self.position_qty(request.symbol)
        side = request.side
        closing = (side == "sell" and pos > 0) or (side == "buy" and pos < 0)
        if request.order_class != "simple":
            refusals(
                legs.check_entry,
                request.order_class,
                kind=request.type,
                tif=request.time_in_force,
                extended=request.extended_hours,
                fractional=request.fractional,
                closing=closing,
            )
        at = self._next_ts()
        return SimOrder(
            id=str(uuid.uuid4()),
            client_order_id=client_id,
            symbol=request.symbol,
            side=side,
            type=request.type,
            time_in_force=request.time_in_force,
            created_at=at,
            submitted_at=at,
            updated_at=at,
            qty=request.qty,
            notional=request.notional,
            limit_price=request.limit_price,
            stop_price=request.stop_price,
            trail_percent=request.trail_percent,
            trail_price=request.trail_price,
            extended_hours=request.extended_hours,
            position_intent=f"{side}_to_{'close' if closing else 'open'}",
            closing=closing,
            order_class=request.order_class,
        )

    def _check_funds(self, order: SimOrder, book: Book) -> None:
        """Refuse what the account cannot carry, as Alpaca does, with 403."""
        pos = self.position_qty(order.symbol)
        qty = order.qty if order.qty is not None else (order.notional or ZERO) / book.price
        if order.closing:
            available = abs(self._available(order.symbol, pos))
            if qty > available:
                raise BrokerError(
                    403,
                    40310000,
                    f"insufficient qty available for order (requested: {plain(qty)}, available: {plain(available)})",
                    symbol=order.symbol,
                    existing_qty=abs(pos),
                    held_for_orders=abs(pos) - available,
                )
            return
        if order.side == "sell" and qty != qty.to_integral_value():
            raise BrokerError(403, 40310000, "fractional orders cannot be sold short")
        listed = assets.find(order.symbol)
        if order.side == "sell" and listed is not None and not listed.shortable:
            raise BrokerError(403, 40310000, f"asset {order.symbol} cannot be sold short")
        cost = reference_cost(order, book.price)
        bp = self.buying_power()
        if cost > bp:
            raise BrokerError(
                403,
                40310000,
                "insufficient buying power",
                buying_power=bp.quantize(CENT),
                cost_basis=cost.quantize(CENT),
            )

    def _accept(self, order: SimOrder, *, walk: bool = True) -> None:
        self._register(order)
        self._go_live(order, walk=walk)

    def _register(self, order: SimOrder) -> None:
        self.orders.add(order)

    def _go_live(self, order: SimOrder, *, walk: bool = True) -> None:
        """Hold what the order needs and put it where the matching steps will find it."""
        book = self._book(order.symbol)
        book.ticker.walking = book.ticker.walking or walk
        self.ledger.set_reserve(order, reference_cost(order, book.price))
        if order.holds:
            book.pending_close += order.remaining
        if walk:
            book.fresh.append(order)
        if order.type == "trailing_stop":
            order.hwm = book.price
            order.stop_price = trail_stop(order)
        self._park(order, book)

    def _park(self, order: SimOrder, book: Book) -> None:
        book.park(order, next(self._seq))

    # ---------------------------------------------------- bracket, oco, oto

    def _plan_legs(self, request: OrderRequest, order: SimOrder, book: Book) -> list[legs.LegPlan]:
        """Check a group order's exits (see `legs`) before anything is accepted."""
        if order.order_class == "simple":
            return []
        return refusals(
            legs.plan,
            order.order_class,
            side=order.side,
            entry_limit=order.limit_price,
            market_price=book.price,
            take_profit=request.take_profit,
            stop_loss=request.stop_loss,
        )

    def _add_legs(self, entry: SimOrder, plans: list[legs.LegPlan]) -> None:
        """Create the exits: held until the entry fills, except an OCO's, which work at once."""
        oco = entry.order_class == "oco"
        side = entry.side if oco else ("sell" if entry.side == "buy" else "buy")
        for plan in plans:
            at = self._next_ts()
            leg = SimOrder(
                id=str(uuid.uuid4()),
                client_order_id=str(uuid.uuid4()),
                symbol=entry.symbol,
                side=side,
                type=plan.type,
                time_in_force=entry.time_in_force,
                created_at=at,
                submitted_at=at,
                updated_at=at,
                qty=entry.qty,
                limit_price=plan.limit_price,
                stop_price=plan.stop_price,
                position_intent=f"{side}_to_close",
                status="new" if oco else "held",
                order_class=entry.order_class,
                parent=entry,
                holds_position=plan.holds_position,
                closing=True,
            )
            entry.legs.append(leg)
            self._register(leg)
            if oco:
                self._go_live(leg)
                self._emit("new", leg)
        pair = [entry, *entry.legs] if oco else entry.legs
        if len(pair) == 2:
            pair[0].oco, pair[1].oco = pair[1], pair[0]

    def _release_legs(self, entry: SimOrder, at: datetime) -> None:
        """The entry filled completely: its held exits start working, for no more than they can exit.

        Other orders filling meanwhile may have left less of the position than the
        entry bought (or none of it, on the exits' side): the exits shrink to what
        is there, or are canceled when nothing is.
        """
        held = [leg for leg in entry.legs if leg.status == "held"]
        if not held:
            return
        pos = self.position_qty(entry.symbol)
        exits_long = held[0].side == "sell"
        room = abs(self._available(entry.symbol, pos)) if pos and (pos > 0) == exits_long else ZERO
        if room <= 0:
            self._end_group(entry, at)
            return
        for leg in held:
            if leg.qty is not None and leg.qty > room:
                leg.qty = room
            leg.status = "new"
            leg.updated_at = at
            self._go_live(leg)
            self._emit("new", leg)

    def _shrink(self, order: SimOrder, remaining: Decimal, at: datetime) -> None:
        """Its OCO partner partly filled: only what the partner has left may still fill here."""
        book = self._book(order.symbol)
        if order.holds:
            book.pending_close = max(ZERO, book.pending_close - (order.remaining - remaining))
        order.qty = order.filled_qty + remaining
        order.updated_at = at

    def _end_group(self, order: SimOrder, at: datetime) -> None:
        """One order of a group ended unfilled: every other open order of the group is canceled."""
        for member in order.group:
            if member.is_open:
                member.canceled_at = at
                self._finish(member, "canceled", at)
                self._emit("canceled", member)

    # ------------------------------------------------------- reading orders

    def get_order(self, order_id: str) -> SimOrder:
        return self.orders.get(order_id)

    def get_order_by_client_id(self, client_order_id: str) -> SimOrder:
        return self.orders.by_client_id(client_order_id)

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
    ) -> list[SimOrder]:
        """`GET /v2/orders` (see `OrderStore.list`)."""
        return self.orders.list(status, limit, after, until, direction, symbols, side, nested)

    def order_count(self) -> int:
        return len(self.orders.all)

    def open_order_count(self) -> int:
        return len(self.orders.open)

    # ------------------------------------------------------- changing orders

    def cancel(self, order_id: str) -> SimOrder:
        """`DELETE /v2/orders/{id}`: cancels at once and emits `canceled`."""
        order = self.get_order(order_id)
        if not order.is_open:
            raise BrokerError(422, 42210000, f'order is already in "{order.status}" state')
        at = self._next_ts()
        order.canceled_at = at
        self._finish(order, "canceled", at)
        self._emit("canceled", order)
        return order

    def cancel_all(self) -> list[Outcome]:
        """`DELETE /v2/orders`: one outcome per open order, like Alpaca's 207 body."""
        results = []
        for order in list(self.orders.open.orders):
            if order.status == "canceled":  # canceled with its group a moment ago
                results.append(Outcome(order.id, order=order))
                continue
            try:
                self.cancel(order.id)
            except BrokerError as exc:
                results.append(Outcome(order.id, error=exc))
            else:
                results.append(Outcome(order.id, order=order))
        return results

    def replaceable(self, order_id: str) -> SimOrder:
        """The order `PATCH /v2/orders/{id}` may replace (refused unless still `new`)."""
        old = self.get_order(order_id)
        if old.status != "new":
            raise BrokerError(422, 42210000, f'order is already in "{old.status}" state')
        return old

    def replace(self, order_id: str, request: OrderRequest) -> SimOrder:
        """`PATCH /v2/orders/{id}`: a new order (see `orderrequest.replacement`) takes the old one's place.

        Emits `replaced` for the old order (now carrying `replaced_by`), then
        `new` for the replacement, which is what the call returns.
        """
        old = self.replaceable(order_id)
        book = self._book(old.symbol)
        held, close_held = old.reserve, (old.remaining if old.holds else ZERO)
        # The replacement is judged as if the old order's holds were already released.
        self.ledger.set_reserve(old, ZERO)
        book.pending_close -= close_held
        try:
            new = self._build(request)
            if old.order_class == "simple":  # a group's orders were funded when the group was accepted
                self._check_funds(new, book)
        finally:
            self.ledger.set_reserve(old, held)
            book.pending_close += close_held
        at = new.submitted_at
        old.replaced_at = at
        old.replaced_by = new.id
        new.replaces = old.id
        legs.take_place(old, new)
        self._finish(old, "replaced", at)
        self._emit("replaced", old)
        self._accept(new)
        self._emit("new", new)
        return new

    def close_position(self, symbol: str, qty: Decimal | None = None, percentage: Decimal | None = None) -> SimOrder:
        """`DELETE /v2/positions/{symbol}`: a market order that flattens (part of) it."""
        symbol = symbol.upper()
        pos = self.ledger.positions.get(symbol)
        if pos is None:
            raise BrokerError(404, 40410000, "position does not exist")
        size = abs(pos.qty)
        if qty is not None and percentage is not None:
            raise invalid("only one of qty or percentage may be given")
        if qty is not None:
            if not 0 < qty <= size:
                raise BrokerError(403, 40310000, "insufficient qty available for order")
            size = qty
        elif percentage is not None:
            if not 0 < percentage <= 100:
                raise invalid("percentage must be between 0 and 100")
            size = (size * percentage / 100).quantize(Decimal("1e-9"), rounding=ROUND_DOWN)
        side = "sell" if pos.qty > 0 else "buy"
        tif = "gtc" if self.market.ticker(symbol).crypto else "day"  # crypto has no day orders
        return self.submit(OrderRequest(symbol, side, "market", tif, qty=size))

    def close_all_positions(self, cancel_orders: bool = False) -> list[Outcome]:
        """`DELETE /v2/positions`: one outcome per position, like Alpaca's 207 body."""
        if cancel_orders:
            self.cancel_all()
        results = []
        for symbol in sorted(self.ledger.positions):
            try:
                placed = self.close_position(symbol)
            except BrokerError as exc:
                results.append(Outcome(symbol, error=exc))
            else:
                results.append(Outcome(symbol, order=placed))
        return results

    def expire_day_orders(self) -> int:
        """End of the trading day: open day orders expire (emits `expired` each)."""
        count = 0
        for order in list(self.orders.open.orders):
            # An expiring entry cancels its held exits on the way: skip what already ended.
            if order.is_open and order.time_in_force in ("day", "opg", "cls"):
                at = self._next_ts()
                order.expired_at = at
                self._finish(order, "expired", at)
                self._emit("expired", order)
                count += 1
        return count

    # ------------------------------------------------------------ endings

    def _filled(self, order: SimOrder, done: bool, at: datetime) -> None:
        """After a fill: a filled entry releases its exits; its OCO partner is canceled, or shrinks."""
        if done and order.legs:
            self._release_legs(order, at)
        partner = order.oco
        if partner is not None and partner.is_open:
            if done:
                partner.canceled_at = at
                self._finish(partner, "canceled", at)
                self._emit("canceled", partner)
            else:
                self._shrink(partner, order.remaining, at)

    def _finish(self, order: SimOrder, status: str, at: datetime) -> None:
        """Move an order to a final status and out of every open structure."""
        holding = order.holds
        order.status = status
        order.updated_at = at
        self.orders.close(order)
        self.ledger.set_reserve(order, ZERO)
        book = self._books.get(order.symbol)
        if book is not None:
            book.active.pop(order.id, None)
            if holding:
                book.pending_close = max(ZERO, book.pending_close - order.remaining)
        order.in_active = False

    def _emit(
        self,
        event: str,
        order: SimOrder,
        *,
        execution_id: str | None = None,
        price: Decimal | None = None,
        qty: Decimal | None = None,
        position_qty: Decimal | None = None,
    ) -> None:
        """Tell the listeners; an order of a group announced as ended unfilled then ends the rest of it.

        (After the announcement, so the order a client canceled is reported before the others.)
        """
        happened = TradeEvent(event, copy.copy(order), order.updated_at, execution_id, price, qty, position_qty)
        for listener in list(self.listeners):
            try:
                listener(happened)
            except Exception:
                log.exception("trade-update listener failed")
        if event in ("canceled", "expired", "rejected") and len(order.group) > 1:
            self._end_group(order, order.updated_at)

    # ------------------------------------------------------------------ bulk

    def seed_bulk(self, open_orders: int, positions: int) -> None:
        """Quickly create resting orders and positions (see `bulk`): positions transferred in, no events."""
        start = self._time() - timedelta(microseconds=open_orders + 1)
        if self._last_ts is not None and start <= self._last_ts:
            start = self._last_ts + timedelta(microseconds=1)
        quiet_price = lambda symbol: self.market.ticker(symbol).price  # noqa: E731 - without starting its walk
        seeding = bulk.plan(open_orders, positions, rng=self._rng, price_of=quiet_price, start=start)
        for symbol, qty in seeding.positions:
            pos = self.ledger.positions.setdefault(symbol, Position())
            pos.qty += qty
            pos.cost += qty * self.market.ticker(symbol).price
        for order in seeding.orders:
            self._last_ts = order.submitted_at
            self._accept(order, walk=False)

    # ------------------------------------------------------------------ time

    def _time(self) -> datetime:
        return self.now()

    def _next_ts(self) -> datetime:
        """A timestamp strictly after every earlier one, so order times never tie."""
        at = self._time()
        if self._last_ts is not None and at <= self._last_ts:
            at = self._last_ts + timedelta(microseconds=1)
        self._last_ts = at
        return at
