"""Order requests as Alpaca reads them: a JSON body in, checked terms out.

Everything Alpaca refuses from the body alone (shape, types, prices, the
rules of each order type and class) is refused here with Alpaca's messages;
what needs the account (funds, positions, a taken `client_order_id`) is the
engine's job. Pure: no engine state, so a request is parsed once and the
engine only builds and matches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from alpaca_cli.sandbox import assets, legs
from alpaca_cli.sandbox.model import ORDER_TYPES, SIDES, TIME_IN_FORCE, BrokerError, SimOrder, invalid, plain
from alpaca_cli.sandbox.params import BadRequest

T = TypeVar("T")

_MAX_CLIENT_ORDER_ID = 128
# What `PATCH /v2/orders/{id}` may change.
_REPLACEABLE = frozenset({"qty", "time_in_force", "limit_price", "stop_price", "trail", "client_order_id"})


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """The checked terms of `POST /v2/orders` (`client_order_id` None: the engine makes one)."""

    symbol: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal | None = None
    notional: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_percent: Decimal | None = None
    trail_price: Decimal | None = None
    extended_hours: bool = False
    client_order_id: str | None = None
    order_class: str = "simple"
    take_profit: legs.Exit | None = None
    stop_loss: legs.Exit | None = None

    @property
    def fractional(self) -> bool:
        return self.notional is not None or (self.qty is not None and self.qty != self.qty.to_integral_value())


def parse_decimal(value: Any, name: str) -> Decimal | None:
    """A JSON number or numeric string as a Decimal (floats via their shortest repr)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise invalid(f"invalid {name}")
    try:
        d = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise invalid(f"invalid {name}") from None
    if not d.is_finite():
        raise invalid(f"invalid {name}")
    return d


def parse_order(body: Any) -> OrderRequest:
    """Check a `POST /v2/orders` body as Alpaca does, before anything about the account."""
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    symbol = body.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise invalid("symbol is required")
    listed = assets.find(symbol)
    if listed is None:
        raise invalid(f'asset "{symbol.upper()}" not found')
    if not listed.tradable:
        raise invalid(f"asset {listed.symbol} is not tradable")
    side = body.get("side")
    if side not in SIDES:
        raise invalid("invalid side")
    kind = body.get("type", body.get("order_type"))
    if kind not in ORDER_TYPES:
        raise invalid("invalid order type")
    tif = body.get("time_in_force")
    if tif not in TIME_IN_FORCE:
        raise invalid("invalid time_in_force")
    crypto = listed.asset_class == "crypto"
    if crypto:
        _check_crypto(kind, tif)
    order_class = refusals(legs.order_class, body.get("order_class"))
    if crypto and order_class != "simple":
        raise invalid("crypto orders must be simple orders")
    if order_class == "oco" and kind == "limit" and body.get("limit_price") is None:
        # An OCO is its own take-profit: a limit order at take_profit.limit_price.
        take_profit = body.get("take_profit")
        body = {**body, "limit_price": take_profit.get("limit_price") if isinstance(take_profit, dict) else None}
    extended = body.get("extended_hours") or False
    if not isinstance(extended, bool):
        raise invalid("invalid extended_hours")
    request = OrderRequest(
        symbol=listed.symbol,
        side=side,
        type=kind,
        time_in_force=tif,
        qty=parse_decimal(body.get("qty"), "qty"),
        notional=parse_decimal(body.get("notional"), "notional"),
        limit_price=parse_decimal(body.get("limit_price"), "limit_price"),
        stop_price=parse_decimal(body.get("stop_price"), "stop_price"),
        trail_percent=parse_decimal(body.get("trail_percent"), "trail_percent"),
        trail_price=parse_decimal(body.get("trail_price"), "trail_price"),
        extended_hours=extended,
        client_order_id=_client_order_id(body.get("client_order_id")),
        order_class=order_class,
    )
    _check_amount(request, listed.fractionable, crypto=crypto)
    request = _check_prices(request)
    if request.order_class == "simple":
        return request
    return _with_exits(request, body)


def replacement(old: SimOrder, body: Any) -> OrderRequest:
    """The request a `PATCH /v2/orders/{id}` body makes of `old`: its terms, changed where asked."""
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    unknown = set(body) - _REPLACEABLE
    if unknown:
        raise invalid(f"cannot replace {', '.join(sorted(unknown))}")
    merged: dict[str, Any] = {
        "symbol": old.symbol,
        "side": old.side,
        "type": old.type,
        "time_in_force": body.get("time_in_force") or old.time_in_force,
        "qty": body.get("qty", old.qty),
        "notional": None if "qty" in body else old.notional,
        "limit_price": body.get("limit_price", old.limit_price),
        "stop_price": body.get("stop_price", old.stop_price),
        "extended_hours": old.extended_hours,
        "client_order_id": body.get("client_order_id"),
    }
    if old.type == "trailing_stop":
        merged["stop_price"] = None
        trail = body.get("trail")
        key = "trail_percent" if old.trail_percent is not None else "trail_price"
        merged[key] = trail if trail is not None else (old.trail_percent or old.trail_price)
    elif "trail" in body:
        raise invalid("trail is for trailing_stop orders only")
    return parse_order(merged)


def _client_order_id(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise invalid("invalid client_order_id")
    if len(value) > _MAX_CLIENT_ORDER_ID:
        raise invalid("client_order_id must be no more than 128 characters")
    return value


def _check_crypto(kind: str, tif: str) -> None:
    """A crypto pair trades around the clock: good-till-canceled or immediate-or-cancel, no stops alone."""
    if tif not in ("gtc", "ioc"):
        raise invalid("invalid crypto time_in_force")
    if kind not in ("market", "limit", "stop_limit"):
        raise invalid(f"invalid order type for crypto: {kind}")


def _check_amount(request: OrderRequest, fractionable: bool, *, crypto: bool = False) -> None:
    """Qty or notional, and what fractional orders may be (any crypto order is fractional)."""
    qty, notional, kind, tif = request.qty, request.notional, request.type, request.time_in_force
    if qty is None and notional is None:
        raise invalid("qty or notional is required")
    if qty is not None and notional is not None:
        raise invalid("only one of qty or notional may be given")
    if qty is not None and qty <= 0:
        raise invalid("qty must be > 0")
    if notional is not None:
        if notional <= 0:
            raise invalid("notional must be > 0")
        if kind != "market":
            raise invalid("notional orders must be market orders")
        if notional.as_tuple().exponent < -2:  # type: ignore[operator]
            raise invalid("notional must be limited to 2 decimal places")
    if request.fractional and not crypto:
        if tif != "day":
            raise invalid("fractional orders must be DAY orders")
        if kind not in ("market", "limit"):
            raise invalid("fractional orders must be market or limit orders")
        if not fractionable:
            raise invalid(f"asset {request.symbol} is not fractionable")
    if qty is not None and qty.as_tuple().exponent < -9:  # type: ignore[operator]
        raise invalid("qty must be limited to 9 decimal places")


def _check_prices(request: OrderRequest) -> OrderRequest:
    """The prices each order type needs and refuses; a trailing stop's stop price is the engine's."""
    kind, tif = request.type, request.time_in_force
    limit_price, stop_price = request.limit_price, request.stop_price
    trail_percent, trail_price = request.trail_percent, request.trail_price
    if kind in ("limit", "stop_limit"):
        if limit_price is None:
            raise invalid("limit_price is required")
        check_price(limit_price, "limit_price")
    elif limit_price is not None:
        raise invalid(f"limit_price must not be given for {kind} orders")
    if kind in ("stop", "stop_limit"):
        if stop_price is None:
            raise invalid("stop_price is required")
        check_price(stop_price, "stop_price")
    elif stop_price is not None and kind != "trailing_stop":
        raise invalid(f"stop_price must not be given for {kind} orders")
    if kind == "trailing_stop":
        if (trail_percent is None) == (trail_price is None):
            raise invalid("exactly one of trail_price or trail_percent is required")
        if trail_price is not None and trail_price <= 0:
            raise invalid("trail_price must be > 0")
        if trail_percent is not None and not 0 < trail_percent < 100:
            raise invalid("trail_percent must be between 0 and 100")
        if tif not in ("day", "gtc"):
            raise invalid("trailing stop orders must be DAY or GTC orders")
        request = replace(request, stop_price=None)
    elif trail_percent is not None or trail_price is not None:
        raise invalid("trail_price and trail_percent are for trailing_stop orders only")
    if request.extended_hours and (kind != "limit" or tif != "day"):
        raise invalid("extended hours order must be DAY limit orders")
    return request


def _with_exits(request: OrderRequest, body: dict[str, Any]) -> OrderRequest:
    """A group order's `take_profit` and `stop_loss`, prices parsed and checked."""
    return replace(
        request,
        take_profit=_exit(body.get("take_profit"), "take_profit"),
        stop_loss=_exit(body.get("stop_loss"), "stop_loss"),
    )


def _exit(raw: Any, name: str) -> legs.Exit | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise invalid(f"invalid {name}")
    prices = {}
    for key in ("limit_price", "stop_price"):
        value = parse_decimal(raw.get(key), f"{name}.{key}")
        if value is not None:
            check_price(value, f"{name}.{key}")
        prices[key] = value
    return legs.Exit(**prices)


def check_price(price: Decimal, name: str) -> None:
    """Positive, and no sub-penny increment (four places below a dollar)."""
    if price <= 0:
        raise invalid(f"{name} must be > 0")
    places = -price.normalize().as_tuple().exponent  # type: ignore[operator]
    if places > (2 if price >= 1 else 4):
        raise BrokerError(
            422,
            42210000,
            f"invalid {name} {plain(price)}. sub-penny increment does not fulfill minimum pricing criteria",
        )


def refusals(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a `legs` rule: its `BadRequest` becomes the `BrokerError` the engine's callers expect."""
    try:
        return fn(*args, **kwargs)
    except BadRequest as exc:
        raise BrokerError(exc.status, exc.code, exc.message) from None
