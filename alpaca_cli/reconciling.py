"""Delivery and reconciliation: the supervisor's two jobs that keep `tail` honest.

`Delivery` admits every event, live or recovered, through the core's `Ledger`
(exactly once) and hands the new ones to the reader, at once or, with a state
file, once the save that holds them is done (`WriteAhead`). `Reconciler` takes
broker snapshots (positions read before and after the rest, so a fill landing
in between is seen as a torn snapshot and retried), delivers what the snapshot
shows was missed (`core.recover`) and adopts what no event explains.

Both run on an injectable `Clock` against a `SupervisedBroker`, the protocol
of what they call on the bridge, so their timing is tested in virtual time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from alpaca_cli.core import POSITION_KINDS, Ledger, State, diff, initial_state, keep_positions, recover
from alpaca_cli.domain import Position, Snapshot, TradeUpdate
from alpaca_cli.errors import AuthError, CliError

if TYPE_CHECKING:
    from alpaca_cli.bridge import StreamEvent
    from alpaca_cli.core import OrderRecord
    from alpaca_cli.domain import Account
    from alpaca_cli.writeahead import WriteAhead

log = logging.getLogger(__name__)

IN_FLIGHT_GRACE = 1.0  # seconds the slow poll lets in-flight events land before judging the stream
CLOSED_LOOKBACK = timedelta(seconds=30)  # closed orders are listed from this long before the last look
TORN_RETRIES = 2  # fresh snapshots taken when fills tear one (see `Reconciler.snapshot`)
TORN_RETRY_DELAY = 0.1


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Clock:
    """Where the supervisor gets its time. Injectable, so that its timing (backoff, polls, the
    slow check, torn-snapshot retries) is tested in virtual time instead of waited out."""

    now: Callable[[], datetime] = _now  # wall time: the figures, the closed-orders window
    monotonic: Callable[[], float] = time.monotonic  # durations and deadlines
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # every wait, timeouts included


class TradeStream(Protocol):
    """What the supervisor uses of a trade-update stream (`bridge.TradeUpdateStream`)."""

    updates: asyncio.Queue[TradeUpdate]
    lifecycle: asyncio.Queue[StreamEvent]

    def follow(self, take: Callable[[list[TradeUpdate]], None] | None) -> None:
        """Hand updates to `take` as they arrive, the queued ones first (None: queue them again)."""

    async def stop(self) -> None: ...


class SupervisedBroker(Protocol):
    """What the supervisor calls on the broker (`bridge.Broker`)."""

    async def account(self) -> Account: ...

    async def positions(self) -> list[Position]: ...

    async def snapshot(
        self, believed_open: Mapping[str, OrderRecord] | None = None, *, closed_since: datetime | None = None
    ) -> Snapshot: ...

    async def trade_updates_connect(self, *, connect_timeout: float | None = None) -> TradeStream: ...


@dataclass
class Figures:
    """What the supervisor has been through: the health file's figures and tail's footer."""

    mode: str = "starting"  # starting, connecting, live, polling, stopped
    connected: bool = False
    connected_since: datetime | None = None
    connections: int = 0
    reconnects: int = 0
    attempts: int = 0
    mute_reconnects: int = 0
    drift_adoptions: int = 0
    emitted: int = 0
    sources: dict[str, int] = field(default_factory=lambda: {"stream": 0, "reconcile": 0})
    last_update_at: datetime | None = None
    last_reconnect_at: datetime | None = None
    last_disconnect_at: datetime | None = None
    last_disconnect_reason: str | None = None
    last_reconciled_at: datetime | None = None
    reconciliations: int = 0
    last_error: str | None = None


class Delivery:
    """Admits events, live or recovered, exactly once (`Ledger`) and hands the new ones to the
    reader: at once, or with a state file once the save that holds them is done."""

    def __init__(self, on_update: Callable[[TradeUpdate], bool | None], figures: Figures) -> None:
        self.on_update = on_update
        self.figures = figures
        self.ledger: Ledger | None = None
        self.file: WriteAhead | None = None

    def deliver(self, *updates: TradeUpdate) -> int:
        """Admit events (one live, or a batch of them, or a catch-up's recovered ones): print
        what is new, apply everything; returns how many are new."""
        assert self.ledger is not None
        printed, applied = self.ledger.admit_all(updates, self.emit if self.file is None else None)
        if self.file is not None and applied:
            self.file.events(applied, printed)
        return len(printed)

    def saved(self, events: list[TradeUpdate]) -> list[TradeUpdate]:
        """Hand saved events over in order; returns those the reader did not take."""
        for at, event in enumerate(events):
            if not self.emit(event):
                return events[at:]
        return []

    def emit(self, event: TradeUpdate) -> bool:
        """Hand one event to `on_update`; False when it did not take it (it takes no more)."""
        if self.on_update(event) is False:
            return False
        self.figures.emitted += 1
        self.figures.sources[event.source] = self.figures.sources.get(event.source, 0) + 1
        return True

    def drain(self, handle: TradeStream) -> None:
        """Admit what the stream has queued."""
        while not handle.updates.empty():
            self.deliver(handle.updates.get_nowait())


class Reconciler:
    """Compares what was heard with a broker snapshot and makes up the difference: missed
    events are delivered as recovered ones, what no event explains is adopted (module doc)."""

    def __init__(
        self,
        broker: SupervisedBroker,
        delivery: Delivery,
        clock: Clock,
        figures: Figures,
        notice: Callable[..., None],
    ) -> None:
        self.broker = broker
        self.delivery = delivery
        self.clock = clock
        self.figures = figures
        self._notice = notice
        self._since: datetime | None = None  # closed orders are listed from here
        self._next_since: datetime | None = None
        self._first: tuple[Snapshot, bool] | None = None  # taken at start, reused once

    async def initialise(self, existing: State | None) -> None:
        """The starting state: the state file's (created from the snapshot when missing), or
        the snapshot itself (in memory: history is not printed, only what happens from now)."""
        started = self.clock.now()
        if existing is not None:
            since = min(t for t in (existing.last_reconciled_at, _last_event_at(existing), started) if t is not None)
        else:
            since = started
        self._since = since - CLOSED_LOOKBACK
        believed = existing.open_orders if existing is not None else {}
        for attempt in range(TORN_RETRIES + 1):
            snapshot, consistent = await self.snapshot(believed)
            if consistent or existing is not None or attempt == TORN_RETRIES:
                break
            await self.clock.sleep(TORN_RETRY_DELAY)
        file = self.delivery.file
        if file is not None:
            state = await file.start(snapshot)  # the file is this account's: checked there
            # Saved by a run that stopped before it could tell it had printed them (or before its
            # reader took them): first in line, and kept if this run's reader does not take them.
            file.hold(self.delivery.saved(list(state.pending())))
        else:
            state = initial_state(snapshot)
        self.delivery.ledger = Ledger(state)
        self._first = (snapshot, consistent)

    async def snapshot(self, believed: Mapping[str, OrderRecord] | None = None) -> tuple[Snapshot, bool]:
        """The broker snapshot plus the orders closed since the last look; and whether it is
        consistent.

        Positions and orders come from separate requests, so a fill landing
        between them tears the snapshot: positions would then disagree with
        the orders' fills, and adopting them would count that fill twice once
        its event arrives. Positions are therefore read before and after the
        rest; the snapshot is consistent when all three reads agree.
        """
        started = self.clock.now()
        if believed is None:
            ledger = self.delivery.ledger
            believed = ledger.state.open_orders if ledger is not None else {}
        before = await self.broker.positions()
        snapshot = await self.broker.snapshot(believed, closed_since=self._since)
        after = await self.broker.positions()
        consistent = _signed(before) == _signed(snapshot.positions) == _signed(after)
        self._next_since = started - CLOSED_LOOKBACK
        return snapshot, consistent

    def _reconciled(self) -> None:
        self._since = self._next_since
        self.figures.last_reconciled_at = self.clock.now()
        self.figures.reconciliations += 1

    async def paused(self) -> int:
        """Reconcile while no live update is consumed: recover, then adopt what is left;
        returns how many missed events were delivered.

        Drift (what no event explains) is adopted and reported only from a
        consistent snapshot; from a torn one (a busy market) only the orders
        and account are adopted and positions stay as the events made them.
        """
        ledger = self.delivery.ledger
        assert ledger is not None
        recovered = 0
        for attempt in range(TORN_RETRIES + 1):
            if self._first is not None:
                (snapshot, consistent), self._first = self._first, None
            else:
                snapshot, consistent = await self.snapshot()
            recovered += self.delivery.deliver(*recover(ledger.state, snapshot))
            if consistent or attempt == TORN_RETRIES:
                break
            await self.clock.sleep(TORN_RETRY_DELAY)
        differences = diff(ledger.state, snapshot)
        if not consistent:
            log.debug("torn snapshot (fills during it): positions left to the events")
            snapshot = keep_positions(snapshot, ledger.state)
            differences = [d for d in differences if d.kind not in POSITION_KINDS]
        ledger.adopt(snapshot)
        if self.delivery.file is not None:
            self.delivery.file.adopt(snapshot)
        self._reconciled()
        if differences:
            self.figures.drift_adoptions += 1
            self._notice("drift", differences=tuple(differences))
        return recovered

    async def missed(self) -> int:
        """The slow poll while connected: what the broker shows that the stream never delivered
        (delivered now, as recovered events); a failed poll is a notice, not an end."""
        ledger = self.delivery.ledger
        assert ledger is not None
        try:
            snapshot, _ = await self.snapshot()
        except CliError as error:
            if isinstance(error, AuthError):
                raise
            self._notice("poll_failed", reason=error.line())
            return 0
        await self.clock.sleep(IN_FLIGHT_GRACE)  # events already on their way are not missed
        missed = self.delivery.deliver(*recover(ledger.state, snapshot))
        self._reconciled()
        return missed


def _signed(positions: Iterable[Position]) -> dict[str, Decimal]:
    """Signed quantity by symbol: two position lists agree when these are equal."""
    return {p.symbol: p.signed_qty for p in positions if p.qty != 0}


def _last_event_at(state: State) -> datetime | None:
    return state.last_event.timestamp if state.last_event is not None else None
