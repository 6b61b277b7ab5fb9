"""The exactly-once memory: which events are news, and so get printed.

One memory for every path that prints trade updates (`tail`'s supervisor,
`submit --wait`'s follower): a `State`, moved only by `core.apply`, plus the
keys a state does not keep. An event is news (`is_new`) when it tells the
state something it does not know yet:

- a fill (`fill`, `partial_fill`) when the order's cumulative fill grew past
  what the state knows: the quantity part of its `identity.event_id`, and
  only ever growing, so a replay or a stale fill is never news;
- a closing event when the order is not closed yet (it closes once);
- an opening event (`pending_new`, `accepted`, `new`) when the order is
  unknown or it moves the order forward;
- any other event (`pending_cancel`, `order_cancel_rejected`, a new name)
  when its `identity.event_id` was not seen (bounded memory);
- never an event whose execution id was seen.

A fill that jumps over a lost one brings the missing part first
(`core.recover.missed_part`), so the printed fill quantities of an order
always add up to its cumulative fill.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence

from alpaca_cli.core.apply import CLOSE_EVENTS, Transition
from alpaca_cli.core.diff import adopt
from alpaca_cli.core.identity import OPENING_EVENTS, event_id
from alpaca_cli.core.recover import missed_part
from alpaca_cli.core.state import OrderBook, State, known_fill
from alpaca_cli.domain import FILL_EVENTS, Snapshot, TradeUpdate

STATUS_MEMORY = 10_000  # status-only event ids remembered
_OPENING_RANK = {name: rank for rank, name in enumerate(OPENING_EVENTS)}


def is_new(
    state: OrderBook,
    event: TradeUpdate,
    executions: Iterable[str] | set[str] = (),
    statuses: set[str] | frozenset[str] = frozenset(),
) -> bool:
    """Whether `event` tells `state` something it does not know yet (module doc)."""
    if event.execution_id is not None and event.execution_id in executions:
        return False
    known, _, is_open, is_closed = known_fill(state, event.order.id)
    name = event.event
    if name in FILL_EVENTS:
        return event.order.filled_qty > known
    if name in CLOSE_EVENTS:
        return not is_closed
    if name in _OPENING_RANK:
        if is_closed:
            return False
        if not is_open:
            return True
        # `pending_new` -> `accepted` -> `new`: each step forward is news, a replay is not.
        known_status = state.open_orders[event.order.id].status
        return known_status in _OPENING_RANK and _OPENING_RANK[name] > _OPENING_RANK[known_status]
    return event_id(event) not in statuses


class Ledger:
    """What this process has seen: a `State` plus the keys that make printing exactly-once.

    `admit(event)` returns the events to print for it (none for a duplicate;
    a recovered missed part before a fill that jumps) and applies everything
    to the state through `core.apply`, the one transition for every event.
    The state is kept as one long `Transition` (copy-on-write): a live event
    costs the same with 5,000 closed orders remembered as with none, and
    `state` is a `State` value again whenever it is read.
    """

    def __init__(self, state: State) -> None:
        self._work = Transition(state)
        self._executions = set(state.execution_ids)
        self._statuses: set[str] = set()
        self._status_order: deque[str] = deque()

    @property
    def state(self) -> State:
        return self._work.result()

    def admit(
        self, event: TradeUpdate, emit: Callable[[TradeUpdate], None] | None = None
    ) -> tuple[list[TradeUpdate], list[TradeUpdate]]:
        """(events to print, events applied) for one incoming event.

        `emit` is called with each event to print *before* the state moves:
        the fill reaches its reader without waiting for the bookkeeping.
        """
        return self.admit_all((event,), emit)

    def admit_all(
        self, events: Iterable[TradeUpdate], emit: Callable[[TradeUpdate], None] | None = None
    ) -> tuple[list[TradeUpdate], list[TradeUpdate]]:
        """`admit` each event in turn: `emit` what it brings to print (a missed part, then the
        event), then apply that. An exception from `emit` stops there: the events admitted
        before stay applied; the one under way (its missed part too, even if emitted) and the
        rest are not."""
        work = self._work
        printed: list[TradeUpdate] = []
        applied: list[TradeUpdate] = []
        for event in events:
            if not is_new(work, event, self._executions, self._statuses):
                if event.event in CLOSE_EVENTS:  # a fill that adds nothing may still close the order
                    work.apply(event)
                    applied.append(event)
                continue  # else a replay; applying it could only take an order's status back
            gap = missed_part(work, event)
            admitted = [gap, event] if gap is not None else [event]
            if emit is not None:
                for item in admitted:
                    emit(item)
            for item in admitted:
                work.apply(item)
            printed += admitted
            applied += admitted
            self._remember(event, work.execution_ids)
        return printed, applied

    def _remember(self, event: TradeUpdate, kept: Sequence[str]) -> None:
        """The keys a state does not keep: execution ids (bounded by `kept`, the state's own
        list) and status-only event ids (the last `STATUS_MEMORY`)."""
        if event.execution_id is not None:
            self._executions.add(event.execution_id)
            if len(self._executions) > 4 * len(kept) + 1000:
                self._executions = set(kept)
        if event.event not in FILL_EVENTS and event.event not in CLOSE_EVENTS and event.event not in _OPENING_RANK:
            key = event_id(event)
            self._statuses.add(key)
            self._status_order.append(key)
            if len(self._status_order) > STATUS_MEMORY:
                self._statuses.discard(self._status_order.popleft())

    def adopt(self, snapshot: Snapshot) -> None:
        """Take broker truth for what no event explains (see `core.diff.adopt`)."""
        self._work = Transition(adopt(self.state, snapshot, snapshot.taken_at))
