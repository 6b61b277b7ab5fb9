"""Order entry without surprises: local validation, client ids, idempotent placing.

Three layers, each usable on its own:

- `validate_order` turns what a person typed into an `OrderRequest`, or one
  `UsageError` line, before anything touches the network. The rules are the
  ones Alpaca enforces, so a bad order fails here in milliseconds instead of
  as a 422 after a round trip (or, worse, as a different order than meant).
- `place` sends an order at most once in effect. The client order id is fixed
  before the first send; after any answer that leaves the outcome unknown
  (timeout, dropped connection, 5xx, 429) the order is looked up by that id
  before anything else, and a resend (same id, so the broker itself refuses a
  duplicate) happens only when the lookup proves the first never arrived.
- `live_guard` and `wait_exit_code` are the pure pieces of the commands,
  kept here so they can be tested directly (the lines they print are
  `output.records`').

Standard library and domain types only at import time (the commands import
this module at their top level); the bridge is reached through the `broker`
argument.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Protocol

from alpaca_cli.domain import Order, OrderRequest
from alpaca_cli.errors import BrokerRejected, CliError, ExitCode, RouteNotFound, UnreachableError, UsageError

log = logging.getLogger(__name__)

SIDES = ("buy", "sell")
ORDER_TYPES = ("market", "limit", "stop", "stop_limit", "trailing_stop")
TIME_IN_FORCE = ("day", "gtc", "ioc", "fok", "opg", "cls")
ORDER_CLASSES = ("simple", "bracket", "oco", "oto")
MAX_CLIENT_ORDER_ID = 128
MAX_QTY_PLACES = 9  # Alpaca's fractional precision
CLIENT_ID_PREFIX = "acli-"
# The SDK sends numbers as JSON floats; up to 15 significant digits survive
# that trip exactly, so the broker gets precisely the amount typed.
MAX_DIGITS = 15

# Stock symbols as Alpaca lists them: letters (a digit or two allowed after
# the first), optionally a share class or suffix after a dot ("BRK.B").
_SYMBOL = re.compile(r"^[A-Z][A-Z0-9]{0,5}(\.[A-Z0-9]{1,3})?$")
_NUMBER = re.compile(r"^\+?(\d+(\.\d*)?|\.\d+)$")
_PRICE_FLAGS = {
    "limit_price": "--limit-price",
    "stop_price": "--stop-price",
    "trail_percent": "--trail-percent",
    "trail_price": "--trail-price",
}
# Which price flags each order type needs (all of them) and allows (no others).
_TYPE_PRICES: dict[str, tuple[str, ...]] = {
    "market": (),
    "limit": ("limit_price",),
    "stop": ("stop_price",),
    "stop_limit": ("limit_price", "stop_price"),
    "trailing_stop": (),  # exactly one of trail_percent / trail_price, checked apart
}


# --------------------------------------------------------------------------- validation


def parse_amount(text: str | None, flag: str) -> Decimal | None:
    """A positive plain decimal ("10", "0.5", "12.25") or None when not given.

    Exponents, NaN, infinities, signs and thousands separators are refused: a
    size or price that needs them is far more likely a typo than an intent.
    """
    if text is None:
        return None
    value = text.strip()
    if value.startswith("-") and _NUMBER.match(value[1:]):
        raise UsageError(f"{flag} must be positive, got {text}")
    if not _NUMBER.match(value):
        raise UsageError(f"{flag} must be a plain decimal number, got {text!r}")
    try:
        amount = Decimal(value)
    except InvalidOperation:  # unreachable after the pattern, kept as a guard
        raise UsageError(f"{flag} must be a number, got {text!r}") from None
    if amount <= 0:
        raise UsageError(f"{flag} must be greater than zero, got {text}")
    if len(amount.normalize().as_tuple().digits) > MAX_DIGITS:
        raise UsageError(f"{flag} {text} has more than {MAX_DIGITS} significant digits")
    return amount


def decimal_places(value: Decimal) -> int:
    """Digits after the point, ignoring trailing zeros ("1.50" has 1)."""
    exponent = value.normalize().as_tuple().exponent
    return max(0, -int(exponent))


def check_price(value: Decimal, flag: str) -> None:
    """Alpaca's tick rule: two decimals at $1 and above, four below."""
    allowed = 2 if value >= 1 else 4
    if decimal_places(value) > allowed:
        raise UsageError(
            f"{flag} {value} has too many decimals: at most {allowed} for prices "
            f"{'of $1 and above' if allowed == 2 else 'below $1'}"
        )


def check_client_order_id(value: str) -> str:
    if not value:
        raise UsageError("--client-order-id must not be empty")
    if len(value) > MAX_CLIENT_ORDER_ID:
        raise UsageError(f"--client-order-id is {len(value)} characters long; Alpaca allows at most 128")
    if not value.isprintable() or any(ch.isspace() for ch in value):
        raise UsageError("--client-order-id must be printable characters without spaces")
    return value


def check_symbol(text: str) -> str:
    """A US stock or ETF symbol, upper-cased ("brk.b" -> "BRK.B")."""
    ticker = text.strip().upper()
    if "/" in ticker:
        raise UsageError(f"symbol {text!r} looks like a crypto pair: only US stock and ETF symbols are supported")
    if not _SYMBOL.match(ticker):
        raise UsageError(f"{text!r} is not a symbol of a US stock or ETF (letters, optional class suffix as in BRK.B)")
    return ticker


def check_order_id(text: str) -> str:
    """Alpaca order ids are UUIDs; anything else is a typo (or a client order id)."""
    try:
        return str(uuid.UUID(text.strip()))
    except ValueError:
        raise UsageError(
            f"ORDER_ID {text!r} is not an order id (a UUID)",
            hint="to name an order by your own id use --client-order-id",
        ) from None


def check_symbols(text: str, flag: str = "--symbols") -> list[str]:
    """A comma list of symbols ("aapl, msft" -> ["AAPL", "MSFT"]), none empty."""
    parts = [part.strip() for part in text.split(",")]
    if not all(parts):
        raise UsageError(f"{flag} {text!r} has an empty entry: give symbols separated by commas, e.g. AAPL,MSFT")
    return [check_symbol(part) for part in parts]


def parse_time(text: str, flag: str) -> datetime:
    """An RFC 3339 time or a date (midnight UTC); a time without an offset is UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{flag} {text!r} is not a time: use RFC 3339 (2026-11-30T14:30:00Z) or a date") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _choice(value: str, allowed: Sequence[str], what: str) -> str:
    lowered = value.strip().lower().replace("-", "_")
    if lowered not in allowed:
        raise UsageError(f"unknown {what} {value!r}: use one of {', '.join(allowed)}")
    return lowered


def new_client_order_id() -> str:
    """A fresh client order id, fixed before the first send ("acli-" + 32 hex digits)."""
    return f"{CLIENT_ID_PREFIX}{uuid.uuid4().hex}"


def validate_order(
    symbol: str,
    side: str,
    *,
    qty: str | None = None,
    notional: str | None = None,
    order_type: str = "market",
    limit_price: str | None = None,
    stop_price: str | None = None,
    trail_percent: str | None = None,
    trail_price: str | None = None,
    time_in_force: str = "day",
    extended_hours: bool = False,
    client_order_id: str | None = None,
    take_profit: str | None = None,
    stop_loss: str | None = None,
    stop_loss_limit: str | None = None,
    order_class: str | None = None,
) -> OrderRequest:
    """What the user typed -> a request Alpaca will accept, or one `UsageError`.

    Pure: no network, no clock. A missing client order id is generated here,
    so the request carries its idempotency key from the very start.
    """
    ticker = check_symbol(symbol)
    side_ = _choice(side, SIDES, "side")
    kind = _choice(order_type, ORDER_TYPES, "order type")
    tif = _choice(time_in_force, TIME_IN_FORCE, "time in force")

    if qty is None and notional is None:
        raise UsageError("give the order size: --qty N (shares) or --notional USD (dollars)")
    if qty is not None and notional is not None:
        raise UsageError("--qty and --notional are mutually exclusive: give one of them")
    size = parse_amount(qty, "--qty")
    dollars = parse_amount(notional, "--notional")
    prices = {
        "limit_price": parse_amount(limit_price, "--limit-price"),
        "stop_price": parse_amount(stop_price, "--stop-price"),
        "trail_percent": parse_amount(trail_percent, "--trail-percent"),
        "trail_price": parse_amount(trail_price, "--trail-price"),
    }
    group = _exits(order_class, take_profit, stop_loss, stop_loss_limit)
    if group.order_class == "oco":
        if kind != "limit":
            raise UsageError("an oco order is a limit order (its limit is --take-profit): add --type limit")
        if prices["limit_price"] is not None:
            raise UsageError("an oco order's limit is its --take-profit: drop --limit-price")
        prices["limit_price"] = group.take_profit

    if kind == "trailing_stop":
        trails = [name for name in ("trail_percent", "trail_price") if prices[name] is not None]
        if len(trails) != 1:
            raise UsageError("a trailing_stop order needs exactly one of --trail-percent or --trail-price")
        needed: tuple[str, ...] = tuple(trails)
    else:
        needed = _TYPE_PRICES[kind]
    for name in needed:
        if prices[name] is None:
            raise UsageError(f"a {kind} order needs {_PRICE_FLAGS[name]}")
    for name, value in prices.items():
        if value is not None and name not in needed:
            raise UsageError(f"{_PRICE_FLAGS[name]} does not apply to a {kind} order")
    for name in ("limit_price", "stop_price", "trail_price"):
        value = prices[name]
        if value is not None:
            check_price(value, _PRICE_FLAGS[name])
    percent = prices["trail_percent"]
    if percent is not None and not percent < 100:
        raise UsageError(f"--trail-percent must be below 100, got {percent}")
    if kind == "trailing_stop" and tif not in ("day", "gtc"):
        raise UsageError("a trailing_stop order must be --tif day or gtc")
    if tif in ("opg", "cls") and kind not in ("market", "limit"):
        raise UsageError(f"--tif {tif} (auction) orders must be market or limit orders")

    if dollars is not None:
        if kind != "market" or tif != "day":
            raise UsageError("--notional orders must be market orders with --tif day")
        if decimal_places(dollars) > 2:
            raise UsageError(f"--notional {dollars} has more than 2 decimals (cents)")
        if dollars < 1:
            raise UsageError(f"--notional must be at least $1, got {dollars}")
    if size is not None:
        if decimal_places(size) > MAX_QTY_PLACES:
            raise UsageError(f"--qty {size} has more than {MAX_QTY_PLACES} decimals")
        if size != size.to_integral_value() and (tif != "day" or kind not in ("market", "limit")):
            raise UsageError("a fractional --qty needs a market or limit order with --tif day")

    if extended_hours and (kind != "limit" or tif != "day"):
        raise UsageError("--extended-hours needs a limit order with --tif day")

    if group.order_class != "simple":
        _check_group(group, side_, kind, tif, size, extended_hours, prices["limit_price"])

    cid = check_client_order_id(client_order_id) if client_order_id is not None else new_client_order_id()
    return OrderRequest(
        symbol=ticker,
        side=side_,
        type=kind,
        time_in_force=tif,
        client_order_id=cid,
        qty=size,
        notional=dollars,
        limit_price=prices["limit_price"],
        stop_price=prices["stop_price"],
        trail_percent=prices["trail_percent"],
        trail_price=prices["trail_price"],
        extended_hours=extended_hours,
        order_class=group.order_class,
        take_profit=group.take_profit,
        stop_loss=group.stop_loss,
        stop_loss_limit=group.stop_loss_limit,
    )


@dataclass(frozen=True)
class _Group:
    order_class: str
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    stop_loss_limit: Decimal | None = None


def _exits(
    order_class: str | None, take_profit: str | None, stop_loss: str | None, stop_loss_limit: str | None
) -> _Group:
    """The exit prices and the order class they make; a bracket when both exits are given and no class."""
    tp = parse_amount(take_profit, "--take-profit")
    sl = parse_amount(stop_loss, "--stop-loss")
    sll = parse_amount(stop_loss_limit, "--stop-loss-limit")
    for value, flag in ((tp, "--take-profit"), (sl, "--stop-loss"), (sll, "--stop-loss-limit")):
        if value is not None:
            check_price(value, flag)
    if sll is not None and sl is None:
        raise UsageError("--stop-loss-limit needs --stop-loss (it makes the stop loss a stop-limit)")
    given = tp is not None or sl is not None
    if order_class is None:
        if given and (tp is None or sl is None):
            raise UsageError("a bracket needs --take-profit and --stop-loss; for one exit say --order-class oto")
        cls = "bracket" if given else "simple"
    else:
        cls = _choice(order_class, ORDER_CLASSES, "order class")
    if cls == "simple" and given:
        raise UsageError("--take-profit and --stop-loss make a bracket, oco or oto order, not a simple one")
    if cls in ("bracket", "oco") and (tp is None or sl is None):
        raise UsageError(f"a{'n' if cls == 'oco' else ''} {cls} order needs --take-profit and --stop-loss")
    if cls == "oto" and (tp is None) == (sl is None):
        raise UsageError("an oto order has one exit: --take-profit or --stop-loss")
    return _Group(cls, tp, sl, sll)


def _check_group(
    group: _Group, side: str, kind: str, tif: str, size: Decimal | None, extended_hours: bool, limit: Decimal | None
) -> None:
    """Alpaca's rules for bracket, OCO and OTO orders, and exits on the right side of their base price.

    The base is the entry's limit price (an OCO's: its take-profit, for the
    stop loss); a market entry has none here, so then only the exits are
    checked against each other.
    """
    cls = group.order_class
    if size is None or size != size.to_integral_value():
        raise UsageError(f"{cls} orders are whole shares: give a whole --qty")
    if tif not in ("day", "gtc"):
        raise UsageError(f"{cls} orders must be --tif day or gtc")
    if extended_hours:
        raise UsageError(f"{cls} orders do not trade in extended hours")
    if kind not in ("market", "limit"):
        raise UsageError(f"the entry of a {cls} order is a market or limit order")
    exit_side = side if cls == "oco" else ("sell" if side == "buy" else "buy")
    above, below = ("--take-profit", "--stop-loss") if exit_side == "sell" else ("--stop-loss", "--take-profit")
    tp, sl = group.take_profit, group.stop_loss
    if cls != "oco" and limit is not None:
        for price, flag in ((tp, "--take-profit"), (sl, "--stop-loss")):
            if price is None:
                continue
            if (flag == above and price <= limit) or (flag == below and price >= limit):
                where = "above" if flag == above else "below"
                raise UsageError(f"{flag} {price} must be {where} the entry's limit {limit} for a {side} entry")
    if tp is not None and sl is not None and ((tp <= sl) if exit_side == "sell" else (tp >= sl)):
        raise UsageError(f"--take-profit {tp} must be {'above' if exit_side == 'sell' else 'below'} --stop-loss {sl}")


def describe(request: OrderRequest) -> str:
    """One line such as `buy 10 AAPL limit 187.5 (day)`, for prompts and messages."""
    size = f"{request.qty} {request.symbol}" if request.qty is not None else f"${request.notional} of {request.symbol}"
    how = {
        "market": "at market",
        "limit": f"limit {request.limit_price}",
        "stop": f"stop {request.stop_price}",
        "stop_limit": f"stop {request.stop_price} limit {request.limit_price}",
        "trailing_stop": "trailing stop "
        + (f"{request.trail_percent}%" if request.trail_percent is not None else f"${request.trail_price}"),
    }[request.type]
    tif = request.time_in_force + (", extended hours" if request.extended_hours else "")
    exits = [f"take profit {request.take_profit}"] if request.take_profit is not None else []
    if request.stop_loss is not None:
        limit = f" limit {request.stop_loss_limit}" if request.stop_loss_limit is not None else ""
        exits.append(f"stop loss {request.stop_loss}{limit}")
    group = f", {request.order_class}: {', '.join(exits)}" if exits else ""
    return f"{request.side} {size} {how} ({tif}{group})"


# --------------------------------------------------------------------------- live guard


def live_guard(*, is_live: bool, live_allowed: bool, yes: bool, interactive: bool) -> Literal["go", "confirm"]:
    """Decide, before any network call, whether an order-changing command may go on.

    Not live: go. Live without `--live`/`ALPACA_CLI_LIVE=1`: refuse. Live with
    it: `--yes` goes, a terminal gets a confirmation prompt ("confirm"), and
    anything else (a script that forgot `--yes`) is refused.
    """
    if not is_live:
        return "go"
    if not live_allowed:
        raise UsageError(
            "refusing to touch a LIVE account: nothing was sent",
            hint="add --live (or set ALPACA_CLI_LIVE=1) to trade real money",
        )
    if yes:
        return "go"
    if not interactive:
        raise UsageError(
            "a live order needs confirmation but stdin is not a terminal: nothing was sent",
            hint="pass --yes to confirm from a script",
        )
    return "confirm"


class NotConfirmed(CliError):
    """The person at the terminal said no: a clean "no", nothing was done."""

    exit_code = ExitCode.DRIFT


def confirmation_text(account_number: str, action: str) -> str:
    """The live prompt: names the account and exactly what will happen."""
    return f"LIVE account {account_number}: {action}. Proceed?"


# --------------------------------------------------------------------------- placing


class OrderBroker(Protocol):
    """The part of `alpaca_cli.bridge.Broker` that placing an order needs."""

    deadline: float  # seconds one broker call may take in all

    async def submit_order(self, request: OrderRequest) -> Order: ...

    async def order_by_client_id(self, client_order_id: str) -> Order | None: ...


@dataclass(frozen=True, slots=True)
class Placement:
    """How `place` ended.

    `how`: "sent" (the broker answered the POST), "recovered" (the answer was
    lost, the order was found by its client id), "duplicate" (the broker
    already had an order with this client id). `matches` is False when that
    existing order is not the one requested (a reused client id).
    """

    order: Order
    how: Literal["sent", "recovered", "duplicate"]
    sends: int
    matches: bool = True


def same_order(request: OrderRequest, order: Order) -> bool:
    """Does this broker order carry what the request asked for?"""
    return (
        order.symbol == request.symbol
        and order.side == request.side
        and order.type == request.type
        and order.time_in_force == request.time_in_force
        and order.qty == request.qty
        and order.notional == request.notional
        and order.limit_price == request.limit_price
        and (request.type == "trailing_stop" or order.stop_price == request.stop_price)
        and order.trail_percent == request.trail_percent
        and order.trail_price == request.trail_price
    )


def is_duplicate_id(error: BrokerRejected) -> bool:
    """The broker's "client_order_id must be unique" refusal (422)."""
    text = error.message.lower()
    return error.status == 422 and "client_order_id" in text and "unique" in text


Sleep = Callable[[float], Awaitable[Any]]


def _fate_unknown(request: OrderRequest, why: str) -> UnreachableError:
    return UnreachableError(
        f"submit {request.side} {request.symbol}: the order may have been placed, but {why}",
        hint=f"look for client order id {request.client_order_id} before sending again; re-running with "
        f"--client-order-id {request.client_order_id} cannot create a second order",
    )


async def place(
    broker: OrderBroker,
    request: OrderRequest,
    *,
    max_sends: int = 4,
    resend_delays: Sequence[float] = (0.5, 1.0, 2.0),
    lookup_delays: Sequence[float] = (0.25, 0.5, 1.0),
    sleep: Sleep = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Placement:
    """Send `request` so that at most one order can exist for its client id.

    - a clear answer (the order, or a refusal such as 403 buying power) ends it;
      so does a 404 from a route that does not exist (nothing was created);
    - a 422 "client_order_id must be unique" reports the order already there;
    - an unknown outcome (no answer in time, a dropped connection, 5xx, 429, an
      answer too malformed to read: the bridge's `UnreachableError`) leads to a
      lookup by client id first: found means done; not found means the POST
      never arrived, and only then is it sent again, with the same client id,
      at most `max_sends` times in all.

    Time is bounded: once the first failure is `broker.deadline` seconds old,
    no new request starts, so a broker that stopped answering ends this within
    about two deadlines (the failed call, then at most one more).
    """
    last: UnreachableError | None = None
    give_up_at: float | None = None

    def patience_left() -> bool:
        return give_up_at is None or clock() < give_up_at

    async def lookup() -> Order | None:
        for attempt in range(len(lookup_delays) + 1):
            try:
                return await broker.order_by_client_id(request.client_order_id)
            except CliError as error:  # whatever it is, a POST may have acted: never exit 1 or 3 now
                final = not isinstance(error, UnreachableError) or attempt == len(lookup_delays)
                if final or not patience_left():
                    raise _fate_unknown(
                        request, f"its answer was lost and looking it up failed ({error.message})"
                    ) from error
                log.debug("lookup of %s failed (%s), retrying", request.client_order_id, error.message)
                await sleep(lookup_delays[attempt])
        raise AssertionError("unreachable")

    for send in range(1, max_sends + 1):
        try:
            return Placement(await broker.submit_order(request), "sent", send)
        except BrokerRejected as refused:
            if not is_duplicate_id(refused):
                raise
            existing = await lookup()
            if existing is None:
                if last is not None:  # an earlier POST's outcome is unknown: it may be that order
                    raise _fate_unknown(
                        request, "the broker refuses the client order id as taken and cannot show the order yet"
                    ) from refused
                raise
            return Placement(existing, "recovered" if last else "duplicate", send, same_order(request, existing))
        except RouteNotFound:
            raise
        except UnreachableError as error:
            last = error
            if give_up_at is None:
                give_up_at = clock() + broker.deadline
            log.info("submit %s: outcome unknown (%s), looking it up", request.client_order_id, error.message)
        found = await lookup()
        if found is not None:
            return Placement(found, "recovered", send)
        if send < max_sends and patience_left():
            await sleep(resend_delays[min(send - 1, len(resend_delays) - 1)])
            continue
        break
    assert last is not None
    raise UnreachableError(
        f"submit {request.side} {request.symbol}: the order was not placed: the broker kept failing "
        f"({last.message}); {send} attempt(s), none arrived (checked by client id {request.client_order_id})",
        hint="try again later",
    )


# --------------------------------------------------------------------------- following


ENDED_OK = frozenset({"filled"})


def wait_exit_code(order: Order) -> int:
    """How `submit --wait` ends on `order`: 0 filled, 124 still working when the wait ran out
    (as `timeout(1)`), 1 ended any other way (rejected, canceled, expired)."""
    if order.status in ENDED_OK:
        return 0
    if not order.is_final:
        return int(ExitCode.TIMED_OUT)
    return 1
