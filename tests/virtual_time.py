"""An asyncio event loop on virtual time, for tests of timing logic (backoff, polls, staleness).

Whenever the loop has nothing ready and would wait for its next timer, the
clock jumps to that timer instead: `asyncio.sleep(30)` and a 60 s `wait`
timeout take no real time, and everything happens in the order and at the
(virtual) times it would in real time. I/O still wakes the loop as usual; with
nothing scheduled the loop waits for I/O for real.

Only for code that does no blocking work in threads while it waits (a thread's
real seconds are not virtual ones): give the code under test fakes that answer
on the loop.

    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        runner.run(scenario())
"""

from __future__ import annotations

import asyncio
import selectors
from typing import Any


class _JumpingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """Answers I/O that is ready now; when the loop would wait `timeout` s, jumps the clock."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None or self.loop is None:
            return super().select(timeout)  # nothing scheduled: only I/O can wake the loop
        self.loop.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose `time()` is virtual (see the module doc)."""

    def __init__(self) -> None:
        selector = _JumpingSelector()
        super().__init__(selector)
        selector.loop = self
        self._virtual = 0.0

    def time(self) -> float:
        return self._virtual

    def advance(self, seconds: float) -> None:
        self._virtual += max(0.0, seconds)
