"""`core.bars.BarGaps`: whatever the stream loses, every (symbol, minute) is printed once, in order.

A simulated market emits one bar per symbol and minute (some minutes have none:
nothing traded); the simulated stream delivers them only while connected, and
the historical API answers a fetch with the closed bars in its range, possibly
after more minutes went by. Hypothesis draws the schedule of drops,
reconnections, answers and corrections.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from alpaca_cli.core.bars import BACKFILL, LIVE, BarGaps, Fetch, Step
from alpaca_cli.domain import Bar

BASE = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
SYMBOLS = ("AAPL", "MSFT", "SPY")
BEFORE = 5  # minutes of history before the first connection


def minute(m: int) -> datetime:
    return BASE + timedelta(minutes=m)


def bar(symbol: str, m: int, close: float = 100.0) -> Bar:
    return Bar(symbol, minute(m), close, close, close, close, 100.0)


@dataclass
class Market:
    """The true series, what the stream delivered, and what was printed."""

    gaps: BarGaps
    traded: set[tuple[str, int]]  # (symbol, minute) that have a bar
    emitted: int = 0  # minutes < emitted are closed (in history)
    connected: bool = True
    overflowing: bool = False  # the reader's queue is full: live bars are dropped
    lost: bool = False  # bars were dropped; the reader meets the mark before the next bar
    pending: list[Fetch] = field(default_factory=list)
    delivered: set[tuple[str, int]] = field(default_factory=set)
    printed: list[tuple[str, int, str, bool]] = field(default_factory=list)  # symbol, minute, source, updated

    def take(self, step: Step) -> None:
        for item, source in step.lines:
            m = round((item.timestamp - BASE).total_seconds() / 60)
            self.printed.append((item.symbol, m, source, item.updated))
        if step.fetch is not None:
            assert not self.pending, "a second fetch while one is in flight"
            self.pending.append(step.fetch)

    def tick(self) -> None:
        for symbol in self.gaps.symbols:
            if (symbol, self.emitted) in self.traded and self.connected:
                if self.overflowing:
                    self.lost = True
                    continue
                if self.lost:
                    self.lost = False
                    self.take(self.gaps.lost())
                self.delivered.add((symbol, self.emitted))
                self.take(self.gaps.live(bar(symbol, self.emitted)))
        self.emitted += 1

    def overflow(self) -> None:
        self.overflowing = not self.overflowing

    def drop(self) -> None:
        self.connected = False

    def connect(self) -> None:
        if not self.connected:
            self.connected = True
            self.take(self.gaps.connected(minute(self.emitted) + timedelta(seconds=1)))

    def answer(self, fail: bool = False) -> None:
        if not self.pending:
            return
        fetch = self.pending.pop()
        found = [
            bar(symbol, m)
            for (symbol, m) in sorted(self.traded, key=lambda key: (key[0], key[1]))
            if symbol in fetch.symbols and m < self.emitted and fetch.start <= minute(m) <= fetch.end
        ]
        self.take(self.gaps.fetched([] if fail else found))

    def correct(self, symbol: str, back: int) -> None:
        m = self.emitted - 1 - back
        if (symbol, m) in self.traded and self.connected:
            self.take(self.gaps.live(replace(bar(symbol, m, 101.0), updated=True)))

    def settle(self) -> None:
        """Reconnect, and let whole minutes (every symbol trading) pass until no fetch is left."""
        self.connect()
        self.overflowing = False
        for _ in range(4):
            for symbol in self.gaps.symbols:
                self.traded.add((symbol, self.emitted))
            self.tick()
            while self.pending:
                self.answer()


ACTIONS = st.lists(
    st.one_of(
        st.just(("tick",)),
        st.just(("tick",)),
        st.just(("tick",)),
        st.just(("drop",)),
        st.just(("connect",)),
        st.just(("answer",)),
        st.just(("overflow",)),
        st.tuples(st.just("correct"), st.sampled_from(SYMBOLS), st.integers(0, 3)),
    ),
    max_size=60,
)


@st.composite
def markets(draw: st.DrawFn) -> tuple[Market, int]:
    symbols = tuple(draw(st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=3, unique=True)))
    minutes = 80
    traded = {
        (symbol, m)
        for symbol in symbols
        for m in range(-BEFORE, minutes)
        if draw(st.booleans()) or m % 7 == 0  # gaps where nothing traded, but not only gaps
    }
    since = draw(st.one_of(st.none(), st.integers(-BEFORE, 0)))
    gaps = BarGaps(symbols, since=None if since is None else minute(since))
    market = Market(gaps, traded)
    market.take(gaps.connected(minute(0) + timedelta(seconds=30)))
    return market, 0 if since is None else since


def play(market: Market, actions: list[tuple[object, ...]]) -> None:
    for action in actions:
        if action[0] == "correct":
            market.correct(str(action[1]), int(action[2]))  # type: ignore[call-overload]
        else:
            getattr(market, str(action[0]))()


@given(markets(), ACTIONS)
def test_every_minute_once_in_order_the_missed_ones_backfilled(drawn: tuple[Market, int], actions: list) -> None:
    market, origin = drawn
    play(market, actions)
    market.settle()
    bars = [(s, m, source) for s, m, source, updated in market.printed if not updated]
    for symbol in market.gaps.symbols:
        printed = [m for s, m, _ in bars if s == symbol]
        assert printed == sorted(set(printed)), f"{symbol}: out of order or twice: {printed}"
        expected = sorted(m for s, m in market.traded if s == symbol and origin <= m < market.emitted)
        assert printed == expected, f"{symbol}: missing {sorted(set(expected) - set(printed))}"
    for symbol, m, source in bars:
        assert source == (LIVE if (symbol, m) in market.delivered else BACKFILL), (symbol, m, source)
    assert market.gaps.backfilled == sum(1 for *_, source in bars if source == BACKFILL)


@given(markets(), ACTIONS)
def test_a_correction_is_printed_only_for_a_bar_already_printed(drawn: tuple[Market, int], actions: list) -> None:
    market, _ = drawn
    play(market, actions)
    seen: set[tuple[str, int]] = set()
    for symbol, m, source, updated in market.printed:
        if updated:
            assert (symbol, m) in seen and source == LIVE
        else:
            seen.add((symbol, m))


@given(markets(), ACTIONS, st.integers(0, 59))
def test_a_failed_fetch_leaves_a_hole_but_never_a_repeat_or_disorder(
    drawn: tuple[Market, int], actions: list, when: int
) -> None:
    market, _ = drawn
    for i, action in enumerate(actions):
        if action == ("answer",):
            market.answer(fail=i >= when)
        else:
            play(market, [action])
    market.settle()
    for symbol in market.gaps.symbols:
        printed = [m for s, m, _, updated in market.printed if s == symbol and not updated]
        assert printed == sorted(set(printed))


def test_one_fetch_covers_all_symbols_from_the_oldest_last_bar() -> None:
    gaps = BarGaps(("AAPL", "MSFT"))
    gaps.connected(minute(0))
    gaps.live(bar("AAPL", 0))
    gaps.live(bar("MSFT", 0))
    gaps.live(bar("AAPL", 1))
    assert gaps.connected(minute(5)) == Step()  # the gap opens; its end is not known yet
    step = gaps.live(bar("MSFT", 6))
    assert step.lines == ()  # held until the gap is filled
    assert step.fetch == Fetch(("AAPL", "MSFT"), minute(0), minute(6) - timedelta(microseconds=1))
    step = gaps.fetched([bar("AAPL", 1), bar("AAPL", 3), bar("MSFT", 2), bar("MSFT", 5)])
    assert [(b.symbol, b.timestamp.minute, source) for b, source in step.lines] == [
        ("MSFT", 2, BACKFILL),
        ("AAPL", 3, BACKFILL),
        ("MSFT", 5, BACKFILL),
        ("MSFT", 6, LIVE),
    ]
    assert (gaps.fetches, gaps.backfilled) == (1, 3)


def test_since_fetches_whole_minutes_at_once_then_up_to_the_stream() -> None:
    gaps = BarGaps(("AAPL",), since=minute(-3))
    step = gaps.connected(minute(0) + timedelta(seconds=20))
    assert step.fetch == Fetch(("AAPL",), minute(-3), minute(0) - timedelta(microseconds=1))
    assert [b.timestamp for b, _ in gaps.fetched([bar("AAPL", -3), bar("AAPL", -1)]).lines] == [minute(-3), minute(-1)]
    step = gaps.live(bar("AAPL", 1))
    assert step.fetch == Fetch(("AAPL",), minute(-1), minute(1) - timedelta(microseconds=1))
    lines = gaps.fetched([bar("AAPL", -1), bar("AAPL", 0)]).lines
    assert [(b.timestamp, source) for b, source in lines] == [(minute(0), BACKFILL), (minute(1), LIVE)]
