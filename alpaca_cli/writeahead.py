"""`tail --state`'s write-ahead writer: every event is in the state file before it is printed.

The supervisor applies events in memory at once; this writer saves them (and
the snapshots it adopts) to the state file in order, in batches, on a worker
thread, together with the batch's events as the file's `outbox`, and hands the
events over for printing only once the save that holds them is done. A kill at
any moment then loses nothing and repeats at most the last batch (README,
"Exactly once, across restarts").
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from alpaca_cli.core import State, adopt, initial_state
from alpaca_cli.domain import Snapshot, TradeUpdate

OUTBOX_IDLE = 1.0  # seconds without events after which the state file's printed outbox is emptied
CLOSE_FLUSH = 2.0  # seconds a stop waits for printed lines to leave the process before emptying the outbox


class WriteAhead:
    """Saves events (and adoptions) to the state file in order, batched, off the event loop,
    and hands each batch's events to `on_saved` only once the save that holds them is done.

    `on_saved` returns the events its reader did not take (`tail --count` reached
    in the middle of a batch): they are *held* — every later save keeps them at
    the head of the outbox, and a clean stop leaves exactly them there — so the
    next run prints them first: a count is exact and nothing is lost.

    One write at a time, in the order the operations came: what arrives while
    a write is under way goes into the next one, so a burst costs one fsync per
    batch and a lone event waits for one save. Each save also replaces the
    file's outbox with the batch's events to print (write-ahead, see the
    module doc); after `OUTBOX_IDLE` seconds without news one more save empties
    it, so a kill after a quiet spell repeats nothing. A write that fails (the
    file became unwritable, another process held the lock too long) is
    reported through `on_failure` and ends the writer; what it held is never
    printed, and the command fails with it.

    "Printed" must mean "left the process": a reader that falls behind leaves
    lines in the output's buffer, and replacing the outbox then would let a kill
    lose them. With `printed` (an awaitable that returns once everything written
    so far has left), no save replaces an outbox whose lines are still buffered,
    and a stop that cannot get them out in `CLOSE_FLUSH` seconds leaves the outbox
    as it is: the next run prints them again rather than never.
    """

    def __init__(
        self,
        path: Path,
        on_saved: Callable[[list[TradeUpdate]], list[TradeUpdate]],
        on_failure: Callable[[Exception], None],
        printed: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.path = path
        self._on_saved = on_saved
        self._on_failure = on_failure
        self._printed = printed
        self._ops: list[tuple[str, Any]] = []
        self._to_print: list[TradeUpdate] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._writing: asyncio.Future[None] | None = None
        self._saving: list[TradeUpdate] | None = None  # to print once the write under way is done
        self._outbox_printed = False  # the file's outbox holds events printed since it was saved
        self._held: list[TradeUpdate] = []  # saved, never printed: the head of every outbox from now on
        self._failed = False
        self._account_id: str | None = None

    def check(self) -> State | None:
        """The file's state (None when missing); a corrupt file raises `UsageError` (exit 2)."""
        from alpaca_cli import statefile

        try:
            return statefile.load(self.path)
        except statefile.StateFileMissing:
            return None

    async def start(self, snapshot: Snapshot) -> State:
        """The file's state, created from `snapshot` when missing; then start the writer."""
        from alpaca_cli import statefile

        self._account_id = snapshot.account.id
        state = await asyncio.to_thread(
            statefile.update,
            self.path,
            lambda current: current,
            account_id=self._account_id,
            create=lambda: initial_state(snapshot),
        )
        self._outbox_printed = bool(state.outbox)  # the caller prints a killed run's outbox first
        self._task = asyncio.create_task(self._writer(), name="state-file-writer")
        return state

    def events(self, applied: list[TradeUpdate], to_print: list[TradeUpdate]) -> None:
        """Queue events to apply, and those of them to print once saved."""
        if self._ops and self._ops[-1][0] == "events":
            self._ops[-1][1].extend(applied)
        else:
            self._ops.append(("events", list(applied)))
        self._to_print.extend(to_print)
        self._wake.set()

    def adopt(self, snapshot: Snapshot) -> None:
        self._ops.append(("adopt", snapshot))
        self._wake.set()

    def hold(self, events: list[TradeUpdate]) -> None:
        """Keep saved events that were not printed in the outbox (see the class doc)."""
        self._held.extend(events)

    async def _writer(self) -> None:
        while True:
            idle = False
            if self._outbox_printed:
                try:
                    async with asyncio.timeout(OUTBOX_IDLE):  # not wait_for: it can drop a cancel (3.11)
                        await self._wake.wait()
                except TimeoutError:
                    idle = True  # a quiet spell: empty the outbox, so a kill now repeats nothing
            else:
                await self._wake.wait()
            self._wake.clear()
            if not self._ops and not idle:
                continue
            if self._outbox_printed and self._printed is not None:
                await self._printed()  # the outbox's lines are out before the outbox is replaced
            # Taken only now: a stop while waiting above finds them still queued, for `close`.
            ops, self._ops = self._ops, []
            to_print, self._to_print = self._to_print, []
            # Shielded: a stop lets the write under way finish, so the next one cannot overtake it.
            self._writing = asyncio.ensure_future(asyncio.to_thread(self._write, ops, self._held + to_print))
            self._saving = to_print
            try:
                await asyncio.shield(self._writing)
            except Exception as error:  # any failure ends the run: never go on unsaved
                self._failed = True
                self._on_failure(error)
                return
            self._saving = None
            self.hold(self._on_saved(to_print))
            self._outbox_printed = bool(to_print)

    def _write(self, ops: list[tuple[str, Any]], outbox: list[TradeUpdate]) -> None:
        from alpaca_cli import statefile
        from alpaca_cli.core import apply_all

        def change(state: State) -> State:
            for kind, payload in ops:
                state = apply_all(state, payload) if kind == "events" else adopt(state, payload, payload.taken_at)
            return state.with_outbox(outbox)

        statefile.update(self.path, change, account_id=self._account_id)

    async def close(self) -> None:
        """Stop the writer, let a write under way finish, save and print what is still pending,
        then leave in the outbox only what was never printed: after a clean stop a restart
        repeats nothing and prints the held events first."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._failed or self._account_id is None:
            return
        if self._saving is not None and self._writing is not None:
            await self._writing  # its failure is the command's error
            self.hold(self._on_saved(self._saving))
            self._saving = None
        ops, self._ops = self._ops, []
        to_print, self._to_print = self._to_print, []
        if ops:
            if not await self._all_printed():
                return
            await asyncio.to_thread(self._write, ops, self._held + to_print)
            self.hold(self._on_saved(to_print))
        if await self._all_printed():
            await asyncio.to_thread(self._write, [], self._held)

    async def _all_printed(self) -> bool:
        """Whether the printed lines left the process within `CLOSE_FLUSH` (a stuck reader: no)."""
        if self._printed is None:
            return True
        try:
            async with asyncio.timeout(CLOSE_FLUSH):
                await self._printed()
        except TimeoutError:
            return False
        return True
