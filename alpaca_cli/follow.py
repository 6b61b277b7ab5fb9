"""Following one order to its end: the machinery behind `submit --wait`.

`place_and_follow` opens the trade-update stream *before* the order is sent,
so even a fill that lands before the POST's answer is heard; when the stream
cannot be had (another process holds the account's one connection, or it
does not connect) the order is polled instead. On the stream, the order is
still asked for after a reconnect or a quiet spell, because a "connected but
mute" socket must not hide a fill until the timeout.

Nothing here prints: the caller passes what to do with the placement, with
each update and with a warning, and renders the `Outcome`. The state file is
written here, through the same `core.apply` as `tail --state`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from alpaca_cli import orders
from alpaca_cli.core import Ledger, State, polled_events

if TYPE_CHECKING:
    from pathlib import Path

    from alpaca_cli.bridge import Broker, TradeUpdateStream
    from alpaca_cli.domain import Activity, Order, OrderRequest, TradeUpdate

# Polling when the stream is unavailable: quick at first (most orders end
# within a second or two), then every 2 s, well under Alpaca's 200 requests/min.
POLL_DELAYS = (0.1, 0.2, 0.4, 0.8, 1.5)
POLL_INTERVAL = 2.0
STREAM_CONNECT_TIMEOUT = 10.0
# With the stream, the order is still asked for after this long without news.
STREAM_QUIET_POLL = 3.0

Warn = Callable[[str], None]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """How a wait ended: the freshest view of the order, and the stop signal's exit code if one ended it."""

    order: Order
    stopped_exit_code: int | None = None


def record_new(state: Path | None, account_id: str | None, order: Order) -> None:
    """Record the placed order as its `new` event, through the same `apply` as the stream."""
    if state is None:
        return
    from alpaca_cli.domain import TradeUpdate

    record(state, account_id, TradeUpdate("new", order, order.submitted_at, source="reconcile"))


def record(state: Path | None, account_id: str | None, update: TradeUpdate) -> None:
    """Apply one trade update to the state file (nothing without `--state`).

    The order exists at the broker by now, so a file that cannot be written
    is `LocalStepFailed` (exit 6) naming the order and the command that
    records it, never a usage error's "nothing was sent".
    """
    if state is None:
        return
    from alpaca_cli import statefile
    from alpaca_cli.core import apply
    from alpaca_cli.errors import LocalStepFailed, UsageError

    try:
        statefile.update(state, lambda current: apply(current, update), account_id=account_id)
    except UsageError as error:
        order = update.order
        what = "it" if update.event == "new" else f"its {update.event}"
        raise LocalStepFailed(
            f"order {order.id} (client order id {order.client_order_id}) is at the broker, "
            f"but recording {what} failed: {error.line()}",
            hint=f"once the file can be written, run `alpaca-cli reconcile --write --state {state}`",
        ) from None


async def place_and_follow(
    broker: Broker,
    request: OrderRequest,
    timeout: float,
    *,
    state: Path | None,
    account_id: str | None,
    on_placed: Callable[[orders.Placement], None],
    on_update: Callable[[TradeUpdate], None],
    warn: Warn,
    note: Warn | None = None,
) -> Outcome:
    """Listen, place, then report the order's updates until it ends, `timeout` passes or a signal stops it.

    `on_placed` sees the placement before it is recorded; if it raises (a
    client id that belongs to another order), nothing is recorded or followed.
    """
    from alpaca_cli.invocation import StopSignal

    trades = await listen(broker, warn, note or warn)
    placement = await orders.place(broker, request)
    on_placed(placement)
    record_new(state, account_id, placement.order)
    follower = Follower(broker, placement.order, on_update=on_update, warn=warn, state=state, account_id=account_id)
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
    return Outcome(follower.current, stop.exit_code if stop.received is not None else None)


async def listen(broker: Broker, warn: Warn, note: Warn) -> TradeUpdateStream | None:
    """The account's trade-update stream, or None when it cannot be had.

    Another process holding the account's one stream (a running `tail`) is
    the normal case, not a fault: `note` says why the order is polled. Any
    other failure is a `warn`ing.
    """
    from alpaca_cli.errors import CliError, ConnectionLimitError

    try:
        return await broker.trade_updates_connect(connect_timeout=STREAM_CONNECT_TIMEOUT)
    except ConnectionLimitError:
        note("another process (a running tail?) holds this account's trade-update stream; polling the order")
        return None
    except CliError as error:
        warn(f"trade-update stream unavailable ({error.message}); polling the order instead")
        return None


class Follower:
    """Reports (and records) one order's updates, from the stream or from polling.

    `current` is the freshest view of the order. Whether an event is news is
    the core's exactly-once memory (`core.Ledger`, as for `tail`): stream
    events already explained by a poll, or older than what is known, are not
    reported twice, and a fill that jumps over a lost one brings the missing
    part first.
    """

    def __init__(
        self,
        broker: Broker,
        order: Order,
        *,
        on_update: Callable[[TradeUpdate], None],
        warn: Warn,
        state: Path | None = None,
        account_id: str | None = None,
    ) -> None:
        self.broker = broker
        self.on_update = on_update
        self.warn = warn
        self.state = state
        self.account_id = account_id
        self.current = order
        # This process's memory of the order's events, starting from nothing heard.
        self._ledger = Ledger(State.empty(account_id or ""))

    def _emit(self, update: TradeUpdate) -> bool:
        """Record and report `update` (and a missed part before it) if it is news; whether it was."""
        printed = self._ledger.admit(update)[0]
        for news in printed:
            record(self.state, self.account_id, news)
            self.on_update(news)
        return bool(printed)

    async def catch_up(self) -> None:
        """Ask the broker for the order and report whatever changed since `current`."""
        from alpaca_cli.errors import UnreachableError

        try:
            latest = await self.broker.order(self.current.id)
        except UnreachableError as error:
            # The order stands either way; one failed look must not end the wait.
            self.warn(f"could not look the order up ({error.message}); still waiting")
            return
        fills = await self._fills(self.current, latest)
        for update in polled_events(self.current, latest, at=latest.updated_at or datetime.now(UTC), fills=fills):
            self._emit(update)
        self.current = latest

    async def _fills(self, before: Order | None, latest: Order) -> list[Activity] | None:
        """The account's FILL activities since the order was placed, when `latest` shows shares
        filled since `before` (one listing per change seen, within the rate budget): each fill's
        own price and size. None when there is nothing new or they cannot be had; the events
        then carry the price the averages imply."""
        from datetime import timedelta

        from alpaca_cli.errors import CliError

        if latest.filled_qty <= (before.filled_qty if before is not None else 0):
            return None
        try:
            return await self.broker.activities(["FILL"], after=latest.submitted_at - timedelta(seconds=1))
        except CliError as error:
            log.debug("no fill activities for order %s (%s): prices from its average", latest.id, error.message)
            return None

    async def poll(self, deadline: float, stop: asyncio.Event, *, announce: bool = False) -> None:
        """Follow the order by asking for it, quickly at first, then every few seconds."""
        loop = asyncio.get_running_loop()
        if announce:
            for update in polled_events(
                None,
                self.current,
                at=self.current.updated_at or datetime.now(UTC),
                fills=await self._fills(None, self.current),
            ):
                self._emit(update)
        n = 0
        while not self.current.is_final and not stop.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            delay = POLL_DELAYS[n] if n < len(POLL_DELAYS) else POLL_INTERVAL
            n += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(delay, remaining)):
                    await stop.wait()
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
                        self.warn("trade-update stream failed; polling the order instead")
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
        if order.filled_qty < self.current.filled_qty:
            return  # older than what a poll already showed
        if self._emit(update):
            self.current = order
