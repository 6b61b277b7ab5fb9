"""How every long-running command ends: a signal, `--duration`, `--count`, or a reader that left.

`tail` and `stream` (and whatever streams next) share this instead of wiring
it each their own way:

    limits = Limits(count=count, duration=duration)     # at the top of the command
    ...
    async with Runner(limits) as run:
        run.watch(sink.gone)                             # `| head -1`: exit 0, quietly
        pump = asyncio.create_task(print_lines(run))     # calls run.counted() per line
        await run.wait(pump)                             # the end, or pump's error
    return run.exit_code                                 # 130 after SIGINT, else 0

The first SIGINT or SIGTERM asks for a graceful stop; the command then has
its own `finally` blocks to flush and close (within the 5 s the contract
allows). `--duration` is wall time from `Limits.started` (the command's start:
connecting and catch-up included); `--count` counts every printed line, live
or recovered.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from alpaca_cli.invocation import StopSignal


@dataclass(frozen=True, slots=True)
class Limits:
    """A run's own limits: stop after `count` printed lines or `duration` seconds from `started`."""

    count: int | None = None
    duration: float | None = None
    started: float = field(default_factory=time.monotonic)


class Runner:
    """The end of one run of a long-running command (see the module doc)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.end = asyncio.Event()
        self.printed = 0
        self._stop = StopSignal()
        self._watchers: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Runner:
        self._stop.install()
        self.watch(self._stop.event)
        if self.limits.duration is not None:
            left = self.limits.duration - (time.monotonic() - self.limits.started)
            self._watchers.append(asyncio.create_task(self._end_after(left)))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._watchers:
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        self._stop.uninstall()

    def watch(self, event: asyncio.Event) -> None:
        """End the run once `event` is set (e.g. the output's reader left)."""
        self._watchers.append(asyncio.create_task(self._end_when(event)))

    def counted(self, lines: int = 1) -> None:
        """`lines` more lines were printed; the run ends once `--count` is reached."""
        self.printed += lines
        if self.done:
            self.end.set()

    @property
    def done(self) -> bool:
        """`--count` lines were printed."""
        return self.remaining == 0

    @property
    def remaining(self) -> int | None:
        """Lines left to print before `--count` is reached (None: no count)."""
        if self.limits.count is None:
            return None
        return max(0, self.limits.count - self.printed)

    async def wait(self, *tasks: asyncio.Future[Any]) -> None:
        """Until the run ends or one of `tasks` finishes; a task's error is raised here."""
        ender = asyncio.ensure_future(self.end.wait())
        try:
            done, _ = await asyncio.wait({ender, *tasks}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ender.cancel()
        for task in done:
            if task is not ender and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    @property
    def exit_code(self) -> int:
        """The contract's exit code of a run that ended without an error: 130 after SIGINT, else 0."""
        return self._stop.exit_code if self._stop.event.is_set() else 0

    async def _end_when(self, event: asyncio.Event) -> None:
        await event.wait()
        self.end.set()

    async def _end_after(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
        self.end.set()
