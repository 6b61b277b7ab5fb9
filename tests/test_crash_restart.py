"""Exactly once across restarts: `tail --state` SIGKILLed again and again while orders fill.

Each round starts the real entry point on the same state file, lets it print
(or not), and kills it with SIGKILL -- right after a line comes out of the
pipe, or at a random moment -- while another thread keeps placing orders that
fill in parts. At the end one last run catches up. Judged by `id`, the way a
reader would: nothing the broker filled is missing, every repeated id is the
identical line, repeats only open a run (the outbox of the killed one), and
each order's fills, counted once per id, add up to the broker's fill.

`CRASH_KILLS` (default 16) sets the number of kills; the README's repeat
figure comes from a run with more.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest, MarketOrderRequest
from helpers import cli_env, run_cli, spawn_cli

KILLS = int(os.environ.get("CRASH_KILLS", "16"))
pytestmark = pytest.mark.timeout(60 + 8 * KILLS)
SYMBOL = "XOM"


class Run:
    """One `tail --state` process; its stdout lines as they come (a thread reads the pipe)."""

    def __init__(self, env: dict[str, str], state: Path, *extra: str) -> None:
        self.process = spawn_cli(
            "tail", "trade-updates", "--sandbox", "-o", "json", "--state", str(state), *extra, env=env
        )
        self.lines: list[str] = []
        self.errors: list[str] = []
        self.changed = threading.Condition()
        self.readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.errors), daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    def _read(self, stream: Any, into: list[str]) -> None:
        for line in stream:
            with self.changed:
                into.append(line)
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def wait(self, check: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not check(self):
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    return bool(check(self))
                self.changed.wait(min(left, 0.1))
        return True

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        for reader in self.readers:
            reader.join(10)

    def updates(self) -> list[str]:
        """The trade-update lines, raw (a repeat must be the identical line)."""
        return [line for line in self.lines if json.loads(line)["type"] == "trade_update"]


@pytest.fixture
def unlimited(sandbox: Any) -> Iterator[None]:
    """No request rate limit: the test places orders faster than 200 a minute, on purpose."""
    before = sandbox.admin("GET", "/admin/rate-limit")["rate_limit"]
    sandbox.admin("POST", "/admin/rate-limit", {"rate_limit": 0})
    try:
        yield
    finally:
        sandbox.admin("POST", "/admin/rate-limit", {"rate_limit": before})


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        if run.process.poll() is None:
            run.kill()


def _new(lines: list[str], known: set[str]) -> int:
    return sum(json.loads(line)["id"] not in known for line in lines)


def _no_trading_stream(sandbox: Any) -> None:
    """The sandbox has let go of the killed run's socket (an account has one stream)."""
    deadline = time.monotonic() + 10
    while sandbox.admin("GET", "/admin/streams")["trading"]:
        assert time.monotonic() < deadline, "the killed tail's stream was never closed"
        time.sleep(0.02)


@pytest.mark.usefixtures("unlimited")
def test_sigkill_at_any_moment_loses_nothing_and_repeats_only_the_last_batch_identically(
    sandbox: Any, tmp_path: Path, runs: list[Run]
) -> None:
    sandbox.reset(cash="100000000")  # buying power for every order, however many kills
    sandbox.set_price(SYMBOL, 3)
    env = cli_env(tmp_path, sandbox.url)
    state = tmp_path / "state.json"
    client = TradingClient(sandbox.key_id, sandbox.secret_key, paper=True, url_override=sandbox.url)
    rng = random.Random(20261130)
    placed: list[str] = []
    stop_orders = threading.Event()

    def place() -> None:  # orders of 150-450 shares fill 100 a tick: partial fills all along
        while not stop_orders.wait(rng.uniform(0.05, 0.25)):
            request = MarketOrderRequest(
                symbol=SYMBOL, qty=rng.choice((150, 250, 450)), side="buy", time_in_force="day"
            )
            placed.append(str(client.submit_order(request).id))

    # The file exists before any order: a missing one is created from a snapshot, as history.
    assert run_cli("reconcile", "--init", "--state", str(state), "--sandbox", env=env).returncode == 0
    placer = threading.Thread(target=place, daemon=True)
    placer.start()
    repeats: list[int] = []
    outputs: list[list[str]] = []
    try:
        for kill in range(KILLS):
            run = Run(env, state)
            runs.append(run)
            if kill % 2 == 0:  # right after it printed something new of its own
                known = {json.loads(line)["id"] for output in outputs for line in output}
                want = rng.randint(1, 3)
                run.wait(lambda r, want=want, known=known: _new(r.updates(), known) >= want, timeout=20)
            else:  # at a random moment: starting, reconciling, saving or printing
                time.sleep(rng.uniform(0.0, 2.5))
            assert run.process.poll() is None, "".join(run.errors)
            run.kill()
            outputs.append(run.updates())
            _no_trading_stream(sandbox)
    finally:
        stop_orders.set()
        placer.join(10)
    deadline = time.monotonic() + 20
    while True:
        orders = {
            str(o.id): o
            for o in client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500, symbols=[SYMBOL]))
        }
        if all(orders[oid].status.value == "filled" for oid in placed):
            break
        assert time.monotonic() < deadline, "the sandbox's orders did not all fill"
        time.sleep(0.2)
    last = Run(env, state)
    runs.append(last)
    assert last.wait(lambda r: "stream connected" in "".join(r.errors), timeout=30)
    last.process.send_signal(signal.SIGTERM)
    assert last.process.wait(15) == 0, "".join(last.errors)
    for reader in last.readers:
        reader.join(10)
    outputs.append(last.updates())
    assert "outbox" not in json.loads(state.read_text())  # a clean stop leaves nothing to repeat

    by_id: dict[str, str] = {}
    for number, output in enumerate(outputs):
        repeated = [line for line in output if json.loads(line)["id"] in by_id]
        if number:
            repeats.append(len(repeated))
        # Repeats open a run (the killed run's outbox, printed first), nothing later.
        assert output[: len(repeated)] == repeated, f"run {number}: a repeat after new lines"
        for line in output:
            event_id = json.loads(line)["id"]
            assert by_id.setdefault(event_id, line) == line, f"id {event_id} names two different lines"
    filled: dict[str, Decimal] = {}
    for line in by_id.values():
        record = json.loads(line)
        if record["event"] in ("fill", "partial_fill"):
            filled[record["order_id"]] = filled.get(record["order_id"], Decimal(0)) + Decimal(str(record["qty"]))
    wrong = {
        oid: (filled.get(oid), orders[oid].filled_qty)
        for oid in placed
        if filled.get(oid, Decimal(0)) != Decimal(str(orders[oid].filled_qty))
    }
    assert not wrong, f"fills lost or double-counted by id (printed, broker): {dict(list(wrong.items())[:5])}"
    assert len(placed) > 10 and sum(len(o) for o in outputs) > len(placed)
    after_print, at_random = repeats[0::2], repeats[1::2]  # kills alternate between the two kinds
    figure = (
        f"{KILLS} kills: repeats per restart mean {statistics.mean(repeats):.2f}, max {max(repeats)}; "
        f"killed right after printing: mean {statistics.mean(after_print):.2f}, max {max(after_print)}; "
        f"at a random moment: mean {statistics.mean(at_random):.2f}, max {max(at_random)}"
    )
    print(figure)
    if os.environ.get("CRASH_FIGURE"):
        Path(os.environ["CRASH_FIGURE"]).write_text(f"{figure}\n{json.dumps(repeats)}\n")


def test_a_kill_after_a_quiet_second_repeats_nothing(sandbox: Any, tmp_path: Path, runs: list[Run]) -> None:
    sandbox.set_price(SYMBOL, 3)
    env = cli_env(tmp_path, sandbox.url)
    state = tmp_path / "quiet.json"
    assert run_cli("reconcile", "--init", "--state", str(state), "--sandbox", env=env).returncode == 0
    client = TradingClient(sandbox.key_id, sandbox.secret_key, paper=True, url_override=sandbox.url)
    first = Run(env, state)
    runs.append(first)
    assert first.wait(lambda r: "stream connected" in "".join(r.errors), timeout=30)
    order = client.submit_order(MarketOrderRequest(symbol=SYMBOL, qty=250, side="buy", time_in_force="day"))
    assert first.wait(lambda r: any(json.loads(u)["event"] == "fill" for u in r.updates()), timeout=20)
    deadline = time.monotonic() + 10  # the outbox is emptied after a quiet second
    while "outbox" in json.loads(state.read_text()):
        assert time.monotonic() < deadline, "the printed outbox was never emptied"
        time.sleep(0.05)
    first.kill()
    _no_trading_stream(sandbox)
    second = Run(env, state)
    runs.append(second)
    assert second.wait(lambda r: "stream connected" in "".join(r.errors), timeout=30)
    second.process.send_signal(signal.SIGTERM)
    assert second.process.wait(15) == 0
    for reader in second.readers:
        reader.join(10)
    assert [json.loads(u)["order_id"] for u in first.updates()].count(str(order.id)) >= 3
    assert second.updates() == []


@pytest.mark.usefixtures("unlimited")
def test_a_reader_that_falls_behind_loses_nothing_across_a_kill(sandbox: Any, tmp_path: Path, runs: list[Run]) -> None:
    """Lines waiting in tail's own buffer for a slow reader are not "printed" yet: the outbox
    that holds them is not replaced until they are out, so a kill then loses none of them."""
    sandbox.set_price(SYMBOL, 3)
    env = cli_env(tmp_path, sandbox.url)
    state = tmp_path / "slow.json"
    assert run_cli("reconcile", "--init", "--state", str(state), "--sandbox", env=env).returncode == 0
    client = TradingClient(sandbox.key_id, sandbox.secret_key, paper=True, url_override=sandbox.url)
    first = spawn_cli("tail", "trade-updates", "--sandbox", "-o", "json", "--state", str(state), env=env)
    errors: list[str] = []
    threading.Thread(target=lambda: errors.extend(first.stderr), daemon=True).start()  # type: ignore[arg-type]
    deadline = time.monotonic() + 30
    while not any("stream connected" in line for line in errors):
        assert time.monotonic() < deadline and first.poll() is None, errors
        time.sleep(0.05)
    ids = [
        str(client.submit_order(MarketOrderRequest(symbol=SYMBOL, qty=50, side="buy", time_in_force="day")).id)
        for _ in range(150)
    ]  # ~300 lines of ~700 bytes: far more than the pipe holds while nobody reads it
    deadline = time.monotonic() + 30
    while not all(
        o.status == "filled"
        for o in client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500))
        if str(o.id) in ids
    ):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(1.5)  # tail has taken in what it can; much of it is stuck behind the full pipe
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    printed = [line for line in first.stdout.read().splitlines() if json.loads(line)["type"] == "trade_update"]  # type: ignore[union-attr]
    _no_trading_stream(sandbox)
    second = Run(env, state)
    runs.append(second)
    assert second.wait(lambda r: "stream connected" in "".join(r.errors), timeout=30)
    second.process.send_signal(signal.SIGTERM)
    assert second.process.wait(15) == 0
    for reader in second.readers:
        reader.join(10)
    seen = {json.loads(line)["id"] for line in printed + second.updates()}
    filled = {f"{oid}:fill:50" for oid in ids}
    assert filled <= seen, f"{len(filled - seen)} fills never printed"
