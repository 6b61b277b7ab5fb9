"""Gap-free bars: which bars to print, and what to fetch from history after a gap of the stream.

`stream bars` treats the market-data stream as latency and the historical
bars API as truth, as `tail` does with trade updates. `BarGaps` holds, per
symbol, the time of the last bar printed; every bar, live or fetched, is
printed only if it is newer, so each (symbol, minute) is printed at most once
and in order. "At least once" comes from the backfill:

- After every reconnection (not the first connection) the first live bar of
  any symbol is the *anchor*: the stream delivers every bar from the anchor's
  minute on, so the bars between each symbol's last printed one and the anchor
  are fetched -- one request for all the symbols, however many, from the
  oldest of their last bars. Live bars that arrive meanwhile are held, and
  printed merged with the fetched ones, in time order.
- `--since T` starts with a fetch from T up to the last whole minute (so that
  no bar still being formed is printed), followed by the same anchored fetch
  as after a reconnection, which closes whatever is left before the stream.
- A correction (`updated`) of a bar already printed is printed as such; one of
  a bar not printed yet is dropped, since the fetch brings the corrected bar.

Pure: the command does the fetching and the printing, and tells this module
what happened (`connected`, `live`, `fetched`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from alpaca_cli.domain import Bar

LIVE = "stream"
BACKFILL = "backfill"
_JUST_BEFORE = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Fetch:
    """A historical request to make: every bar of `symbols` with start <= t <= end."""

    symbols: tuple[str, ...]
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Step:
    """What to do after an event: print these (bar, source) pairs in order, then make `fetch` if any."""

    lines: tuple[tuple[Bar, str], ...] = ()
    fetch: Fetch | None = None


@dataclass(slots=True)
class BarGaps:
    """The per-symbol ledger of printed bars, and the backfill it asks for."""

    symbols: tuple[str, ...]
    since: datetime | None = None
    last: dict[str, datetime] = field(default_factory=dict)
    _first: dict[str, datetime] = field(default_factory=dict)  # the first bar printed, per symbol
    backfilled: int = 0  # bars printed from history
    fetches: int = 0  # fetches asked for (each one paged request, for all symbols)
    _origin: datetime | None = None  # where the history starts for a symbol not printed yet
    _connections: int = 0
    _awaiting: bool = False  # a gap is open: the next live bar anchors its fetch
    _flight: Fetch | None = None
    _flight_round: int = 0
    _held: list[tuple[Bar, int]] = field(default_factory=list)  # live bars held during a fetch, with their round
    _round: int = 0  # counts gaps; a bar held after a newer gap opened waits for that gap's fetch
    _order: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._order = {symbol: i for i, symbol in enumerate(self.symbols)}
        self._origin = self.since

    # -- events ------------------------------------------------------------------------

    def connected(self, at: datetime) -> Step:
        """The stream (re)connected at `at` (the subscription is acknowledged)."""
        self._connections += 1
        if self._connections > 1:
            self._open_gap()
            return Step()
        if self._origin is None:  # history before the first connection is not ours to print...
            self._origin = at.replace(second=0, microsecond=0)  # ...but the minute in progress is
            return Step()
        settled = at.replace(second=0, microsecond=0) - _JUST_BEFORE  # whole minutes only
        fetch = None
        if settled >= self._origin:
            self._open_gap()
            fetch = self._ask(settled)
        self._open_gap()  # what is left up to the stream: anchored on its first bar
        return Step(fetch=fetch)

    def lost(self) -> Step:
        """Live bars were lost without a reconnection (the queue overflowed): a gap like a reconnection's."""
        self._open_gap()
        return Step()

    def live(self, bar: Bar) -> Step:
        """A bar from the stream."""
        if bar.updated:  # printed: between the first and the last bar printed of its symbol
            first, last = self._first.get(bar.symbol), self.last.get(bar.symbol)
            printed = first is not None and last is not None and first <= bar.timestamp <= last
            return Step(((bar, LIVE),)) if printed else Step()
        if self._flight is not None or self._awaiting:
            self._held.append((bar, self._round))
            if self._flight is None:
                return Step(fetch=self._ask(bar.timestamp - _JUST_BEFORE))
            return Step()
        return Step(tuple(self._newer([(bar, LIVE)])))

    def fetched(self, bars: Iterable[Bar]) -> Step:
        """The answer to the fetch in flight (empty when it failed: the gap then stays a hole)."""
        flight = self._flight
        if flight is None:
            return Step()
        self._flight = None
        wanted = set(flight.symbols)
        found = [(b, BACKFILL) for b in bars if b.symbol in wanted and flight.start <= b.timestamp <= flight.end]
        ready = [(b, LIVE) for b, r in self._held if r <= self._flight_round]
        self._held = [(b, r) for b, r in self._held if r > self._flight_round]
        lines = self._newer(sorted([*found, *ready], key=self._key))
        self.backfilled += sum(1 for _, source in lines if source == BACKFILL)
        fetch = None
        anchors = [b for b, r in self._held if r == self._round]
        if anchors:  # a newer gap opened during the fetch, and its anchor is here (held bars of a gap
            fetch = self._ask(anchors[0].timestamp - _JUST_BEFORE)  # in between wait for the next one)
        return Step(tuple(lines), fetch)

    # -- inside ------------------------------------------------------------------------

    def _open_gap(self) -> None:
        self._awaiting = True
        self._round += 1

    def _ask(self, end: datetime) -> Fetch:
        """A fetch for every symbol, from the oldest last-printed bar (or the origin) to `end`."""
        starts = [self.last.get(symbol, self._origin) for symbol in self.symbols]
        known = [start for start in starts if start is not None]
        start = min(known) if known else end
        self._flight = Fetch(self.symbols, start, end)
        self._flight_round = self._round
        self._awaiting = False
        self.fetches += 1
        return self._flight

    def _key(self, item: tuple[Bar, str]) -> tuple[datetime, int, int]:
        bar, source = item
        return bar.timestamp, self._order.get(bar.symbol, len(self._order)), 0 if source == LIVE else 1

    def _newer(self, items: Iterable[tuple[Bar, str]]) -> list[tuple[Bar, str]]:
        """The items whose bar is newer than the last printed of its symbol (the ledger moves on)."""
        out = []
        for bar, source in items:
            printed = self.last.get(bar.symbol)
            if printed is not None and bar.timestamp <= printed:
                continue
            self._first.setdefault(bar.symbol, bar.timestamp)
            self.last[bar.symbol] = bar.timestamp
            out.append((bar, source))
        return out
