"""The trade-update supervisor: the stream is latency, the broker is truth.

Alpaca's trade-update stream is the fastest way to hear of a fill, but it is
only a notification path: events fired while a socket is down are gone (no
replay), and a socket can stay open while saying nothing. So the supervisor
never trusts delivery alone:

- On start and on every (re)connection it subscribes first, so nothing can
  fall between the snapshot and the stream; leaves the live updates queued;
  takes a broker snapshot; emits what the snapshot shows was missed (fills
  with only the missed quantity, cancels, expiries, rejects, orders never
  heard of, orders that opened and closed unheard; `source="reconcile"`, in
  order) through the same path as live events; adopts whatever no event
  explains (reported as drift; positions only from a snapshot that fills did
  not tear, see `reconciling.Reconciler.snapshot`); and only then declares the stream
  healthy and drains the queued live updates, whose duplicates are dropped.
- Exactly once: an event is printed iff it is new to the state (`core.ledger.is_new`),
  keyed on what `core.apply` already makes idempotent: the order's cumulative
  filled quantity, the closed-order and execution-id memories, and for
  status-only events (`order_cancel_rejected`, `pending_cancel`, ...) their
  `core.identity.event_id` (order id, event, timestamp). A live fill that
  jumps over a lost one is preceded by the missing part (`core.recover.missed_part`), so
  the printed fill quantities of an order always add up to its cumulative
  fill.
- Exactly once across restarts (with a state file): write-ahead. The events
  of a batch are applied to the state file *and* kept in its `outbox` in one
  atomic save before any of them is printed; a restarted supervisor prints
  the outbox first. A kill at any moment therefore loses nothing (what was
  printed was saved, so recovery never re-derives it differently) and repeats
  at most the last batch, identically, ids included. A save that fails ends
  the run with its error: nothing is printed unsaved.
- Backoff with jitter around the whole connection lifecycle (`Backoff`:
  1 s doubling to 30 s, reset once a connection stayed up `HEALTHY_AFTER`
  seconds); refused keys and another holder of the stream (exit 3 and 5)
  fail at once (a connection-limit refusal right after our own socket
  dropped is retried by the bridge first: the broker may not have reaped it).
- REST is the safety net: while the stream is down the broker is polled
  every `poll_interval` seconds and changes are emitted as `reconcile`
  events; while it is up, a slow poll every `slow_poll` seconds compares
  the broker with what was heard and, if the stream missed something, emits
  it and forces a reconnection (counted as a mute reconnect).
- Health (`alpaca_cli.health`, stream "trade-updates") is rewritten on every
  change (coalesced to one write a second) and at least every 5 s.

API (on the tool's event loop)::

    async with Broker(connection) as broker:
        supervisor = Supervisor(broker, on_update=print_it, on_notice=tell_it,
                                state_path=path, environment="paper")
        await supervisor.run(stop_event)   # returns when stop_event is set;
                                           # raises CliError on a permanent failure

`on_update(TradeUpdate)` receives every event exactly once, in order (it
may answer False to take no more, `tail --count`: with a state file, what it
did not take stays in the file's outbox and the next run prints it first);
`on_notice(Notice)` every lifecycle change; `warn(str)` a health file that
cannot be written (once). With `state_path`, every applied event reaches the
state file (`statefile.update`, under its lock, batched while a burst
arrives) before it reaches `on_update`; a missing file is created from the
first snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alpaca_cli import health
from alpaca_cli.core import Ledger
from alpaca_cli.domain import TradeUpdate
from alpaca_cli.errors import AuthError, CliError, RouteNotFound, UnreachableError
from alpaca_cli.health import StreamName
from alpaca_cli.reconciling import Clock, Delivery, Figures, Reconciler, SupervisedBroker, TradeStream
from alpaca_cli.writeahead import WriteAhead

if TYPE_CHECKING:
    from alpaca_cli.core import Difference

log = logging.getLogger(__name__)

STREAM = StreamName.trade_updates
POLL_INTERVAL = 10.0  # seconds between REST reconciliations while the stream is down
SLOW_POLL = 60.0  # seconds between mute checks while it is up
BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0
HEALTHY_AFTER = 30.0  # seconds a connection must last before the backoff starts over
CONNECT_WINDOW = 10.0  # seconds one connection attempt may take (the SDK may retry inside it)


# =========================================================================== pure parts


def backoff_delay(failures: int, jitter: float, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP) -> float:
    """Seconds to wait after `failures` consecutive failures (>= 0), "equal jitter" style.

    The ceiling doubles from `base` up to `cap`; the delay is uniform in
    [ceiling/2, ceiling] (`jitter` in [0, 1] picks the point), so many clients
    dropped at once do not come back in lockstep.
    """
    ceiling = min(cap, base * 2 ** min(failures, 32))
    return ceiling / 2 + ceiling / 2 * min(max(jitter, 0.0), 1.0)


@dataclass
class Backoff:
    """The reconnection schedule of one supervisor: grows while connections fail or die young."""

    base: float = BACKOFF_BASE
    cap: float = BACKOFF_CAP
    healthy_after: float = HEALTHY_AFTER
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def next_delay(self) -> float:
        """The wait before the next attempt; counts one more failure."""
        delay = backoff_delay(self.failures, self.rng.random(), base=self.base, cap=self.cap)
        self.failures += 1
        return delay

    def connection_ended(self, lasted: float) -> None:
        """A connection that stayed up long enough was healthy: start the schedule over."""
        if lasted >= self.healthy_after:
            self.failures = 0


def permanent(error: CliError) -> bool:
    """Whether a failed connection attempt ends the supervisor instead of being retried: all but
    an unreachable broker (refused keys, another holder of the stream, a wrong URL: a 404 at the
    upgrade is `RouteNotFound`, an `UnreachableError` that no retry will mend). A connection
    limit that may be our own dropped socket was already retried by the bridge (`LIMIT_GRACE`)."""
    return isinstance(error, RouteNotFound) or not isinstance(error, UnreachableError)


# ====================================================================== lifecycle notices


@dataclass(frozen=True, slots=True)
class Notice:
    """One lifecycle change of the supervisor, for stderr and `{"type":"stream",...}` lines
    (`output.records.stream`).

    `event`: connected (healthy: reconciled and live), disconnected, polling
    (a reconciliation while down found something), retrying (an attempt
    failed), drift (adopted differences no event explains), mute (the slow
    poll found what the stream never delivered), poll_failed, failed.
    """

    event: str
    at: datetime
    reconnects: int = 0
    reason: str | None = None
    recovered: int = 0
    retry_in: float | None = None
    differences: tuple[Difference, ...] = ()
    error: CliError | None = None

    @property
    def stream(self) -> str:
        return STREAM

    def text(self) -> str:
        """The one stderr line for this change."""
        what = {
            "connected": "connected" if not self.reconnects else f"reconnected (reconnect {self.reconnects})",
            "disconnected": f"disconnected: {self.reason}; polling the broker until it is back",
            "polling": f"recovered {self.recovered} missed event(s) by polling the broker",
            "retrying": f"connection attempt failed ({self.reason}); next in {self.retry_in or 0:.1f} s",
            "drift": f"adopted broker truth: {len(self.differences)} difference(s) no event explains"
            + (f" ({', '.join(sorted({d.kind for d in self.differences}))})" if self.differences else ""),
            "mute": f"missed {self.recovered} event(s) the broker shows; forcing a reconnect",
            "poll_failed": f"broker poll failed: {self.reason}",
            "failed": f"failed: {self.error.line() if self.error else self.reason}",
        }.get(self.event, self.event)
        if self.event == "connected" and self.recovered:
            what += f"; recovered {self.recovered} missed event(s)"
        return f"{STREAM} stream {what}"


# ============================================================================ supervisor


class _Stopped(Exception):
    """The stop event was set while waiting."""


class Supervisor:
    """Runs the trade-update stream with reconciliation, polling, backoff and health (module doc).

    Its jobs are apart: `Delivery` (exactly once, to the reader), `Reconciler`
    (snapshots, recovery, adoption), `WriteAhead` (the state file), `health.Publisher`
    (the health file); this class runs the connection's lifecycle around them, on a
    `Clock` and a `SupervisedBroker`, both injectable.
    """

    def __init__(
        self,
        broker: SupervisedBroker,
        *,
        on_update: Callable[[TradeUpdate], bool | None],
        on_notice: Callable[[Notice], None],
        state_path: Path | None = None,
        environment: str | None = None,
        warn: Callable[[str], None] | None = None,
        poll_interval: float = POLL_INTERVAL,
        slow_poll: float = SLOW_POLL,
        connect_window: float = CONNECT_WINDOW,
        backoff: Backoff | None = None,
        printed: Callable[[], Awaitable[None]] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.broker = broker
        self.on_notice = on_notice
        self.poll_interval = poll_interval
        self.slow_poll = slow_poll
        self.connect_window = connect_window
        self.backoff = backoff or Backoff()
        self.clock = clock or Clock()
        self.figures = Figures()
        self._delivery = Delivery(on_update, self.figures)
        if state_path is not None:
            self._delivery.file = WriteAhead(state_path, self._delivery.saved, self._fail, printed)
        self._reconciler = Reconciler(broker, self._delivery, self.clock, self.figures, self._notice)
        self._health = (
            health.Publisher(environment, StreamName.trade_updates, self.health_record, warn or log.warning)
            if environment
            else None
        )
        self._fatal: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._pending_recovered = 0  # recovered while reconnecting, told with "connected"

    @property
    def ledger(self) -> Ledger | None:
        """What this run has seen (None until the first snapshot)."""
        return self._delivery.ledger

    # ------------------------------------------------------------------ running

    async def run(self, stop: asyncio.Event) -> None:
        """Supervise until `stop` is set (returns) or a permanent failure (raises its CliError)."""
        self._stop = stop
        async with self._health or contextlib.nullcontext():
            await self._supervise_until(stop)

    async def _supervise_until(self, stop: asyncio.Event) -> None:
        stopper = asyncio.create_task(stop.wait())
        main = asyncio.create_task(self._supervise(), name="trade-updates-supervisor")
        try:
            await asyncio.wait({main, stopper, self._fatal}, return_when=asyncio.FIRST_COMPLETED)
            error = self._fatal.exception() if self._fatal.done() else None
            if error is None and main.done() and not main.cancelled():
                error = main.exception()
            if isinstance(error, CliError):
                self.figures.last_error = error.line()  # the health file's last word says why
                self._notice("failed", error=error)
            if error is not None and not isinstance(error, _Stopped):
                raise error
        finally:
            for task in (main, stopper):
                task.cancel()
            await asyncio.gather(main, stopper, return_exceptions=True)
            self.figures.connected = False
            self.figures.mode = "stopped"
            if self._delivery.file is not None:
                await self._delivery.file.close()

    def _fail(self, error: Exception) -> None:
        """A failure outside the main task (the state file writer): end the run with it."""
        if not self._fatal.done():
            self._fatal.set_exception(error)

    async def _supervise(self) -> None:
        file = self._delivery.file
        existing = file.check() if file is not None else None
        handle: TradeStream | None
        opening = asyncio.create_task(self._open())
        try:
            # While the stream connects, ask the broker's REST side once: a broker that
            # cannot tell the truth at all (down, garbage, wrong URL) ends the run now
            # (exit 4) instead of after the whole connect window, or never.
            await self.broker.account()
        except BaseException:
            opening.cancel()
            await asyncio.gather(opening, return_exceptions=True)
            raise
        try:
            handle = await opening
        except CliError as error:
            if permanent(error):
                raise
            handle = None
            self.figures.last_error = error.line()
        await self._reconciler.initialise(existing)
        if handle is None:
            handle = await self._reconnect(f"not connected at start ({self.figures.last_error})")
        else:
            self._pending_recovered = await self._reconcile()
        while True:
            reason = await self._live(handle)
            handle = await self._reconnect(reason)

    async def _open(self) -> TradeStream:
        self.figures.attempts += 1
        self.figures.mode = "connecting"
        return await self.broker.trade_updates_connect(connect_timeout=self.connect_window)

    async def _reconcile(self) -> int:
        recovered = await self._reconciler.paused()
        self._health_changed()
        return recovered

    # -------------------------------------------------------------------- live

    async def _live(self, handle: TradeStream) -> str:
        """Healthy: consume live updates until the connection ends; returns why it ended."""
        figures = self.figures
        now = self.clock.now()
        figures.connected = True
        figures.connected_since = now
        if figures.connections:
            figures.reconnects += 1
            figures.last_reconnect_at = now
        figures.connections += 1
        figures.mode = "live"
        figures.last_error = None
        recovered = self._pending_recovered
        self._pending_recovered = 0
        self._notice("connected", recovered=recovered)
        started = self.clock.monotonic()
        # Live updates are taken as the bridge hands them over, in the same callback (a task
        # reading the queue would cost every fill one more turn of the loop). An error in
        # taking them stops the taking and ends the run with it, wherever `_live` then is
        # (not in the loop's exception handler, never a reconnection that goes on without it).
        failure: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def take(updates: list[TradeUpdate]) -> None:
            try:
                self._delivery.deliver(*updates)
                figures.last_update_at = self.clock.now()
                self._health_changed()
            except Exception as error:
                handle.follow(None)
                if not failure.done():
                    failure.set_exception(error)

        handle.follow(take)
        ended = asyncio.create_task(self._connection_end(handle))
        try:
            while True:
                tick = asyncio.ensure_future(self.clock.sleep(self.slow_poll))
                try:
                    done, _ = await asyncio.wait({failure, ended, tick}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    tick.cancel()
                if failure.done():
                    break
                if ended in done:
                    reason = ended.result()
                    break
                missed = await self._reconciler.missed()
                self._health_changed()
                if failure.done():
                    break
                if missed:
                    figures.mute_reconnects += 1
                    self._notice("mute", recovered=missed)
                    reason = f"mute: {missed} event(s) never delivered"
                    break
        finally:
            handle.follow(None)
            ended.cancel()
            await asyncio.gather(ended, return_exceptions=True)
            figures.connected = False
            self.backoff.connection_ended(self.clock.monotonic() - started)
            # Stopped here whichever way the connection ends, a stop (SIGINT/SIGTERM, --duration)
            # included: what the SDK's thread hands over until then is queued, and taken below.
            await handle.stop()
            if failure.done():
                failure.exception()  # retrieved: raised below, or dropped by the cancellation under way
            else:
                self._delivery.drain(handle)  # what arrived before the end is real: take it
        if failure.done():
            failure.result()
        return reason

    async def _connection_end(self, handle: TradeStream) -> str:
        while True:
            event = await handle.lifecycle.get()
            if event.event == "failed" and event.error is not None:
                if permanent(event.error):
                    raise event.error
                return event.error.line()
            if event.event in ("disconnected", "stale"):
                return event.reason or event.event

    # ---------------------------------------------------------------- reconnect

    async def _reconnect(self, reason: str) -> TradeStream:
        """Poll the broker while down and retry with backoff; returns a reconciled connection."""
        figures = self.figures
        figures.connected = False
        figures.mode = "polling"
        figures.last_disconnect_at = self.clock.now()
        figures.last_disconnect_reason = reason
        self._notice("disconnected", reason=reason)
        clock = self.clock
        next_attempt = clock.monotonic() + self.backoff.next_delay()
        next_poll = clock.monotonic()
        attempt: asyncio.Task[TradeStream] | None = None
        stopper = asyncio.create_task(self._stop.wait())
        try:
            while True:
                now = clock.monotonic()
                if now >= next_poll:
                    await self._poll_down()
                    next_poll = clock.monotonic() + self.poll_interval
                    continue
                if attempt is None and now >= next_attempt:
                    attempt = asyncio.create_task(self._open())
                waiters: set[asyncio.Future[Any]] = {stopper}
                deadline = next_poll
                if attempt is not None:
                    waiters.add(attempt)
                else:
                    deadline = min(deadline, next_attempt)
                tick = asyncio.ensure_future(clock.sleep(max(0.0, deadline - now)))
                try:
                    done, _ = await asyncio.wait({*waiters, tick}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    tick.cancel()
                if stopper in done:
                    raise _Stopped
                if attempt is not None and attempt in done:
                    try:
                        handle = attempt.result()
                    except CliError as error:
                        attempt = None
                        if permanent(error):
                            raise
                        figures.last_error = error.line()
                        delay = self.backoff.next_delay()
                        next_attempt = clock.monotonic() + delay
                        figures.mode = "polling"
                        self._notice("retrying", reason=error.line(), retry_in=delay)
                        continue
                    attempt = None
                    self._pending_recovered = await self._reconcile()
                    return handle
        finally:
            stopper.cancel()
            if attempt is not None:
                attempt.cancel()
                await asyncio.gather(attempt, return_exceptions=True)

    async def _poll_down(self) -> None:
        """One reconciliation while the stream is down: its changes are the only news there is."""
        try:
            recovered = await self._reconcile()
        except CliError as error:
            if isinstance(error, AuthError):
                raise
            self._notice("poll_failed", reason=error.line())
            return
        if recovered:
            self._notice("polling", recovered=recovered)

    # ------------------------------------------------------------------ health

    def _notice(self, event: str, **fields: Any) -> None:
        self.on_notice(Notice(event, self.clock.now(), self.figures.reconnects, **fields))
        self._health_changed()

    def health_record(self) -> dict[str, Any]:
        """The trade-updates health, as `alpaca_cli.health.write` stores it."""
        f = self.figures
        age = (self.clock.now() - f.last_reconciled_at).total_seconds() if f.last_reconciled_at else None
        return {
            "connected": f.connected,
            "mode": f.mode,
            "connected_since": f.connected_since,
            "last_message_at": f.last_update_at,
            "last_trade_update_at": f.last_update_at,
            "reconnects": f.reconnects,
            "last_reconnect_at": f.last_reconnect_at,
            "last_disconnect_at": f.last_disconnect_at,
            "last_disconnect_reason": f.last_disconnect_reason,
            "connection_attempts": f.attempts,
            "mute_reconnects": f.mute_reconnects,
            "last_reconciled_at": f.last_reconciled_at,
            "reconcile_age_s": round(age, 1) if age is not None else None,
            "reconciliations": f.reconciliations,
            "drift_adoptions": f.drift_adoptions,
            "events_emitted": f.emitted,
            "sources": dict(f.sources),
            "poll_interval": self.poll_interval,
            "slow_poll": self.slow_poll,
            "last_error": f.last_error,
        }

    def _health_changed(self) -> None:
        if self._health is not None:
            self._health.changed()
