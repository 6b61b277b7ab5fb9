"""The sandbox's matching engine: a deterministic paper broker.

Pure and synchronous: no I/O, no asyncio, no clock of its own beyond the
`now` callable it is given, and all randomness from one seed. The server
drives it (`step()` on a timer, REST calls in between); the streaming half
listens to it (`listeners` for trade updates, `trade_listeners` for market
prints). Its answers are Alpaca's wire dicts (see `wire`), and its refusals
are `BrokerError`s carrying Alpaca's HTTP status, code and message.

Model, in short: every listed symbol (see `assets`) follows a seeded random
walk that reverts to the day's open and never strays more than `max_move`
from it; working orders are matched against the current price on each step
while the market is open (see `calendar`), at most `fill_chunk` shares per
order per step (so big orders fill in several partial fills); day orders
expire at the close; a 2x margin account (Reg T style) bounds what can be
bought or sold short. Ids are random UUID4s, apart from the seeded prices.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import hashlib
import heapq
import itertools
import logging
import math
import random
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from alpaca_cli.sandbox import assets, calendar, legs, wire
from alpaca_cli.sandbox.calendar import NEW_YORK
from alpaca_cli.sandbox.params import BadRequest

log = logging.getLogger(__name__)

# `held`: a bracket or OTO exit waiting for its entry to fill.
OPEN_STATUSES = frozenset({"new", "partially_filled", "accepted", "pending_new", "held"})
ORDER_TYPES = frozenset({"market", "limit", "stop", "stop_limit", "trailing_stop"})
TIME_IN_FORCE = frozenset({"day", "gtc", "ioc", "fok", "opg", "cls"})
SIDES = frozenset({"buy", "sell"})

CENT = Decimal("0.01")
ZERO = Decimal(0)
_MAX_CLIENT_ORDER_ID = 128


class BrokerError(Exception):
    """A refusal the way Alpaca answers it: HTTP status plus `{"code", "message"}` body."""

    def __init__(self, status: int, code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return wire.error(self.code, self.message, **self.extra)


def _invalid(message: str) -> BrokerError:
    return BrokerError(422, 40010001, message)


def _not_found() -> BrokerError:
    return BrokerError(404, 40410000, "order not found")


@dataclass(slots=True, eq=False)
class SimOrder:
    """One order's full state inside the engine (its wire form is `wire.order`)."""

    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    created_at: datetime
    submitted_at: datetime
    updated_at: datetime
    qty: Decimal | None = None
    notional: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_percent: Decimal | None = None
    trail_price: Decimal | None = None
    hwm: Decimal | None = None
    extended_hours: bool = False
    position_intent: str | None = None
    status: str = "new"
    filled_qty: Decimal = ZERO
    filled_value: Decimal = ZERO
    filled_at: datetime | None = None
    canceled_at: datetime | None = None
    expired_at: datetime | None = None
    failed_at: datetime | None = None
    replaced_at: datetime | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    order_class: str = "simple"
    legs: list[SimOrder] = field(default_factory=list)
    parent: SimOrder | None = None
    # Engine bookkeeping, never on the wire.
    oco: SimOrder | None = None  # the order a fill of this one shrinks or cancels
    holds_position: bool = True  # a closing order's qty counts as held (one order per OCO pair)
    closing: bool = False  # reduces an existing position (no buying power needed)
    reserve: Decimal = ZERO  # buying power held back for the unfilled rest
    triggered: bool = False  # stop price reached: now works as market/limit
    in_active: bool = False  # checked on every step (vs resting in a price heap)
    day_traded: bool = False
    steps_seen: int = 0

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def holds(self) -> bool:
        """Does its unfilled qty count in the position's qty held for orders (never while `held`)?"""
        return self.closing and self.holds_position and self.status in OPEN_STATUSES - {"held"}

    @property
    def group(self) -> list[SimOrder]:
        """Its bracket, OCO or OTO group (itself alone when simple), entry first."""
        root = self.parent or self
        return [root, *root.legs]

    @property
    def remaining(self) -> Decimal:
        return ZERO if self.qty is None else self.qty - self.filled_qty

    @property
    def filled_avg_price(self) -> Decimal | None:
        if self.filled_qty == 0:
            return None
        return (self.filled_value / self.filled_qty).quantize(Decimal("0.0001"))


@dataclass(slots=True)
class _Position:
    qty: Decimal = ZERO  # signed: negative is short
    cost: Decimal = ZERO  # signed cost basis (qty * avg entry)
    opened_on: date | None = None  # last day the position was opened or increased

    @property
    def avg_entry_price(self) -> Decimal:
        return ZERO if self.qty == 0 else self.cost / self.qty


@dataclass(slots=True)
class _Minute:
    o: Decimal
    h: Decimal
    lo: Decimal
    c: Decimal
    v: int = 0
    n: int = 0
    pv: Decimal = ZERO


@dataclass(slots=True)
class _Symbol:
    """Market state of one symbol: the walk, its prints, the resting orders on it."""

    symbol: str
    rng: random.Random
    price: Decimal
    lastday_price: Decimal
    # The walk reverts to `anchor` (the day's open, or the last price set by hand).
    anchor: Decimal
    anchor_day: date | None = None
    walking: bool = False
    minutes: dict[int, _Minute] = field(default_factory=dict)
    last_print: tuple[Decimal, int, datetime] | None = None  # price, size, time of the latest print
    # Resting orders by trigger price; entries are (key, seq, order), stale ones skipped.
    buy_limits: list[tuple[Decimal, int, SimOrder]] = field(default_factory=list)
    sell_limits: list[tuple[Decimal, int, SimOrder]] = field(default_factory=list)
    buy_stops: list[tuple[Decimal, int, SimOrder]] = field(default_factory=list)
    sell_stops: list[tuple[Decimal, int, SimOrder]] = field(default_factory=list)
    active: dict[str, SimOrder] = field(default_factory=dict)
    fresh: list[SimOrder] = field(default_factory=list)  # accepted since the last step
    pending_close: Decimal = ZERO  # unfilled qty of open orders closing the position


class _TimeIndex:
    """Orders sorted by submitted_at (unique per order), for O(log n + page) listing."""

    def __init__(self) -> None:
        self.keys: list[datetime] = []
        self.orders: list[SimOrder] = []

    def add(self, order: SimOrder) -> None:
        if not self.keys or order.submitted_at > self.keys[-1]:
            self.keys.append(order.submitted_at)
            self.orders.append(order)
            return
        i = bisect.bisect_left(self.keys, order.submitted_at)
        self.keys.insert(i, order.submitted_at)
        self.orders.insert(i, order)

    def remove(self, order: SimOrder) -> None:
        i = bisect.bisect_left(self.keys, order.submitted_at)
        if i < len(self.keys) and self.orders[i] is order:
            del self.keys[i]
            del self.orders[i]

    def __len__(self) -> int:
        return len(self.keys)

    def scan(self, after: datetime | None, until: datetime | None, descending: bool) -> Iterator[SimOrder]:
        lo = 0 if after is None else bisect.bisect_right(self.keys, after)
        hi = len(self.keys) if until is None else bisect.bisect_left(self.keys, until)
        indices = range(hi - 1, lo - 1, -1) if descending else range(lo, hi)
        orders = self.orders
        for i in indices:
            yield orders[i]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _digest(*parts: object) -> int:
    text = ":".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big")


def parse_decimal(value: Any, name: str) -> Decimal | None:
    """A JSON number or numeric string as a Decimal (floats via their shortest repr)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise _invalid(f"invalid {name}")
    try:
        d = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise _invalid(f"invalid {name}") from None
    if not d.is_finite():
        raise _invalid(f"invalid {name}")
    return d


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
        always_open: bool = False,
        market_closed: bool = False,
    ) -> None:
        self.seed = seed
        self.now = now
        self.fill_chunk = fill_chunk
        self.volatility = volatility
        # Per step, the walk gives back this share of its distance from the day's open...
        self.reversion = reversion
        # ...and never strays further than this fraction from it.
        self.max_move = max_move
        self.multiplier = multiplier
        # Open around the clock (demos, tests at any hour), or closed whatever the calendar says.
        self.always_open = always_open
        self.market_closed = market_closed
        # The session under way, so day orders expire when its close passes.
        self._session: calendar.Session | None = None
        # Symbols whose trading is halted: new orders on them end `rejected` at the next step.
        self.halted: set[str] = set()
        self.listeners: list[Callable[[dict], None]] = []
        self.trade_listeners: list[Callable[[str, float, int, datetime], None]] = []
        self._last_ts: datetime | None = None
        self._start(Decimal(cash))

    def _start(self, cash: Decimal) -> None:
        """A fresh account and market (listeners and the time order of ids survive)."""
        self.cash = cash
        self.daytrade_count = 0
        self._rng = random.Random(_digest("broker", self.seed))
        self._symbols: dict[str, _Symbol] = {}
        self._positions: dict[str, _Position] = {}
        self._orders: dict[str, SimOrder] = {}
        self._by_client_id: dict[str, SimOrder] = {}
        self._all = _TimeIndex()
        self._open = _TimeIndex()
        self._closed = _TimeIndex()
        self._reserved = ZERO
        self._seq = itertools.count()
        self._created = self._time()
        self._last_equity = self.cash

    def reset(self, cash: Decimal = Decimal("100000")) -> None:
        """Start over: no orders, no positions, `cash`, start prices; walking symbols keep walking.

        Listeners stay attached, so running streams keep working across a reset.
        """
        walking = self.symbols()
        self.halted.clear()
        self._start(Decimal(cash))
        for symbol in walking:
            self.price(symbol)

    # ---------------------------------------------------------------- market

    def price(self, symbol: str) -> Decimal:
        """Current price; also starts the symbol's walk (so it prints on every step)."""
        state = self._state(symbol)
        state.walking = True
        return state.price

    def set_price(self, symbol: str, price: Decimal | float | str) -> None:
        """Move a symbol to `price` at once (a print at that price, matching on next step)."""
        value = parse_decimal(price, "price")
        if value is None or value <= 0:
            raise _invalid("price must be > 0")
        state = self._state(symbol)
        state.walking = True
        state.price = state.anchor = value.quantize(CENT)
        self._print(state, 100, self._time())

    def symbols(self) -> list[str]:
        """Symbols that currently walk and print."""
        return [s.symbol for s in self._symbols.values() if s.walking]

    @property
    def market_open(self) -> bool:
        return self.is_open_at(self._time())

    def is_open_at(self, at: datetime) -> bool:
        """Does the market trade at `at`: the calendar, unless forced closed or always open."""
        if self.market_closed:
            return False
        return self.always_open or calendar.is_open(at)

    def step(self, now: datetime | None = None) -> None:
        """One tick: end a finished session, then walk every active symbol, print, match."""
        at = now if now is not None else self._time()
        self._track_session(at)
        if not self.is_open_at(at):
            return
        for state in list(self._symbols.values()):
            if not state.walking:
                continue
            if state.symbol in self.halted:
                self._reject_fresh(state, at)
                continue
            state.fresh.clear()
            self._walk(state, at)
            self._match(state, at)

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

    def _reject_fresh(self, state: _Symbol, at: datetime) -> None:
        """A halted symbol prints nothing; orders reaching it are rejected (asynchronously)."""
        for order in state.fresh:
            if order.is_open:
                order.failed_at = at
                self._finish(order, "rejected", at)
                self._emit("rejected", order, reason="trading in the symbol is halted")
        state.fresh.clear()

    def _state(self, symbol: str) -> _Symbol:
        state = self._symbols.get(symbol)
        if state is None:
            rng = random.Random(_digest("walk", self.seed, symbol))
            start = _start_price(self.seed, symbol)
            state = _Symbol(symbol=symbol, rng=rng, price=start, lastday_price=start, anchor=start)
            self._symbols[symbol] = state
        return state

    def _walk(self, state: _Symbol, at: datetime) -> None:
        """Move the price: a seeded step, pulled back toward the day's open, capped."""
        rng = state.rng
        day = at.astimezone(NEW_YORK).date()
        if state.anchor_day != day:
            state.anchor, state.anchor_day = state.price, day
        if self.volatility:
            drift = math.log(float(state.price) / float(state.anchor)) * (1 - self.reversion)
            drift += rng.gauss(0.0, self.volatility)
            drift = max(-self.max_move, min(self.max_move, drift))
            new = (state.anchor * Decimal(repr(math.exp(drift)))).quantize(CENT)
            state.price = max(new, CENT)
        self._print(state, rng.choice((100, 100, 100, 200, 300, 500, 1, 10, 50)), at)

    def _print(self, state: _Symbol, size: int, at: datetime) -> None:
        minute = int(at.timestamp() // 60)
        p = state.price
        state.last_print = (p, size, at)
        bar = state.minutes.get(minute)
        if bar is None:
            state.minutes[minute] = _Minute(p, p, p, p, size, 1, p * size)
        else:
            bar.h = max(bar.h, p)
            bar.lo = min(bar.lo, p)
            bar.c = p
            bar.v += size
            bar.n += 1
            bar.pv += p * size
        for listener in list(self.trade_listeners):
            try:
                listener(state.symbol, float(p), size, at)
            except Exception:
                log.exception("trade listener failed")

    # --------------------------------------------------------------- account

    def account(self) -> dict[str, Any]:
        long_mv, short_mv = self._market_values()
        initial, maintenance = self._margins(long_mv, short_mv)
        return wire.account(
            cash=self.cash,
            long_market_value=long_mv,
            short_market_value=short_mv,
            buying_power=self.buying_power(),
            multiplier=self.multiplier,
            last_equity=self._last_equity,
            daytrade_count=self.daytrade_count,
            initial_margin=initial,
            maintenance_margin=maintenance,
            today=self._time().astimezone(NEW_YORK).date().isoformat(),
        )

    @property
    def last_equity(self) -> Decimal:
        """Equity at the previous close: the sandbox's account starts (and resets) all cash."""
        return self._last_equity

    def equity(self) -> Decimal:
        long_mv, short_mv = self._market_values()
        return self.cash + long_mv + short_mv

    def buying_power(self) -> Decimal:
        """Reg T style: (equity - initial margin) x multiplier, less what open orders hold."""
        long_mv, short_mv = self._market_values()
        equity = self.cash + long_mv + short_mv
        initial, _ = self._margins(long_mv, short_mv)
        return max(ZERO, (equity - initial) * self.multiplier - self._reserved)

    def _market_values(self) -> tuple[Decimal, Decimal]:
        long_mv = short_mv = ZERO
        for symbol, pos in self._positions.items():
            value = pos.qty * self._state(symbol).price
            if value > 0:
                long_mv += value
            else:
                short_mv += value
        return long_mv, short_mv

    def _margins(self, long_mv: Decimal, short_mv: Decimal) -> tuple[Decimal, Decimal]:
        gross = long_mv - short_mv
        return gross / self.multiplier, gross * Decimal("0.3")

    def positions(self) -> list[dict[str, Any]]:
        out = []
        for symbol in sorted(self._positions):
            pos = self._positions[symbol]
            state = self._state(symbol)
            out.append(
                wire.position(
                    symbol=symbol,
                    exchange=self.exchange(symbol),
                    qty=pos.qty,
                    avg_entry_price=pos.avg_entry_price,
                    current_price=state.price,
                    lastday_price=state.lastday_price,
                    qty_available=self._available(symbol, pos.qty),
                )
            )
        return out

    def position_qty(self, symbol: str) -> Decimal:
        pos = self._positions.get(symbol)
        return ZERO if pos is None else pos.qty

    def exchange(self, symbol: str) -> str:
        """The listing exchange; seeded load-test symbols outside the asset list get one by hash."""
        listed = assets.find(symbol)
        if listed is not None:
            return listed.exchange
        return ("NASDAQ", "NYSE", "NASDAQ", "ARCA")[_digest("exchange", symbol) % 4]

    def _available(self, symbol: str, qty: Decimal) -> Decimal:
        held = self._symbols[symbol].pending_close if symbol in self._symbols else ZERO
        return qty - held if qty > 0 else qty + held

    def clock(self) -> dict[str, Any]:
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
        return wire.clock(now, is_open, opening, close)

    # ---------------------------------------------------------------- orders

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validate and accept an order (`POST /v2/orders`); emits `new`."""
        order = self._build(body)
        state = self._state(order.symbol)
        self._check_funds(order, state)
        plans = self._plan_legs(body, order, state)
        self._accept(order)
        self._emit("new", order)
        self._add_legs(order, plans)
        return wire.order(order, nested=True)

    def _build(self, body: dict[str, Any]) -> SimOrder:
        if not isinstance(body, dict):
            raise _invalid("request body must be a JSON object")
        symbol = body.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise _invalid("symbol is required")
        listed = assets.find(symbol)
        if listed is None:
            raise _invalid(f'asset "{symbol.upper()}" not found')
        if not listed.tradable:
            raise _invalid(f"asset {listed.symbol} is not tradable")
        symbol = listed.symbol
        side = body.get("side")
        if side not in SIDES:
            raise _invalid("invalid side")
        kind = body.get("type", body.get("order_type"))
        if kind not in ORDER_TYPES:
            raise _invalid("invalid order type")
        tif = body.get("time_in_force")
        if tif not in TIME_IN_FORCE:
            raise _invalid("invalid time_in_force")
        with _refusals():
            order_class = legs.order_class(body.get("order_class"))
        if order_class == "oco" and kind == "limit" and body.get("limit_price") is None:
            # An OCO is its own take-profit: a limit order at take_profit.limit_price.
            take_profit = body.get("take_profit")
            body = {**body, "limit_price": take_profit.get("limit_price") if isinstance(take_profit, dict) else None}
        qty = parse_decimal(body.get("qty"), "qty")
        notional = parse_decimal(body.get("notional"), "notional")
        limit_price = parse_decimal(body.get("limit_price"), "limit_price")
        stop_price = parse_decimal(body.get("stop_price"), "stop_price")
        trail_percent = parse_decimal(body.get("trail_percent"), "trail_percent")
        trail_price = parse_decimal(body.get("trail_price"), "trail_price")
        extended = body.get("extended_hours") or False
        if not isinstance(extended, bool):
            raise _invalid("invalid extended_hours")
        client_id = body.get("client_order_id")
        if client_id is None or client_id == "":
            client_id = str(uuid.uuid4())
        if not isinstance(client_id, str):
            raise _invalid("invalid client_order_id")
        if len(client_id) > _MAX_CLIENT_ORDER_ID:
            raise _invalid("client_order_id must be no more than 128 characters")

        if qty is None and notional is None:
            raise _invalid("qty or notional is required")
        if qty is not None and notional is not None:
            raise _invalid("only one of qty or notional may be given")
        if qty is not None and qty <= 0:
            raise _invalid("qty must be > 0")
        if notional is not None:
            if notional <= 0:
                raise _invalid("notional must be > 0")
            if kind != "market":
                raise _invalid("notional orders must be market orders")
            if notional.as_tuple().exponent < -2:  # type: ignore[operator]
                raise _invalid("notional must be limited to 2 decimal places")
        fractional = notional is not None or (qty is not None and qty != qty.to_integral_value())
        if fractional and tif != "day":
            raise _invalid("fractional orders must be DAY orders")
        if fractional and kind not in ("market", "limit"):
            raise _invalid("fractional orders must be market or limit orders")
        if fractional and not listed.fractionable:
            raise _invalid(f"asset {symbol} is not fractionable")
        if qty is not None and qty.as_tuple().exponent < -9:  # type: ignore[operator]
            raise _invalid("qty must be limited to 9 decimal places")

        if kind in ("limit", "stop_limit"):
            if limit_price is None:
                raise _invalid("limit_price is required")
            _check_price(limit_price, "limit_price")
        elif limit_price is not None:
            raise _invalid(f"limit_price must not be given for {kind} orders")
        if kind in ("stop", "stop_limit"):
            if stop_price is None:
                raise _invalid("stop_price is required")
            _check_price(stop_price, "stop_price")
        elif stop_price is not None and kind != "trailing_stop":
            raise _invalid(f"stop_price must not be given for {kind} orders")
        if kind == "trailing_stop":
            if (trail_percent is None) == (trail_price is None):
                raise _invalid("exactly one of trail_price or trail_percent is required")
            if trail_price is not None and trail_price <= 0:
                raise _invalid("trail_price must be > 0")
            if trail_percent is not None and not 0 < trail_percent < 100:
                raise _invalid("trail_percent must be between 0 and 100")
            if tif not in ("day", "gtc"):
                raise _invalid("trailing stop orders must be DAY or GTC orders")
            stop_price = None
        elif trail_percent is not None or trail_price is not None:
            raise _invalid("trail_price and trail_percent are for trailing_stop orders only")
        if extended and (kind != "limit" or tif != "day"):
            raise _invalid("extended hours order must be DAY limit orders")

        if client_id in self._by_client_id:
            raise _invalid("client_order_id must be unique")

        pos = self.position_qty(symbol)
        closing = (side == "sell" and pos > 0) or (side == "buy" and pos < 0)
        if order_class != "simple":
            with _refusals():
                legs.check_entry(
                    order_class, kind=kind, tif=tif, extended=extended, fractional=fractional, closing=closing
                )
        at = self._next_ts()
        intent = {
            ("buy", True): "buy_to_close",
            ("buy", False): "buy_to_open",
            ("sell", True): "sell_to_close",
            ("sell", False): "sell_to_open",
        }[(side, closing)]
        order = SimOrder(
            id=str(uuid.uuid4()),
            client_order_id=client_id,
            symbol=symbol,
            side=side,
            type=kind,
            time_in_force=tif,
            created_at=at,
            submitted_at=at,
            updated_at=at,
            qty=qty,
            notional=notional,
            limit_price=limit_price,
            stop_price=stop_price,
            trail_percent=trail_percent,
            trail_price=trail_price,
            extended_hours=extended,
            position_intent=intent,
            closing=closing,
            order_class=order_class,
        )
        return order

    def _check_funds(self, order: SimOrder, state: _Symbol) -> None:
        """Refuse what the account cannot carry, as Alpaca does, with 403."""
        pos = self.position_qty(order.symbol)
        qty = order.qty if order.qty is not None else (order.notional or ZERO) / state.price
        if order.closing:
            available = abs(self._available(order.symbol, pos))
            if qty > available:
                raise BrokerError(
                    403,
                    40310000,
                    f"insufficient qty available for order (requested: {wire.num(qty)}, "
                    f"available: {wire.num(available)})",
                    symbol=order.symbol,
                    existing_qty=wire.num(abs(pos)),
                    held_for_orders=wire.num(abs(pos) - available),
                )
            return
        if order.side == "sell" and qty != qty.to_integral_value():
            raise BrokerError(403, 40310000, "fractional orders cannot be sold short")
        listed = assets.find(order.symbol)
        if order.side == "sell" and listed is not None and not listed.shortable:
            raise BrokerError(403, 40310000, f"asset {order.symbol} cannot be sold short")
        cost = self._reference_cost(order, state)
        bp = self.buying_power()
        if cost > bp:
            raise BrokerError(
                403,
                40310000,
                "insufficient buying power",
                buying_power=wire.num(bp.quantize(CENT)),
                cost_basis=wire.num(cost.quantize(CENT)),
            )

    def _reference_cost(self, order: SimOrder, state: _Symbol) -> Decimal:
        """What the unfilled rest of an opening order may cost, for buying power."""
        if order.closing:
            return ZERO
        if order.notional is not None:
            return order.notional - order.filled_value
        ref = order.limit_price or order.stop_price or state.price
        if order.side == "sell":
            ref = max(ref, state.price)
        return order.remaining * ref

    def _accept(self, order: SimOrder, *, walk: bool = True) -> None:
        self._register(order)
        self._go_live(order, walk=walk)

    def _register(self, order: SimOrder) -> None:
        self._orders[order.id] = order
        self._by_client_id[order.client_order_id] = order
        self._all.add(order)
        self._open.add(order)

    def _go_live(self, order: SimOrder, *, walk: bool = True) -> None:
        """Hold what the order needs and put it where the matching steps will find it."""
        state = self._state(order.symbol)
        state.walking = state.walking or walk
        self._set_reserve(order, self._reference_cost(order, state))
        if order.holds:
            state.pending_close += order.remaining
        if walk:
            state.fresh.append(order)
        if order.type == "trailing_stop":
            order.hwm = state.price
            order.stop_price = _trail_stop(order)
        self._park(order, state)

    def _park(self, order: SimOrder, state: _Symbol) -> None:
        """Put a working order where the next steps will look at it."""
        order.in_active = False
        state.active.pop(order.id, None)
        seq = next(self._seq)
        immediate = order.time_in_force in ("ioc", "fok") or order.type == "market"
        if immediate or order.type == "trailing_stop" or (order.triggered and order.type == "stop"):
            order.in_active = True
            state.active[order.id] = order
        elif order.type == "limit" or order.triggered:
            assert order.limit_price is not None
            if order.side == "buy":
                heapq.heappush(state.buy_limits, (-order.limit_price, seq, order))
            else:
                heapq.heappush(state.sell_limits, (order.limit_price, seq, order))
        else:
            assert order.stop_price is not None
            if order.side == "buy":
                heapq.heappush(state.buy_stops, (order.stop_price, seq, order))
            else:
                heapq.heappush(state.sell_stops, (-order.stop_price, seq, order))

    # ---------------------------------------------------- bracket, oco, oto

    def _plan_legs(self, body: dict[str, Any], order: SimOrder, state: _Symbol) -> list[legs.LegPlan]:
        """Check a group order's exits (see `legs`) before anything is accepted."""
        if order.order_class == "simple":
            return []
        take_profit = _exit(body.get("take_profit"), "take_profit")
        stop_loss = _exit(body.get("stop_loss"), "stop_loss")
        with _refusals():
            return legs.plan(
                order.order_class,
                side=order.side,
                entry_limit=order.limit_price,
                market_price=state.price,
                take_profit=take_profit,
                stop_loss=stop_loss,
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
        state = self._state(order.symbol)
        if order.holds:
            state.pending_close = max(ZERO, state.pending_close - (order.remaining - remaining))
        order.qty = order.filled_qty + remaining
        order.updated_at = at

    def _end_group(self, order: SimOrder, at: datetime) -> None:
        """One order of a group ended unfilled: every other open order of the group is canceled."""
        for member in order.group:
            if member.is_open:
                member.canceled_at = at
                self._finish(member, "canceled", at)
                self._emit("canceled", member)

    def get_order(self, order_id: str, nested: bool = False) -> dict[str, Any]:
        order = self._orders.get(order_id)
        if order is None:
            raise _not_found()
        return wire.order(order, nested=nested)

    def get_order_by_client_id(self, client_order_id: str) -> dict[str, Any]:
        order = self._by_client_id.get(client_order_id)
        if order is None:
            raise _not_found()
        return wire.order(order)

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
    ) -> list[dict[str, Any]]:
        """`GET /v2/orders`: newest first by default; `after`/`until` exclusive."""
        if status not in ("open", "closed", "all"):
            raise _invalid("invalid status")
        if direction not in ("asc", "desc"):
            raise _invalid("invalid direction")
        if not 1 <= limit <= 500:
            raise _invalid("limit must be between 1 and 500")
        if side is not None and side not in SIDES:
            raise _invalid("invalid side")
        index = {"open": self._open, "closed": self._closed, "all": self._all}[status]
        wanted = {s.upper() for s in symbols} if symbols else None
        out: list[dict[str, Any]] = []
        for order in index.scan(after, until, direction == "desc"):
            if nested and order.parent is not None and _listed(order.parent, status):
                continue  # shown among its entry's legs
            if wanted is not None and order.symbol not in wanted:
                continue
            if side is not None and order.side != side:
                continue
            out.append(wire.order(order, nested=nested))
            if len(out) >= limit:
                break
        return out

    def cancel(self, order_id: str) -> None:
        """`DELETE /v2/orders/{id}`: cancels at once and emits `canceled`."""
        order = self._orders.get(order_id)
        if order is None:
            raise _not_found()
        if not order.is_open:
            raise BrokerError(422, 42210000, f'order is already in "{order.status}" state')
        at = self._next_ts()
        order.canceled_at = at
        self._finish(order, "canceled", at)
        self._emit("canceled", order)

    def cancel_all(self) -> list[dict[str, Any]]:
        """`DELETE /v2/orders`: one entry per open order, like Alpaca's 207 body."""
        results = []
        for order in list(self._open.orders):
            if order.status == "canceled":  # canceled with its group a moment ago
                results.append({"id": order.id, "status": 200, "body": wire.order(order)})
                continue
            try:
                self.cancel(order.id)
            except BrokerError as exc:
                results.append({"id": order.id, "status": exc.status, "body": exc.body()})
            else:
                results.append({"id": order.id, "status": 200, "body": wire.order(order)})
        return results

    def replace(self, order_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """`PATCH /v2/orders/{id}`: a new order takes the old one's place.

        Emits `replaced` for the old order (now carrying `replaced_by`), then
        `new` for the replacement, which is what the call returns.
        """
        old = self._orders.get(order_id)
        if old is None:
            raise _not_found()
        if old.status != "new":
            raise BrokerError(422, 42210000, f'order is already in "{old.status}" state')
        if not isinstance(body, dict):
            raise _invalid("request body must be a JSON object")
        allowed = {"qty", "time_in_force", "limit_price", "stop_price", "trail", "client_order_id"}
        unknown = set(body) - allowed
        if unknown:
            raise _invalid(f"cannot replace {', '.join(sorted(unknown))}")
        merged: dict[str, Any] = {
            "symbol": old.symbol,
            "side": old.side,
            "type": old.type,
            "time_in_force": body.get("time_in_force") or old.time_in_force,
            "qty": body.get("qty", wire.num(old.qty)),
            "notional": None if "qty" in body else wire.num(old.notional),
            "limit_price": body.get("limit_price", wire.num(old.limit_price)),
            "stop_price": body.get("stop_price", wire.num(old.stop_price)),
            "extended_hours": old.extended_hours,
            "client_order_id": body.get("client_order_id"),
        }
        if old.type == "trailing_stop":
            merged["stop_price"] = None
            trail = body.get("trail")
            key = "trail_percent" if old.trail_percent is not None else "trail_price"
            merged[key] = trail if trail is not None else wire.num(old.trail_percent or old.trail_price)
        elif "trail" in body:
            raise _invalid("trail is for trailing_stop orders only")
        state = self._state(old.symbol)
        held, close_held = old.reserve, (old.remaining if old.holds else ZERO)
        # The replacement is judged as if the old order's holds were already released.
        self._set_reserve(old, ZERO)
        state.pending_close -= close_held
        try:
            new = self._build(merged)
            if old.order_class == "simple":  # a group's orders were funded when the group was accepted
                self._check_funds(new, state)
        finally:
            self._set_reserve(old, held)
            state.pending_close += close_held
        at = new.submitted_at
        old.replaced_at = at
        old.replaced_by = new.id
        new.replaces = old.id
        legs.take_place(old, new)
        self._finish(old, "replaced", at)
        self._emit("replaced", old)
        self._accept(new)
        self._emit("new", new)
        return wire.order(new)

    def close_position(
        self, symbol: str, qty: Decimal | None = None, percentage: Decimal | None = None
    ) -> dict[str, Any]:
        """`DELETE /v2/positions/{symbol}`: a market order that flattens (part of) it."""
        symbol = symbol.upper()
        pos = self._positions.get(symbol)
        if pos is None:
            raise BrokerError(404, 40410000, "position does not exist")
        size = abs(pos.qty)
        if qty is not None and percentage is not None:
            raise _invalid("only one of qty or percentage may be given")
        if qty is not None:
            if not 0 < qty <= size:
                raise BrokerError(403, 40310000, "insufficient qty available for order")
            size = qty
        elif percentage is not None:
            if not 0 < percentage <= 100:
                raise _invalid("percentage must be between 0 and 100")
            size = (size * percentage / 100).quantize(Decimal("1e-9"), rounding=ROUND_DOWN)
        side = "sell" if pos.qty > 0 else "buy"
        return self.submit(
            {"symbol": symbol, "side": side, "type": "market", "time_in_force": "day", "qty": wire.num(size)}
        )

    def close_all_positions(self, cancel_orders: bool = False) -> list[dict[str, Any]]:
        """`DELETE /v2/positions`: one entry per position, like Alpaca's 207 body."""
        if cancel_orders:
            self.cancel_all()
        results = []
        for symbol in sorted(self._positions):
            try:
                placed = self.close_position(symbol)
            except BrokerError as exc:
                results.append({"symbol": symbol, "status": exc.status, "body": exc.body()})
            else:
                results.append({"symbol": symbol, "status": 200, "order_id": placed["id"], "body": placed})
        return results

    def order_count(self) -> int:
        return len(self._all)

    def open_order_count(self) -> int:
        return len(self._open)

    def expire_day_orders(self) -> int:
        """End of the trading day: open day orders expire (emits `expired` each)."""
        count = 0
        for order in list(self._open.orders):
            # An expiring entry cancels its held exits on the way: skip what already ended.
            if order.is_open and order.time_in_force in ("day", "opg", "cls"):
                at = self._next_ts()
                order.expired_at = at
                self._finish(order, "expired", at)
                self._emit("expired", order)
                count += 1
        return count

    # -------------------------------------------------------------- matching

    def _match(self, state: _Symbol, at: datetime) -> None:
        price = state.price
        while state.buy_limits and -state.buy_limits[0][0] >= price:
            self._activate(state, heapq.heappop(state.buy_limits)[2])
        while state.sell_limits and state.sell_limits[0][0] <= price:
            self._activate(state, heapq.heappop(state.sell_limits)[2])
        while state.buy_stops and state.buy_stops[0][0] <= price:
            self._trigger(state, heapq.heappop(state.buy_stops)[2])
        while state.sell_stops and -state.sell_stops[0][0] >= price:
            self._trigger(state, heapq.heappop(state.sell_stops)[2])
        for order in list(state.active.values()):
            if not order.is_open:
                state.active.pop(order.id, None)
                order.in_active = False
                continue
            self._work(order, state, at)

    def _activate(self, state: _Symbol, order: SimOrder) -> None:
        if order.is_open and not order.in_active:
            order.in_active = True
            state.active[order.id] = order

    def _trigger(self, state: _Symbol, order: SimOrder) -> None:
        if order.is_open and not order.in_active:
            order.triggered = True
            self._activate(state, order)

    def _work(self, order: SimOrder, state: _Symbol, at: datetime) -> None:
        price = state.price
        order.steps_seen += 1
        if order.steps_seen == 1 and not order.closing and order.filled_qty == 0:
            # Funds are re-checked when the order reaches the market: the price
            # may have moved, or other fills used the buying power meanwhile.
            cost = self._reference_cost(order, state)
            if cost > self.buying_power() + order.reserve:
                order.failed_at = at
                self._finish(order, "rejected", at)
                self._emit("rejected", order, reason="insufficient buying power")
                return
        if order.type == "trailing_stop" and not order.triggered:
            assert order.hwm is not None
            order.hwm = max(order.hwm, price) if order.side == "sell" else min(order.hwm, price)
            order.stop_price = _trail_stop(order)
            if (order.side == "sell" and price <= order.stop_price) or (
                order.side == "buy" and price >= order.stop_price
            ):
                order.triggered = True
        marketable = self._marketable(order, price)
        room = self._unheld(order)
        tif = order.time_in_force
        if tif == "fok":
            wanted = self._wanted(order, price, chunked=False)
            if marketable and (room is None or wanted <= room):
                self._fill(order, wanted, price, at)
            else:
                self._expire(order, at)
            return
        if marketable:
            wanted = self._wanted(order, price, chunked=True)
            if room is None or min(wanted, room) > 0:
                self._fill(order, wanted if room is None else min(wanted, room), price, at)
        if tif == "ioc":
            if order.is_open:
                self._expire(order, at)
            return
        if order.is_open and not marketable and order.type != "trailing_stop":
            self._park(order, state)  # back to its heap until the price returns

    def _unheld(self, order: SimOrder) -> Decimal | None:
        """What an opening order may fill against a position it now reduces (None: no limit).

        An order placed while flat may meet a position opened after it; it must not
        take the shares held for that position's closing orders (exits, sells of the
        long), which would leave them holding more than there is.
        """
        if order.closing:
            return None
        pos = self.position_qty(order.symbol)
        state = self._symbols.get(order.symbol)
        held = state.pending_close if state is not None else ZERO
        reduces = (pos > 0 and order.side == "sell") or (pos < 0 and order.side == "buy")
        if not reduces or held <= 0:
            return None
        return max(ZERO, abs(pos) - held)

    def _marketable(self, order: SimOrder, price: Decimal) -> bool:
        kind = order.type
        if kind in ("stop", "stop_limit", "trailing_stop") and not order.triggered:
            if kind == "trailing_stop" or order.stop_price is None:
                return False
            crossed = price >= order.stop_price if order.side == "buy" else price <= order.stop_price
            if not crossed:
                return False
            order.triggered = True
        if kind in ("market", "stop", "trailing_stop"):
            return True
        assert order.limit_price is not None
        return price <= order.limit_price if order.side == "buy" else price >= order.limit_price

    def _wanted(self, order: SimOrder, price: Decimal, *, chunked: bool) -> Decimal:
        if order.notional is not None:
            rest = order.notional - order.filled_value
            return (rest / price).quantize(Decimal("1e-9"), rounding=ROUND_DOWN)
        rest = order.remaining
        return min(rest, self.fill_chunk) if chunked else rest

    def _fill(self, order: SimOrder, qty: Decimal, price: Decimal, at: datetime) -> None:
        if qty <= 0:
            self._expire(order, at)
            return
        state = self._state(order.symbol)
        signed = qty if order.side == "buy" else -qty
        pos = self._positions.get(order.symbol)
        if pos is None:
            pos = self._positions[order.symbol] = _Position()
        today = at.astimezone(NEW_YORK).date()
        before = pos.qty
        self._apply(pos, signed, price)
        self.cash -= signed * price
        if abs(pos.qty) > abs(before) or (before != 0 and pos.qty * before < 0):
            pos.opened_on = today
        elif pos.opened_on == today and not order.day_traded:
            order.day_traded = True
            self.daytrade_count += 1
        if pos.qty == 0:
            del self._positions[order.symbol]
        order.filled_qty += qty
        order.filled_value += qty * price
        order.updated_at = at
        if order.holds:
            state.pending_close = max(ZERO, state.pending_close - qty)
        done = order.notional is not None or order.remaining <= 0
        if done:
            order.filled_at = at
            self._finish(order, "filled", at)
        else:
            order.status = "partially_filled"
            self._set_reserve(order, self._reference_cost(order, state))
        self._emit(
            "fill" if done else "partial_fill",
            order,
            execution_id=str(uuid.uuid4()),
            price=wire.num(price),
            qty=wire.num(qty),
            position_qty=wire.num(self.position_qty(order.symbol)),
        )
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

    @staticmethod
    def _apply(pos: _Position, signed: Decimal, price: Decimal) -> None:
        if pos.qty == 0 or (pos.qty > 0) == (signed > 0):
            pos.qty += signed
            pos.cost += signed * price
            return
        closing = min(abs(signed), abs(pos.qty))
        direction = 1 if pos.qty > 0 else -1
        pos.cost -= pos.avg_entry_price * closing * direction
        pos.qty += signed
        if pos.qty == 0:
            pos.cost = ZERO
        elif (pos.qty > 0) != (direction > 0):  # flipped through zero
            pos.cost = pos.qty * price

    def _expire(self, order: SimOrder, at: datetime) -> None:
        order.expired_at = at
        self._finish(order, "expired", at)
        self._emit("expired", order)

    def _finish(self, order: SimOrder, status: str, at: datetime) -> None:
        """Move an order to a final status and out of every open structure."""
        holding = order.holds
        order.status = status
        order.updated_at = at
        self._open.remove(order)
        self._closed.add(order)
        self._set_reserve(order, ZERO)
        state = self._symbols.get(order.symbol)
        if state is not None:
            state.active.pop(order.id, None)
            if holding:
                state.pending_close = max(ZERO, state.pending_close - order.remaining)
        order.in_active = False

    def _set_reserve(self, order: SimOrder, amount: Decimal) -> None:
        self._reserved += amount - order.reserve
        order.reserve = amount

    def _emit(self, event: str, order: SimOrder, **extra: str) -> None:
        """Tell the listeners; an order of a group announced as ended unfilled then ends the rest of it.

        (After the announcement, so the order a client canceled is reported before the others.)
        """
        payload: dict[str, Any] = {
            "event": event,
            "order": wire.order(order),
            "timestamp": wire.ts(order.updated_at),
        }
        payload.update(extra)
        for listener in list(self.listeners):
            try:
                listener(payload)
            except Exception:
                log.exception("trade-update listener failed")
        if event in ("canceled", "expired", "rejected") and len(order.group) > 1:
            self._end_group(order, order.updated_at)

    # ------------------------------------------------------------------ bulk

    def seed_bulk(self, open_orders: int, positions: int) -> None:
        """Quickly create resting orders and positions (benchmarks), without events.

        Positions are transferred in (cash unchanged). Open orders are GTC sell
        limits far above the market, one share each, spread over the seeded
        positions so they hold no buying power; with no positions to spread
        over, they are short-sell limits on a few symbols instead.
        """
        if open_orders < 0 or positions < 0:
            raise _invalid("counts must be >= 0")
        held: list[str] = []
        per_position = -(-open_orders // positions) if positions else 0
        for i in range(positions):
            symbol = _bulk_symbol(i)
            state = self._state(symbol)
            pos = self._positions.setdefault(symbol, _Position())
            qty = Decimal(max(per_position, 1 + self._rng.randrange(100)))
            pos.qty += qty
            pos.cost += qty * state.price
            held.append(symbol)
        targets = held or ["AAPL", "MSFT", "SPY", "IBM"]
        now = self._time()
        start = now - timedelta(microseconds=open_orders + 1)
        if self._last_ts is not None and start <= self._last_ts:
            start = self._last_ts + timedelta(microseconds=1)
        for i in range(open_orders):
            symbol = targets[i % len(targets)]
            state = self._state(symbol)
            at = start + timedelta(microseconds=i)
            closing = bool(held)
            order = SimOrder(
                id=str(uuid.uuid4()),
                client_order_id=f"seed-{at.timestamp():.6f}-{i}",
                symbol=symbol,
                side="sell",
                type="limit",
                time_in_force="gtc",
                created_at=at,
                submitted_at=at,
                updated_at=at,
                qty=Decimal(1),
                limit_price=(state.price * 3).quantize(CENT),
                position_intent="sell_to_close" if closing else "sell_to_open",
                closing=closing,
            )
            self._last_ts = at
            self._accept(order, walk=False)

    # ------------------------------------------------------------------ bars

    def bars(
        self,
        symbols: Iterable[str],
        timeframe: str = "1Min",
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 1000,
        page_token: str | None = None,
    ) -> dict[str, Any]:
        """`GET /v2/stocks/bars`: recorded prints where the sandbox ran, synthetic before.

        Bars come sorted by symbol, then time; `limit` counts bars across all
        symbols of the page and `next_page_token` resumes where it stopped.
        History before the broker started is a deterministic curve ending at
        the start price, so it joins the live walk without a jump.
        """
        width, unit = _parse_timeframe(timeframe)
        if not 1 <= limit <= 10000:
            raise _invalid("invalid limit: must be between 1 and 10000")
        now = self._time()
        if start is not None and end is not None and end < start:
            raise _invalid("end should not be before start")
        end = min(end or now, now)
        start = start or datetime.combine(now.astimezone(NEW_YORK).date(), time(0), NEW_YORK)
        names = sorted({s.strip().upper() for s in symbols if s.strip()})
        if not names:
            raise _invalid("symbols is required")
        resume: tuple[str, datetime] | None = None
        if page_token:
            try:
                sym, stamp = base64.urlsafe_b64decode(page_token.encode()).decode().split("|")
                resume = (sym, datetime.fromisoformat(stamp))
            except (ValueError, UnicodeDecodeError):
                raise _invalid("invalid page_token") from None
        out: dict[str, list[dict[str, Any]]] = {}
        count = 0
        for symbol in names:
            if resume is not None and symbol < resume[0]:
                continue
            first = start
            if resume is not None and symbol == resume[0]:
                first = resume[1]
            state = self._state(symbol)
            for bucket in _buckets(first, end, width, unit):
                if count >= limit:
                    token = f"{symbol}|{bucket.isoformat()}".encode()
                    return {"bars": out, "next_page_token": base64.urlsafe_b64encode(token).decode()}
                if not self._trades_during(bucket, width, unit):
                    continue
                made = self._bar(state, bucket, _bucket_end(bucket, width, unit))
                if made is not None:
                    out.setdefault(symbol, []).append(made)
                    count += 1
        return {"bars": out, "next_page_token": None}

    def _trades_during(self, bucket: datetime, width: int, unit: str) -> bool:
        """Has a bar starting at `bucket` any trading in it? Minutes and hours: extended hours."""
        if self.always_open or unit in ("Week", "Month"):
            return True
        day = calendar.session(calendar.local_day(bucket))
        if unit == "Day":
            return day is not None
        finish = _bucket_end(bucket, width, unit)
        return day is not None and bucket < day.extended_close and finish > day.extended_open

    def last_print(self, symbol: str) -> tuple[Decimal, int, datetime] | None:
        """Price, size and time of the symbol's latest print since the broker started, if any."""
        state = self._symbols.get(symbol.upper())
        return None if state is None else state.last_print

    def latest_bar(self, symbol: str) -> dict[str, Any] | None:
        """The bar of the latest minute with prints (`/v2/stocks/bars/latest`)."""
        state = self._state(symbol.upper())
        now = self._time()
        minute = int(now.timestamp() // 60)
        if state.minutes:
            minute = max(state.minutes)
        begin = datetime.fromtimestamp(minute * 60, UTC)
        return self._bar(state, begin, begin + timedelta(minutes=1))

    def _bar(self, state: _Symbol, begin: datetime, finish: datetime) -> dict[str, Any] | None:
        live_from = self._created
        now = self._time()
        if begin >= now:
            return None
        if finish <= live_from:
            return self._synthetic_bar(state, begin, finish)
        first_minute = int(begin.timestamp() // 60)
        last_minute = int(min(finish, now).timestamp() // 60)
        merged: _Minute | None = None
        if begin < live_from:
            syn = self._synthetic_bar(state, begin, live_from)
            merged = _Minute(
                Decimal(str(syn["o"])),
                Decimal(str(syn["h"])),
                Decimal(str(syn["l"])),
                Decimal(str(syn["c"])),
                syn["v"],
                syn["n"],
                Decimal(str(syn["vw"])) * syn["v"],
            )
        minutes = state.minutes
        span = range(first_minute, last_minute + 1)
        keys = span if len(span) <= len(minutes) else sorted(k for k in minutes if k in span)
        for minute in keys:
            m = minutes.get(minute)
            if m is None:
                continue
            if merged is None:
                merged = _Minute(m.o, m.h, m.lo, m.c, m.v, m.n, m.pv)
                continue
            merged.h = max(merged.h, m.h)
            merged.lo = min(merged.lo, m.lo)
            merged.c = m.c
            merged.v += m.v
            merged.n += m.n
            merged.pv += m.pv
        if merged is None:
            return None
        vw = float((merged.pv / merged.v).quantize(Decimal("0.0001"))) if merged.v else None
        return wire.bar(
            begin,
            float(merged.o),
            float(merged.h),
            float(merged.lo),
            float(merged.c),
            merged.v,
            merged.n,
            vw if vw is not None else float(merged.c),
        )

    def _synthetic_bar(self, state: _Symbol, begin: datetime, finish: datetime) -> dict:
        o = self._curve(state, begin)
        c = self._curve(state, finish)
        minutes = max(1.0, (finish - begin).total_seconds() / 60)
        noise = (_digest("bar", self.seed, state.symbol, begin.timestamp()) % 1000) / 1000
        spread = 0.0004 * math.sqrt(minutes) * (0.5 + noise)
        h = round(max(o, c) * (1 + spread), 2)
        lo = round(min(o, c) * (1 - spread), 2)
        volume = int(minutes * (500 + _digest("vol", self.seed, state.symbol, begin) % 4500))
        trades = max(1, volume // 90)
        vw = round((o + h + lo + c) / 4, 4)
        return wire.bar(begin, o, h, lo, c, volume, trades, vw)

    def _curve(self, state: _Symbol, at: datetime) -> float:
        """Deterministic price history, anchored so it meets the start price at creation."""
        base = float(state.lastday_price)
        phase = (_digest("phase", self.seed, state.symbol) % 6283) / 1000

        def shape(t: float) -> float:
            m = t / 60
            wiggle = hash_noise(self.seed, state.symbol, int(m)) * 0.0015
            return 0.01 * math.sin(m / 62 + phase) + 0.04 * math.sin(m / 1500 + 2 * phase) + wiggle

        value = base * math.exp(shape(at.timestamp()) - shape(self._created.timestamp()))
        return round(max(value, 0.01), 2)

    # ------------------------------------------------------------------ misc

    def _time(self) -> datetime:
        return self.now()

    def _next_ts(self) -> datetime:
        """A timestamp strictly after every earlier one, so order times never tie."""
        at = self._time()
        if self._last_ts is not None and at <= self._last_ts:
            at = self._last_ts + timedelta(microseconds=1)
        self._last_ts = at
        return at


def hash_noise(seed: int, symbol: str, n: int) -> float:
    """A deterministic value in [-1, 1) for (seed, symbol, n)."""
    return (_digest("noise", seed, symbol, n) % 20000) / 10000 - 1


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """`legs` refuses with the shared `BadRequest`; the engine's callers expect a `BrokerError`."""
    try:
        yield
    except BadRequest as exc:
        raise BrokerError(exc.status, exc.code, exc.message) from None


def _exit(raw: Any, name: str) -> legs.Exit | None:
    """A request's `take_profit` or `stop_loss` object, prices parsed and checked."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _invalid(f"invalid {name}")
    prices = {}
    for key in ("limit_price", "stop_price"):
        value = parse_decimal(raw.get(key), f"{name}.{key}")
        if value is not None:
            _check_price(value, f"{name}.{key}")
        prices[key] = value
    return legs.Exit(**prices)


def _listed(order: SimOrder, status: str) -> bool:
    """Would `GET /v2/orders?status=...` list this order?"""
    return status == "all" or (status == "open") == order.is_open


def _check_price(price: Decimal, name: str) -> None:
    if price <= 0:
        raise _invalid(f"{name} must be > 0")
    places = -price.normalize().as_tuple().exponent  # type: ignore[operator]
    if places > (2 if price >= 1 else 4):
        raise BrokerError(
            422,
            42210000,
            f"invalid {name} {wire.num(price)}. sub-penny increment does not fulfill minimum pricing criteria",
        )


def _trail_stop(order: SimOrder) -> Decimal:
    assert order.hwm is not None
    if order.trail_price is not None:
        offset = order.trail_price
    else:
        assert order.trail_percent is not None
        offset = order.hwm * order.trail_percent / 100
    stop = order.hwm - offset if order.side == "sell" else order.hwm + offset
    return max(stop.quantize(CENT), CENT)


def _start_price(seed: int, symbol: str) -> Decimal:
    """Where a symbol's walk starts: near its listed reference price, within 5% by seed."""
    listed = assets.find(symbol)
    if listed is None:  # a made-up load-test symbol
        return Decimal(20 + _digest("start", seed, symbol) % 48000 / 100).quantize(CENT)
    jitter = Decimal(_digest("start", seed, symbol) % 2001 - 1000) / 20000
    return max(CENT, (listed.reference_price * (1 + jitter)).quantize(CENT))


def _bulk_symbol(i: int) -> str:
    """Distinct made-up tickers for seeded positions: QAAA, QAAB, ..."""
    letters = []
    for _ in range(3):
        i, r = divmod(i, 26)
        letters.append(chr(65 + r))
    prefix = "Q" if i == 0 else "Q" + chr(65 + (i - 1) % 26)
    return prefix + "".join(reversed(letters))


_TIMEFRAME_RE = re.compile(r"^(\d+)(Min|T|Hour|H|Day|D|Week|W|Month|M)$")
_UNITS = {
    "Min": "Min",
    "T": "Min",
    "Hour": "Hour",
    "H": "Hour",
    "Day": "Day",
    "D": "Day",
    "Week": "Week",
    "W": "Week",
    "Month": "Month",
    "M": "Month",
}


def _parse_timeframe(text: str) -> tuple[int, str]:
    match = _TIMEFRAME_RE.match(text or "")
    if not match:
        raise _invalid(f"invalid timeframe {text!r}")
    width, unit = int(match.group(1)), _UNITS[match.group(2)]
    limits = {"Min": 59, "Hour": 23, "Day": 1, "Week": 1, "Month": 12}
    if not 1 <= width <= limits[unit]:
        raise _invalid(f"invalid timeframe {text!r}")
    return width, unit


def _floor(at: datetime, width: int, unit: str) -> datetime:
    if unit in ("Min", "Hour"):
        seconds = width * (60 if unit == "Min" else 3600)
        return datetime.fromtimestamp(at.timestamp() // seconds * seconds, UTC)
    local = at.astimezone(NEW_YORK)
    if unit == "Day":
        day = local.date()
    elif unit == "Week":
        day = local.date() - timedelta(days=local.weekday())
    else:
        month0 = (local.month - 1) // width * width
        day = date(local.year, month0 + 1, 1)
    return datetime.combine(day, time(0), NEW_YORK).astimezone(UTC)


def _bucket_end(begin: datetime, width: int, unit: str) -> datetime:
    if unit == "Min":
        return begin + timedelta(minutes=width)
    if unit == "Hour":
        return begin + timedelta(hours=width)
    local = begin.astimezone(NEW_YORK)
    if unit == "Day":
        day = local.date() + timedelta(days=1)
    elif unit == "Week":
        day = local.date() + timedelta(days=7)
    else:
        months = local.month - 1 + width
        day = date(local.year + months // 12, months % 12 + 1, 1)
    return datetime.combine(day, time(0), NEW_YORK).astimezone(UTC)


def _buckets(start: datetime, end: datetime, width: int, unit: str) -> Iterator[datetime]:
    """Bucket starts from the one holding `start` (if it begins at or after it) to `end`."""
    bucket = _floor(start, width, unit)
    if bucket < start:
        bucket = _bucket_end(bucket, width, unit)
    while bucket <= end:
        yield bucket
        bucket = _bucket_end(bucket, width, unit)
