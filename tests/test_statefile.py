"""The state file: round trip, atomic and locked writes, and refusing bad files."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import stat
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from strategies import ACCOUNT_ID

from alpaca_cli import statefile
from alpaca_cli.core import OtherAccount, State, apply, diff, initial_state
from alpaca_cli.domain import Account, Order, Position, Snapshot, TradeUpdate
from alpaca_cli.errors import UsageError, from_core

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
D = Decimal
# fork: the children start in milliseconds and share nothing but the file.
FORK = multiprocessing.get_context("fork")


def order(oid: str, **fields: object) -> Order:
    base = {
        "id": oid,
        "client_order_id": f"c-{oid}",
        "symbol": "AAPL",
        "side": "buy",
        "type": "limit",
        "time_in_force": "gtc",
        "status": "new",
        "submitted_at": T0,
        "qty": D("0.000000001"),
        "limit_price": D("1E+2"),
    }
    base.update(fields)
    return Order(**base)  # type: ignore[arg-type]


def fresh_state(open_orders: int = 2) -> State:
    snapshot = Snapshot(
        account=Account(id=ACCOUNT_ID, account_number="PA1", status="ACTIVE"),
        positions=(Position(symbol="SPY", qty=D("2.5"), side="short", avg_entry_price=D("401.07")),),
        open_orders=tuple(order(f"open-{i}") for i in range(open_orders)),
        taken_at=T0,
    )
    return initial_state(snapshot)


def one_more_share(tag: str) -> Callable[[State], State]:
    """A change that buys one more AAPL share through a new, filled order."""

    def change(state: State) -> State:
        filled = order(tag, qty=D(1), status="filled", filled_qty=D(1), filled_avg_price=D(10))
        return apply(state, TradeUpdate(event="fill", order=filled, timestamp=T0, qty=D(1)))

    return change


def aapl(state: State) -> Decimal:
    position = state.positions.get("AAPL")
    return position.qty if position is not None else D(0)


def temps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# --- round trip and format ---------------------------------------------------


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = one_more_share("f-1")(fresh_state())
    state = state.model_copy(update={"last_reconciled_at": T0 + timedelta(hours=1)})
    statefile.save(path, state)
    assert statefile.load(path) == state
    assert statefile.load(path, account_id=ACCOUNT_ID) == state


def test_decimals_are_plain_strings_and_times_are_utc_z(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    statefile.save(path, fresh_state())
    document = json.loads(path.read_text())
    assert document["version"] == 1
    first = document["open_orders"]["open-0"]
    assert (first["qty"], first["limit_price"]) == ("0.000000001", "100")
    assert first["submitted_at"] == "2026-03-02T14:30:00Z"
    assert document["positions"]["SPY"]["avg_entry_price"] == "401.07"
    assert document["last_reconciled_at"] == "2026-03-02T14:30:00Z"


def test_mode_is_0600_whatever_the_umask_and_the_old_mode(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    old = os.umask(0o000)
    try:
        statefile.save(path, fresh_state())
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        path.chmod(0o644)
        statefile.update(path, one_more_share("f-1"))
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_no_temp_files_left_after_writes(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    statefile.save(path, fresh_state())
    for i in range(5):
        statefile.update(path, one_more_share(f"f-{i}"))
    assert temps(tmp_path) == []
    assert {p.name for p in tmp_path.iterdir()} <= {"state.json", "state.json.lock"}


def test_an_update_that_changes_nothing_does_not_write(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    statefile.save(path, fresh_state())
    statefile.update(path, one_more_share("f-1"))
    inode = path.stat().st_ino
    statefile.update(path, one_more_share("f-1"))  # a replayed fill
    assert path.stat().st_ino == inode
    assert aapl(statefile.load(path)) == D(1)


# --- missing file -------------------------------------------------------------


def test_missing_file_is_its_own_outcome(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with pytest.raises(statefile.StateFileMissing) as caught:
        statefile.load(path)
    assert isinstance(caught.value, UsageError)
    assert str(path) in caught.value.line() and "--init" in caught.value.line()
    with pytest.raises(statefile.StateFileMissing):
        statefile.update(path, one_more_share("f-1"))
    assert not path.exists()


def test_update_creates_a_missing_file_from_the_given_state(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    created = statefile.update(path, one_more_share("f-1"), create=fresh_state)
    assert statefile.load(path) == created
    assert aapl(created) == D(1)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# --- files that cannot be trusted -----------------------------------------------


def _bad_documents() -> dict[str, bytes]:
    good = fresh_state().model_dump_json().encode()
    future = json.loads(good)
    future["version"] = 2
    negative = json.loads(good)
    negative["positions"]["SPY"]["qty"] = "-1"
    mislabeled = json.loads(good)
    mislabeled["open_orders"]["open-0"]["id"] = "open-9"
    return {
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "not json": b"positions: AAPL 10\n",
        "not an object": b"[1, 2, 3]",
        "unknown version": json.dumps(future).encode(),
        "no version": b'{"account_id": "x"}',
        "invalid field": json.dumps(negative).encode(),
        "key does not match": json.dumps(mislabeled).encode(),
        "binary": bytes(range(256)),
    }


@pytest.mark.parametrize("name", list(_bad_documents()))
def test_untrusted_file_is_an_error_and_is_never_touched(tmp_path: Path, name: str) -> None:
    path = tmp_path / "state.json"
    data = _bad_documents()[name]
    path.write_bytes(data)
    for attempt in (
        lambda: statefile.load(path),
        lambda: statefile.update(path, one_more_share("f-1")),
        lambda: statefile.update(path, one_more_share("f-1"), create=fresh_state),
    ):
        with pytest.raises(UsageError) as caught:
            attempt()
        line = caught.value.line()
        assert "\n" not in line and str(path) in line
        assert caught.value.exit_code == 2
        assert not isinstance(caught.value, statefile.StateFileMissing)
    assert path.read_bytes() == data
    assert temps(tmp_path) == []


def test_unknown_version_says_so(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(_bad_documents()["unknown version"])
    with pytest.raises(UsageError, match="version 2"):
        statefile.load(path)


def test_another_accounts_file_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    statefile.save(path, fresh_state())
    data = path.read_bytes()
    with pytest.raises(UsageError, match="belongs to account") as caught:
        statefile.load(path, account_id="someone-else")
    assert "\n" not in caught.value.line()
    with pytest.raises(UsageError, match=f"state file {path} belongs to account {ACCOUNT_ID}, not to someone-else"):
        statefile.update(path, one_more_share("f-1"), account_id="someone-else")
    with pytest.raises(UsageError, match="belongs to account"):  # a missing file's new state, too
        statefile.update(tmp_path / "new.json", one_more_share("f-1"), account_id="x", create=fresh_state)
    assert path.read_bytes() == data


def test_the_cores_errors_are_worded_once_at_the_edge() -> None:
    """The core raises `OtherAccount` (no file, no flag); `from_core` makes it the CLI's exit-2 line."""
    with pytest.raises(OtherAccount) as raised:
        diff(fresh_state(), Snapshot(Account(id="someone-else", account_number="PA9", status="ACTIVE"), (), (), T0))
    worded = from_core(raised.value)
    assert isinstance(worded, UsageError) and worded.exit_code == 2
    assert worded.line() == (
        f"the state belongs to account {ACCOUNT_ID}, not to someone-else "
        "(use the state file of this account, or another --state path)"
    )
    assert from_core(ValueError("not the core's")) is None


# --- concurrency and crashes ------------------------------------------------------


def _hammer(path: str, worker: str, count: int, go: threading.Event) -> None:
    go.wait(10)
    for i in range(count):
        statefile.update(path, one_more_share(f"{worker}-{i}"))


@pytest.mark.timeout(60)
def test_concurrent_writer_processes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    statefile.save(path, fresh_state())
    count = 100
    go = FORK.Event()
    workers = [FORK.Process(target=_hammer, args=(str(path), name, count, go)) for name in ("a", "b")]
    for worker in workers:
        worker.start()
    go.set()
    for worker in workers:
        worker.join(50)
        assert worker.exitcode == 0
    final = statefile.load(path)
    assert aapl(final) == 2 * count
    assert len(final.closed_orders) == 2 * count
    assert temps(tmp_path) == []


@pytest.mark.timeout(60)
def test_concurrent_writer_threads_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    statefile.save(path, fresh_state())
    go = threading.Event()
    threads = [threading.Thread(target=_hammer, args=(str(path), name, 30, go)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    go.set()
    for thread in threads:
        thread.join(50)
    assert aapl(statefile.load(path)) == 60


def test_nested_locking_in_one_process_does_not_deadlock(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    statefile.save(path, fresh_state())
    with statefile.locked(path):
        state = statefile.load(path)
        statefile.save(path, one_more_share("f-1")(state))
        statefile.update(path, one_more_share("f-2"))
    assert aapl(statefile.load(path)) == D(2)


def _write_forever(path: str, started: threading.Event) -> None:
    tag = 0
    while True:
        statefile.update(path, one_more_share(f"{os.getpid()}-{tag}"))
        started.set()
        tag += 1


@pytest.mark.timeout(120)
def test_sigkill_during_writes_leaves_an_old_or_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    statefile.save(path, fresh_state(open_orders=2000))  # about 0.8 MB per write
    rng = random.Random(4)
    seen = D(0)
    interrupted = 0
    for attempt in range(30):
        started = FORK.Event()
        writer = FORK.Process(target=_write_forever, args=(str(path), started))
        writer.start()
        assert started.wait(20)
        if attempt % 2:
            # Half the kills aim at a write under way: wait for its temp file to appear.
            deadline = time.monotonic() + 5
            while not temps(tmp_path) and time.monotonic() < deadline:
                pass
        else:
            threading.Event().wait(rng.uniform(0, 0.03))
        assert writer.pid is not None
        os.kill(writer.pid, signal.SIGKILL)
        writer.join(10)
        interrupted += bool(temps(tmp_path))
        state = statefile.load(path)  # raises if the file were broken
        assert len(state.open_orders) == 2000
        assert aapl(state) >= seen  # never older than a write seen before
        seen = aapl(state)
    assert seen >= 30
    assert interrupted > 0  # some kills did land in the middle of a write
    statefile.update(path, one_more_share("after"))
    assert temps(tmp_path) == []  # the next locked writer sweeps what kills left
