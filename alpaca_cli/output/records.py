"""Every line of the output contract, one function per `"type"`.

Each function takes the tool's own values (domain objects, core results) and
returns the line as a dict, in the field order it is printed; `output.dumps`
writes it (decimals as exact JSON numbers, times as RFC 3339 UTC). The lines
written once per event of a stream (trade updates, bars, quotes, trades) are
built as JSON text directly, the same way. Nothing
else in the package builds a line: commands and the bridge call these, so a
field is added, renamed or documented in one place, and
`tests/test_line_contract.py` compares one line of each type with its example
in the README.

Standard library and domain types only at import time: commands import this
module on their way to printing, and `--help` must stay light.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from alpaca_cli.text import decimal_text, json_number, json_string, rfc3339

if TYPE_CHECKING:
    from decimal import Decimal

    from alpaca_cli.core import Difference
    from alpaca_cli.domain import (
        Account,
        Activity,
        Asset,
        Bar,
        CalendarDay,
        Clock,
        MarketSnapshot,
        Order,
        OrderChanges,
        OrderRequest,
        Position,
        Quote,
        Snapshot,
        Trade,
        TradeUpdate,
    )
    from alpaca_cli.errors import CliError

Line = dict[str, Any]

# The columns of an `activity` line, in order; `activities -o csv` writes the same ones.
ACTIVITY_COLUMNS = (
    *("id", "activity_type", "time", "date", "symbol", "side"),
    *("qty", "price", "net_amount", "order_id", "description"),
)


# ------------------------------------------------------------------------------- orders


def trade_update(update: TradeUpdate) -> str:
    """A trade update; `id` is the event's stable key (`core.identity`).

    `qty` and `price` are this fill's own; the order's are `order_qty` (or
    `order_notional`), `order_type`, `limit_price` and `stop_price`.

    Built as text, not as a dict for `dumps`: it is `tail`'s line, written
    once per fill on the way from the socket to the reader (`bench/fill_latency.py`).
    """
    from alpaca_cli.core.identity import event_id

    order = update.order
    return (
        f'{{"type":"trade_update","id":{json_string(event_id(update))},"event":{json_string(update.event)},'
        f'"order_id":{json_string(order.id)},"client_order_id":{json_string(order.client_order_id)},'
        f'"symbol":{json_string(order.symbol)},"side":{json_string(order.side)},"order_type":{json_string(order.type)},'
        f'"order_qty":{_number(order.qty)},"order_notional":{_number(order.notional)},'
        f'"limit_price":{_number(order.limit_price)},"stop_price":{_number(order.stop_price)},'
        f'"order_status":{json_string(order.status)},"filled_qty":{_number(order.filled_qty)},'
        f'"filled_avg_price":{_number(order.filled_avg_price)},"qty":{_number(update.qty)},'
        f'"price":{_number(update.price)},"position_qty":{_number(update.position_qty)},'
        f'"execution_id":{_optional_string(update.execution_id)},"reason":{_optional_string(update.reason)},'
        f'"timestamp":"{rfc3339(update.timestamp)}","source":{json_string(update.source)}}}'
    )


def _number(value: Decimal | None) -> str:
    return "null" if value is None else decimal_text(value)


def _optional_string(text: str | None) -> str:
    return "null" if text is None else json_string(text)


def order(value: Order, **extra: Any) -> Line:
    """An order (`orders`, `submit`, `replace`); `order_type` is its own type; `extra` says how
    the command got it (`submission`, `sends`, `recovered`)."""
    line: Line = {
        "type": "order",
        "id": value.id,
        "client_order_id": value.client_order_id,
        "symbol": value.symbol,
        "side": value.side,
        "order_type": value.type,
        "time_in_force": value.time_in_force,
        "status": value.status,
        "qty": value.qty,
        "notional": value.notional,
        "filled_qty": value.filled_qty,
        "filled_avg_price": value.filled_avg_price,
        "limit_price": value.limit_price,
        "stop_price": value.stop_price,
        "trail_percent": value.trail_percent,
        "trail_price": value.trail_price,
        "extended_hours": value.extended_hours,
        "submitted_at": value.submitted_at,
        "filled_at": value.filled_at,
        "canceled_at": value.canceled_at,
        "order_class": value.order_class,
        "replaced_by": value.replaced_by,
        "replaces": value.replaces,
    }
    if value.legs:
        line["legs"] = [order(leg) for leg in value.legs]
    line.update(extra)
    return line


def order_request(request: OrderRequest, environment: str) -> Line:
    """What `submit --dry-run` would send: the fields given, nothing defaulted."""
    line: Line = {"type": "order_request", "environment": environment}
    for name in (
        "symbol",
        "side",
        "type",
        "time_in_force",
        "qty",
        "notional",
        "limit_price",
        "stop_price",
        "trail_percent",
        "trail_price",
        "extended_hours",
        "client_order_id",
        "take_profit",
        "stop_loss",
        "stop_loss_limit",
    ):
        value = getattr(request, name)
        if value is not None:
            line["order_type" if name == "type" else name] = value
    if request.order_class != "simple":
        line["order_class"] = request.order_class
    return line


def replace_request(old: Order, changes: OrderChanges, environment: str) -> Line:
    """What `replace --dry-run` would send: the order replaced and the changes given."""
    line: Line = {"type": "replace_request", "environment": environment, "order_id": old.id}
    for field in dataclasses.fields(changes):
        value = getattr(changes, field.name)
        if value is not None:
            line[field.name] = value
    return line


def cancel(order: Order, *, ok: bool, status: str | None = None, error: str | None = None) -> Line:
    """Which order, whether the cancel went through, and its status.

    Without a `status` read back from the broker, an accepted cancel says
    "canceled" and a refused one the order's status as listed.
    """
    line: Line = {
        "type": "cancel",
        "order_id": order.id,
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side,
        "order_type": order.type,
        "qty": order.qty,
        "notional": order.notional,
        "filled_qty": order.filled_qty,
        "ok": ok,
        "status": status or ("canceled" if ok else order.status),
    }
    if error is not None:
        line["error"] = error
    return line


def cancel_unlisted(order_id: str, *, ok: bool) -> Line:
    """A cancel `cancel --all` got an answer for, of an order placed after it listed them."""
    return {"type": "cancel", "order_id": order_id, "ok": ok}


def close_request(
    position: Position, side: str, environment: str, qty: Decimal | None, percentage: Decimal | None
) -> Line:
    """What `close --dry-run` would send: `side` closes the position, all of it unless told."""
    line: Line = {
        "type": "close_request",
        "environment": environment,
        "symbol": position.symbol,
        "side": side,
        "position_side": position.side,
        "position_qty": position.qty,
    }
    if qty is not None:
        line["qty"] = qty
    elif percentage is not None:
        line["percentage"] = percentage
    else:
        line["qty"] = position.qty
    return line


def close(symbol: str, closing: Order | None, error: str | None, *, recovered: bool) -> Line:
    """The closing order of a symbol (as an order line, its id as `order_id`), or why there is none."""
    if closing is None:
        return {"type": "close", "symbol": symbol, "ok": False, "error": error}
    line = order(closing, type="close", ok=True, recovered=recovered)
    line["order_id"] = line.pop("id")
    return line


# ------------------------------------------------------------------------- reconcile


def difference(found: Difference) -> Line:
    """One way local state and the broker disagree, values side by side."""
    return {
        "type": "difference",
        "kind": found.kind,
        "symbol": found.symbol,
        "order_id": found.order_id,
        "client_order_id": found.client_order_id,
        "local": found.local,
        "broker": found.broker,
        "detail": found.detail,
    }


def summary(snapshot: Snapshot, differences: list[Difference], *, written: bool, created: bool) -> Line:
    """`reconcile`'s last line: the verdict, counts by kind, what was written."""
    from alpaca_cli.core import KINDS

    counts = Counter(d.kind for d in differences)
    return {
        "type": "summary",
        "in_sync": not differences,
        "differences": len(differences),
        "by_kind": {kind: counts.get(kind, 0) for kind in KINDS},
        "reconciled_at": snapshot.taken_at,
        "written": written,
        "created": created,
        "account_id": snapshot.account.id,
        "open_orders": len(snapshot.open_orders),
        "positions": len(snapshot.positions),
    }


# --------------------------------------------------------------------------- streams


class StreamChange(Protocol):
    """What a connection change says (`bridge.StreamEvent`, the supervisor's `Notice`)."""

    @property
    def stream(self) -> str: ...
    @property
    def event(self) -> str: ...
    @property
    def at(self) -> datetime: ...
    @property
    def reconnects(self) -> int: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def error(self) -> CliError | None: ...


def stream(change: StreamChange) -> Line:
    """A connection change of a stream (`--events stream`, `stream bars --events`, the demo).

    The supervisor's notices add what it recovered, when it retries and the
    drift it adopted; a failure carries its error line and exit code.
    """
    line: Line = {
        "type": "stream",
        "stream": change.stream,
        "event": change.event,
        "at": change.at,
        "reconnects": change.reconnects,
    }
    if change.reason:
        line["reason"] = change.reason
    recovered = getattr(change, "recovered", 0)
    if recovered:
        line["recovered"] = recovered
    retry_in = getattr(change, "retry_in", None)
    if retry_in is not None:
        line["retry_in"] = round(retry_in, 2)
    differences = getattr(change, "differences", ())
    if differences:
        line["differences"] = [difference(d) for d in differences]
    if change.error is not None:
        line["error"] = change.error.line()
        line["exit_code"] = int(change.error.exit_code)
    return line


# Streamed market data is the hot path of a pipe: these lines are built as text
# directly (no dict, no `dumps`), with the symbol's JSON form and the last
# timestamp's text cached, since one burst repeats both.


def _plain(value: float | None) -> float | int | None:
    """A wire float as `json_number` writes it: integral values as integers (a size of 383, not 383.0)."""
    return int(value) if value is not None and math.isfinite(value) and value.is_integer() else value


class _Stamps:
    """JSON text of symbols and of the last few timestamps (the items of one minute share theirs)."""

    def __init__(self) -> None:
        self._symbols: dict[str, str] = {}
        self._last_time: datetime | None = None
        self._last_text = ""
        self._second: datetime | None = None
        self._second_text = ""

    def symbol(self, symbol: str) -> str:
        text = self._symbols.get(symbol)
        if text is None:
            text = self._symbols[symbol] = json_string(symbol)
        return text

    def time(self, moment: datetime) -> str:
        """`rfc3339(moment)`; the text up to the second is made once per second (quotes come many a second)."""
        if moment == self._last_time:
            return self._last_text
        second = moment.replace(microsecond=0)
        if second != self._second:
            self._second, self._second_text = second, rfc3339(second).removesuffix("Z")
        micro = moment.microsecond
        self._last_time = moment
        self._last_text = f"{self._second_text}.{micro:06d}Z" if micro else self._second_text + "Z"
        return self._last_text


class BarLines(_Stamps):
    """`{"type":"bar",...}`: the bar's fields, where it came from, and whether it corrects one sent before.

    `source` is `stream` (live), `backfill` (fetched after a gap of the stream)
    or `history` (`alpaca-cli bars`); `updated` is true for the stream's
    corrections of a bar already printed (Alpaca's `updatedBars`).
    """

    def __call__(self, bar: Bar, source: str = "stream") -> str:
        return (
            f'{{"type":"bar","symbol":{self.symbol(bar.symbol)},"t":"{self.time(bar.timestamp)}",'
            f'"o":{json_number(bar.open)},"h":{json_number(bar.high)},"l":{json_number(bar.low)},'
            f'"c":{json_number(bar.close)},"v":{json_number(bar.volume)},"n":{json_number(bar.trade_count)},'
            f'"vw":{json_number(bar.vwap)},"source":"{source}","updated":{"true" if bar.updated else "false"}}}\n'
        )


class QuoteLines(_Stamps):
    """`{"type":"quote",...}`: bid and ask with their sizes."""

    def __call__(self, quote: Quote) -> str:
        return (
            f'{{"type":"quote","symbol":{self.symbol(quote.symbol)},"t":"{self.time(quote.timestamp)}",'
            f'"bid":{json_number(quote.bid)},"bid_size":{json_number(quote.bid_size)},'
            f'"ask":{json_number(quote.ask)},"ask_size":{json_number(quote.ask_size)}}}\n'
        )


class TradeLines(_Stamps):
    """`{"type":"trade",...}`: one print's price and size, and its id on the tape."""

    def __call__(self, trade: Trade) -> str:
        ident = trade.id if isinstance(trade.id, int) else _optional_string(trade.id)
        return (
            f'{{"type":"trade","symbol":{self.symbol(trade.symbol)},"t":"{self.time(trade.timestamp)}",'
            f'"price":{json_number(trade.price)},"size":{json_number(trade.size)},"id":{ident}}}\n'
        )


def snapshot(snap: MarketSnapshot) -> Line:
    """`{"type":"snapshot",...}` (`alpaca-cli quote`): the latest trade, quote and minute bar, each
    with the field names of its own line (`trade.price`, `quote.bid`, `bar.c`), null when unknown."""
    trade = quote = bar = None
    if snap.trade is not None:
        t = snap.trade
        trade = {"t": t.timestamp, "price": _plain(t.price), "size": _plain(t.size)}
    if snap.quote is not None:
        q = snap.quote
        quote = {"t": q.timestamp, "bid": _plain(q.bid), "bid_size": _plain(q.bid_size)}
        quote.update(ask=_plain(q.ask), ask_size=_plain(q.ask_size))
    if snap.bar is not None:
        b = snap.bar
        prices = (b.open, b.high, b.low, b.close, b.volume, b.trade_count, b.vwap)
        bar = {"t": b.timestamp, **dict(zip(("o", "h", "l", "c", "v", "n", "vw"), map(_plain, prices), strict=True))}
    return {"type": "snapshot", "symbol": snap.symbol, "trade": trade, "quote": quote, "bar": bar}


# ---------------------------------------------------------------------- account views


def status(
    environment: str,
    account: Account,
    clock: Clock,
    positions: list[Position],
    orders: list[Order],
    processes: Mapping[str, list[dict[str, Any]]],
    *,
    with_positions: bool,
    with_orders: bool,
) -> Line:
    """`status`: the account, the clock, counts (and rows when asked) and the streams' health:
    `streams` names, per stream, the health that speaks for it (a running process's if any),
    `processes` lists every process's."""
    line: Line = {
        "type": "status",
        "environment": environment,
        "account": account,
        "clock": clock,
        "positions": {"count": len(positions)},
        "orders": {"count": len(orders)},
        "streams": {str(name): healths[0] if healths else None for name, healths in processes.items()},
        "processes": [health for healths in processes.values() for health in healths],
    }
    if with_positions:
        line["positions"]["rows"] = positions
    if with_orders:
        line["orders"]["rows"] = orders
    return line


def position(held: Position) -> Line:
    """A position; `qty` is signed (negative when short)."""
    return {
        "type": "position",
        "symbol": held.symbol,
        "side": held.side,
        "qty": held.signed_qty,
        "avg_entry_price": held.avg_entry_price,
        "current_price": held.current_price,
        "market_value": held.market_value,
        "unrealized_pl": held.unrealized_pl,
        "asset_id": held.asset_id,
    }


def activity_row(item: Activity) -> tuple[Any, ...]:
    """An activity's values in `ACTIVITY_COLUMNS` order (its line, and its CSV row)."""
    return (
        item.id,
        item.activity_type,
        item.at,
        item.date,
        item.symbol,
        item.side,
        item.qty,
        item.price,
        item.net_amount,
        item.order_id,
        item.description,
    )


def activity(item: Activity) -> Line:
    """An account activity (a fill, a dividend, a transfer, a fee)."""
    return {"type": "activity", **dict(zip(ACTIVITY_COLUMNS, activity_row(item), strict=True))}


def clock(now: Clock) -> Line:
    """Whether the market is open, and its next open and close."""
    return {
        "type": "clock",
        "timestamp": now.timestamp,
        "is_open": now.is_open,
        "next_open": now.next_open,
        "next_close": now.next_close,
    }


def config(settings: Iterable[tuple[str, Any, Any]]) -> Line:
    """`alpaca-cli config`: each resolved setting (`name`, value, origin) and, under `sources`,
    where it came from (the origin's `record()`)."""
    rows = list(settings)
    line: Line = {"type": "config"}
    line.update((name, value) for name, value, _ in rows)
    line["sources"] = {name: origin.record() for name, _, origin in rows}
    return line


def calendar_day(day: CalendarDay) -> Line:
    """A trading day and its regular hours (New York time)."""
    return {"type": "calendar_day", "date": day.date, "open": day.open, "close": day.close}


def asset(found: Asset) -> Line:
    """A tradable (or listed) asset and what it allows."""
    return {
        "type": "asset",
        "symbol": found.symbol,
        "name": found.name,
        "exchange": found.exchange,
        "status": found.status,
        "tradable": found.tradable,
        "shortable": found.shortable,
        "easy_to_borrow": found.easy_to_borrow,
        "fractionable": found.fractionable,
        "marginable": found.marginable,
        "id": found.id,
    }


# ------------------------------------------------------------------------------ demo


def demo_step(name: str, n: int, text: str, *, title: str | None = None, **extra: Any) -> Line:
    """A chapter of the demo (with its `title`), or a line within one (without)."""
    line: Line = {"type": "demo_step", "step": name, "n": n}
    if title is not None:
        line["title"] = title
    line["text"] = text
    line.update(extra)
    return line


def demo_summary(
    *,
    orders: int,
    placed: int,
    refused: int,
    events: int,
    fills_live: int,
    fills_recovered: int,
    reconnects: int,
    in_sync: bool,
    seconds: float,
) -> Line:
    """The demo's last line: what it did, and whether it ended in sync."""
    return {
        "type": "demo_summary",
        "orders": orders,
        "placed": placed,
        "refused": refused,
        "events": events,
        "fills_live": fills_live,
        "fills_recovered": fills_recovered,
        "reconnects": reconnects,
        "in_sync": in_sync,
        "seconds": seconds,
    }
