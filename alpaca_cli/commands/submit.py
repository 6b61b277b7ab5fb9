"""`alpaca-cli submit`: place one order, safely.

The order is validated locally before anything is sent, gets its client
order id before the first send, and is placed through `orders.place`, which
cannot create a second order after a lost answer. A live account needs
`--live` and a confirmation (or `--yes`). `--wait` listens to trade updates
before sending (or polls the order when the stream is unavailable) and exits
0 when the order filled or is still working at the timeout, 1 when it ended
rejected, canceled or expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from alpaca_cli import orders
from alpaca_cli.errors import UsageError
from alpaca_cli.invocation import (
    DebugOption,
    LiveOption,
    OutputOption,
    ProfileOption,
    SandboxOption,
    start,
)

if TYPE_CHECKING:
    from alpaca_cli.bridge import Broker, TradeUpdateStream
    from alpaca_cli.domain import Order, OrderRequest, TradeUpdate
    from alpaca_cli.invocation import Invocation
    from alpaca_cli.output import Output

DEFAULT_TIMEOUT = 60.0
# Polling when the stream is unavailable: quick at first (most orders end
# within a second or two), then every 2 s, well under Alpaca's 200 requests/min.
POLL_DELAYS = (0.1, 0.2, 0.4, 0.8, 1.5)
POLL_INTERVAL = 2.0
STREAM_CONNECT_TIMEOUT = 10.0
# With the stream, the order is still asked for after this long without news:
# a "connected but mute" socket must not hide a fill until the timeout.
STREAM_QUIET_POLL = 3.0

YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Skip the confirmation prompts (for scripts).")]


def submit(
    symbol: Annotated[str, typer.Argument(help="Stock symbol, e.g. AAPL or BRK.B.", show_default=False)],
    side: Annotated[str, typer.Argument(help="buy or sell.", show_default=False)],
    qty: Annotated[str | None, typer.Option("--qty", help="Shares (fractional allowed for day market/limit).")] = None,
    notional: Annotated[
        str | None, typer.Option("--notional", help="Dollar amount instead of --qty (day market orders).")
    ] = None,
    order_type: Annotated[
        str, typer.Option("--type", help="market, limit, stop, stop_limit or trailing_stop.")
    ] = "market",
    limit_price: Annotated[str | None, typer.Option("--limit-price", help="For limit and stop_limit.")] = None,
    stop_price: Annotated[str | None, typer.Option("--stop-price", help="For stop and stop_limit.")] = None,
    trail_percent: Annotated[
        str | None, typer.Option("--trail-percent", help="For trailing_stop: trail by this percent.")
    ] = None,
    trail_price: Annotated[
        str | None, typer.Option("--trail-price", help="For trailing_stop: trail by this many dollars.")
    ] = None,
    tif: Annotated[str, typer.Option("--tif", help="Time in force: day, gtc, ioc, fok, opg or cls.")] = "day",
    extended_hours: Annotated[
        bool, typer.Option("--extended-hours", help="Allow pre/after-market fills (day limit orders).")
    ] = False,
    client_order_id: Annotated[
        str | None,
        typer.Option("--client-order-id", help="Your own id (max 128); re-running with the same id is safe."),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Print trade updates until the order ends. Exit 0 filled (or still working at --timeout), "
            "1 rejected, canceled or expired.",
        ),
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help=f"With --wait: stop waiting after S seconds [{DEFAULT_TIMEOUT:g}].", min=0),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the request that would be sent; send nothing.")
    ] = False,
    state: Annotated[
        Path | None, typer.Option("--state", help="Record the new order in this state file.", dir_okay=False)
    ] = None,
    yes: YesOption = False,
    live: LiveOption = False,
    output: OutputOption = None,
    debug: DebugOption = False,
    profile: ProfileOption = None,
    sandbox: SandboxOption = False,
) -> int:
    """Place one order: validated locally, never sent twice, guarded on live accounts."""
    request = orders.validate_order(
        symbol,
        side,
        qty=qty,
        notional=notional,
        order_type=order_type,
        limit_price=limit_price,
        stop_price=stop_price,
        trail_percent=trail_percent,
        trail_price=trail_price,
        time_in_force=tif,
        extended_hours=extended_hours,
        client_order_id=client_order_id,
    )
    if timeout is not None and not wait:
        raise UsageError("--timeout only applies with --wait")
    if timeout is not None and timeout <= 0:
        raise UsageError(f"--timeout must be greater than zero, got {timeout:g}")
    invocation = start(output, debug, profile, sandbox, live)
    out = invocation.out
    connection = invocation.connection
    if not connection.is_live:
        out.banner(connection.environment)
    if dry_run:
        _show_request(out, request, connection.environment)
        return 0
    decision = orders.live_guard(
        is_live=connection.is_live,
        live_allowed=invocation.live_allowed,
        yes=yes,
        interactive=sys.stdin.isatty(),
    )
    wait_for = (timeout or DEFAULT_TIMEOUT) if wait else None
    return asyncio.run(_submit(invocation, request, decision, state, wait_for))


async def _submit(
    invocation: Invocation, request: OrderRequest, decision: str, state: Path | None, timeout: float | None
) -> int:
    from alpaca_cli.bridge import Broker

    out = invocation.out
    async with Broker(invocation.connection) as broker:
        account_id = await _preflight(broker, request, decision, state)
        if timeout is None:
            placement = await orders.place(broker, request)
            _report(out, placement)
            _record_new(state, account_id, placement.order)
            return 0
        return await _place_and_follow(broker, out, request, state, account_id, timeout)


async def _preflight(broker: Broker, request: OrderRequest, decision: str, state: Path | None) -> str | None:
    """What must hold before the order goes out: the state file is usable, a live order is confirmed."""
    if decision != "confirm" and state is None:
        return None
    account = await broker.account()
    if state is not None:
        from alpaca_cli import statefile

        statefile.load(state, account_id=account.id)  # missing, corrupt or foreign: exit 2, nothing sent
    if decision == "confirm":
        text = orders.confirmation_text(account.account_number, orders.describe(request))
        if not typer.confirm(text, default=False, err=True):
            raise orders.NotConfirmed("not confirmed: nothing was sent")
    return account.id


def _record_new(state: Path | None, account_id: str | None, order: Order) -> None:
    """Record the placed order as its `new` event, through the same `apply` as the stream."""
    if state is None:
        return
    from alpaca_cli.domain import TradeUpdate

    _apply(state, account_id, TradeUpdate("new", order, order.submitted_at, source="reconcile"))


def _apply(state: Path | None, account_id: str | None, update: TradeUpdate) -> None:
    if state is None:
        return
    from alpaca_cli import statefile
    from alpaca_cli.core import apply

    statefile.update(state, lambda current: apply(current, update), account_id=account_id)


def _report(out: Output, placement: orders.Placement) -> None:
    """Print the order; fail (exit 1) when the client id belongs to a different order."""
    if out.json:
        out.emit(orders.order_record(placement.order, submission=placement.how))
    else:
        _panel(out, placement.order, placement.how)
    if placement.how == "recovered":
        out.warn(f"the broker's answer was lost; found the order by its client id {placement.order.client_order_id}")
    elif placement.how == "duplicate":
        out.warn(f"client order id {placement.order.client_order_id} was already used: this is that order")
    if not placement.matches:
        from alpaca_cli.errors import BrokerRejected

        order = placement.order
        raise BrokerRejected(
            f"client order id {order.client_order_id} already belongs to a different order "
            f"({order.side} {order.qty or order.notional} {order.symbol} {order.type}, id {order.id}): "
            "nothing was sent",
            status=422,
        )


async def _place_and_follow(
    broker: Broker, out: Output, request: OrderRequest, state: Path | None, account_id: str | None, timeout: float
) -> int:
    """Listen, place, then print the order's updates until it ends or `timeout` passes.

    The trade-update stream is opened *before* the order is sent, so even a
    fill that happens before the POST's answer arrives is heard. When the
    stream cannot be had (another process holds the account's one
    connection, or it does not connect), the order is polled instead.
    """
    from alpaca_cli.invocation import StopSignal

    trades = await _listen(broker, out)
    placement = await orders.place(broker, request)
    _report(out, placement)
    _record_new(state, account_id, placement.order)
    follower = _Follower(broker, out, state, account_id, placement.order)
    stop = StopSignal()
    stop.install()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        if trades is None:
            await follower.poll(deadline, stop.event, announce=True)
        else:
            await follower.listen(trades, deadline, stop.event)
    finally:
        stop.uninstall()
    final = follower.current
    if stop.received is not None:
        out.message(f"stopped waiting; order {final.id} is {final.status}")
        return stop.exit_code
    if not final.is_final:
        out.message(f"still {final.status} after {timeout:g} s: order {final.id} keeps working at the broker")
    return orders.wait_exit_code(final)


async def _listen(broker: Broker, out: Output) -> TradeUpdateStream | None:
    from alpaca_cli.errors import CliError

    try:
        return await broker.trade_updates_connect(connect_timeout=STREAM_CONNECT_TIMEOUT)
    except CliError as error:
        out.warn(f"trade-update stream unavailable ({error.message}); polling the order instead")
        return None


class _Follower:
    """Prints (and records) one order's updates, from the stream or from polling.

    `current` is the freshest view of the order. Stream events already
    explained by a poll (same event at the same cumulative fill, or older
    than what is known) are not printed twice.
    """

    def __init__(self, broker: Broker, out: Output, state: Path | None, account_id: str | None, order: Order) -> None:
        self.broker = broker
        self.out = out
        self.state = state
        self.account_id = account_id
        self.current = order
        self._seen: set[tuple[str, Any]] = set()

    def _emit(self, update: TradeUpdate) -> None:
        self._seen.add((update.event, update.order.filled_qty))
        _apply(self.state, self.account_id, update)
        _show_update(self.out, update)

    async def catch_up(self) -> None:
        """Ask the broker for the order and report whatever changed since `current`."""
        from alpaca_cli.errors import UnreachableError

        try:
            latest = await self.broker.order(self.current.id)
        except UnreachableError as error:
            # The order stands either way; one failed look must not end the wait.
            self.out.warn(f"could not look the order up ({error.message}); still waiting")
            return
        for update in orders.polled_events(self.current, latest):
            self._emit(update)
        self.current = latest

    async def poll(self, deadline: float, stop: asyncio.Event, *, announce: bool = False) -> None:
        """Follow the order by asking for it, quickly at first, then every few seconds."""
        loop = asyncio.get_running_loop()
        if announce:
            for update in orders.polled_events(None, self.current):
                self._emit(update)
        n = 0
        while not self.current.is_final and not stop.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            delay = POLL_DELAYS[n] if n < len(POLL_DELAYS) else POLL_INTERVAL
            n += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=min(delay, remaining))
                return
            await self.catch_up()

    async def listen(self, trades: TradeUpdateStream, deadline: float, stop: asyncio.Event) -> None:
        """Follow the order on the stream; poll once after a gap or a quiet spell, and at the end."""
        loop = asyncio.get_running_loop()
        stopper = asyncio.ensure_future(stop.wait())
        update_task: asyncio.Future[TradeUpdate] | None = None
        life_task: asyncio.Future[Any] | None = None
        try:
            while not self.current.is_final and not stop.is_set():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                update_task = update_task or asyncio.ensure_future(trades.updates.get())
                life_task = life_task or asyncio.ensure_future(trades.lifecycle.get())
                done, _ = await asyncio.wait(
                    {update_task, life_task, stopper},
                    timeout=min(remaining, STREAM_QUIET_POLL),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if stopper in done:
                    return
                if update_task in done:
                    self._heard(update_task.result())
                    update_task = None
                    continue
                if life_task in done:
                    event = life_task.result()
                    life_task = None
                    if event.event == "failed":
                        self.out.warn("trade-update stream failed; polling the order instead")
                        await self.catch_up()
                        await self.poll(deadline, stop)
                        return
                    if event.event != "connected" or not event.reconnects:
                        continue  # a drop, or the first connection: nothing can be missing yet
                # Reconnected after a gap, or nothing heard for a while: events may be lost.
                await self.catch_up()
            if not self.current.is_final and not stop.is_set():
                await self.catch_up()  # the last word comes from the broker, not from silence
        finally:
            for task in (stopper, update_task, life_task):
                if task is not None:
                    task.cancel()

    def _heard(self, update: TradeUpdate) -> None:
        order = update.order
        if order.id != self.current.id:
            return  # another order of the account
        key = (update.event, order.filled_qty)
        if key in self._seen or order.filled_qty < self.current.filled_qty:
            return
        self._emit(update)
        self.current = order


# --------------------------------------------------------------------------- rendering


def _show_request(out: Output, request: OrderRequest, environment: str) -> None:
    record = orders.request_record(request, environment)
    if out.json:
        out.emit(record)
        return
    from rich.panel import Panel
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    for key, value in record.items():
        if key != "type":
            grid.add_row(key, str(value))
    out.console.print(Panel(grid, title=f"Dry run · would send to {environment}", border_style="yellow"))


def _panel(out: Output, order: Order, how: str) -> None:
    from rich.panel import Panel
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    for key, value in orders.order_record(order).items():
        if key != "type" and value is not None and value is not False:
            grid.add_row(key, str(value))
    color = {"filled": "green", "rejected": "red", "canceled": "red", "expired": "red"}.get(order.status, "blue")
    title = f"Order {order.status}" + ("" if how == "sent" else f" · {how}")
    out.console.print(Panel(grid, title=title, border_style=color))


def _show_update(out: Output, update: TradeUpdate) -> None:
    if out.json:
        out.emit(orders.trade_update_record(update))
        return
    order = update.order
    fill = f" {update.qty} @ {update.price}" if update.qty is not None else ""
    out.console.print(
        f"{update.timestamp:%H:%M:%S} {update.event:<13} {order.side} {order.symbol}{fill} "
        f"· filled {order.filled_qty}/{order.qty if order.qty is not None else '$' + str(order.notional)} "
        f"· {order.status}",
        markup=False,
        highlight=False,
    )
