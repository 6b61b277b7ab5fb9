"""`alpaca-cli tail trade-updates` end to end: the real entry point, the real SDK, the sandbox's faults.

Each test runs the CLI as a subprocess against the module's sandbox (one
trading connection per account, so tails never overlap) and judges it by
what an operator sees: every fill printed exactly once, live or recovered,
and a state file that equals the broker.
"""

from __future__ import annotations

import json
import queue
import random
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest, LimitOrderRequest, MarketOrderRequest
from helpers import cli_env, health_record, run_cli, spawn_cli

from alpaca_cli import statefile

pytestmark = pytest.mark.timeout(90)

SYMBOLS = ("DXCM", "CSX", "FAST")


class Tail:
    """A running `tail trade-updates`, its stdout JSON lines and stderr lines collected as they come."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.process = spawn_cli("tail", "trade-updates", "--sandbox", "-o", "json", *args, env=env)
        self.lines: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: Any, is_json: bool) -> None:
        for line in stream:
            with self._changed:
                if is_json:
                    self.lines.append(json.loads(line))
                else:
                    self.errors.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, check: Callable[[Tail], Any], timeout: float = 20.0, what: str = "condition") -> Any:
        """Block until `check(self)` is truthy (re-checked on every new line); fail after `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                value = check(self)
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{what} not seen within {timeout}s; stderr: {self.errors[-10:]}")
                self._changed.wait(min(left, 0.2))

    def stderr_has(self, text: str, times: int = 1) -> bool:
        return sum(text in line for line in self.errors) >= times

    def updates(self) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["type"] == "trade_update"]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> tuple[int, float]:
        started = time.monotonic()
        self.process.send_signal(sig)
        code = self.process.wait(timeout)
        elapsed = time.monotonic() - started
        for reader in self._readers:
            reader.join(5)
        return code, elapsed

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


@pytest.fixture
def unlimited(sandbox: Any) -> Iterator[None]:
    """No request rate limit, for the tests whose own client floods orders (240 in ten seconds):
    it shares the account's 200 a minute with tail, and on the real broker such a flood is
    impossible anyway. They are about exactly-once under stream faults; tail's own pacing under
    the limit is exercised by the other tests here, which keep it."""
    before = sandbox.admin("GET", "/admin/rate-limit")["rate_limit"]
    sandbox.admin("POST", "/admin/rate-limit", {"rate_limit": 0})
    try:
        yield
    finally:
        sandbox.admin("POST", "/admin/rate-limit", {"rate_limit": before})


@pytest.fixture
def env(sandbox: Any, tmp_path: Path) -> dict[str, str]:
    return cli_env(tmp_path, sandbox.url)


@pytest.fixture
def tails() -> Iterator[list[Tail]]:
    """Every tail a test starts is gone when it ends (the account allows one stream)."""
    started: list[Tail] = []
    yield started
    for tail in started:
        tail.kill()


@pytest.fixture
def client(sandbox: Any) -> TradingClient:
    return TradingClient(sandbox.key_id, sandbox.secret_key, paper=True, url_override=sandbox.url)


def _start(tails: list[Tail], env: dict[str, str], *args: str) -> Tail:
    tail = Tail(env, *args)
    tails.append(tail)
    tail.wait_for(lambda t: t.stderr_has("stream connected"), timeout=30, what="connected")
    return tail


def _market(client: TradingClient, symbol: str, qty: int, side: str = "buy") -> str:
    order = client.submit_order(MarketOrderRequest(symbol=symbol, qty=qty, side=side, time_in_force="day"))
    return str(order.id)


def _broker_orders(client: TradingClient) -> dict[str, Any]:
    found = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500))
    return {str(o.id): o for o in found}


def _printed_fills(lines: list[dict[str, Any]]) -> dict[str, Decimal]:
    total: dict[str, Decimal] = defaultdict(Decimal)
    for line in lines:
        if line["type"] == "trade_update" and line["event"] in ("fill", "partial_fill"):
            total[line["order_id"]] += Decimal(str(line["qty"]))
    return total


def _assert_exactly_once(lines: list[dict[str, Any]], orders: dict[str, Any], ids: list[str]) -> None:
    fills = [line for line in lines if line["type"] == "trade_update" and line["event"] in ("fill", "partial_fill")]
    twice = [k for k, n in Counter((f["order_id"], str(f["filled_qty"])) for f in fills).items() if n > 1]
    assert not twice, f"fills printed twice: {twice[:5]}"
    printed = _printed_fills(lines)
    wrong = {
        oid: (printed.get(oid, Decimal(0)), Decimal(str(orders[oid].filled_qty)))
        for oid in ids
        if printed.get(oid, Decimal(0)) != Decimal(str(orders[oid].filled_qty))
    }
    assert not wrong, f"printed fill qty != broker filled_qty (printed, broker): {dict(list(wrong.items())[:5])}"


def _health(env: dict[str, str], check: Callable[[dict[str, Any]], Any], timeout: float = 10.0) -> dict[str, Any]:
    """The trade-updates health file once `check` holds (it is rewritten at most once a second)."""
    deadline = time.monotonic() + timeout
    while True:
        record = health_record(env, "trade-updates")
        if record is not None and check(record):
            return record
        assert time.monotonic() < deadline, f"health never satisfied the check: {record}"
        time.sleep(0.1)


def _all_final(client: TradingClient, ids: list[str]) -> bool:
    orders = _broker_orders(client)
    return all(orders[oid].status.value in ("filled", "canceled", "rejected", "expired") for oid in ids)


# ---------------------------------------------------------------------------------- tests


@pytest.mark.usefixtures("unlimited")
def test_chaos_every_fill_exactly_once_and_the_state_file_equals_the_broker(
    sandbox: Any, env: dict[str, str], tails: list[Tail], client: TradingClient, tmp_path: Path
) -> None:
    sandbox.reset()
    for symbol in SYMBOLS:
        sandbox.set_price(symbol, 2)
    state = tmp_path / "state.json"
    tail = _start(tails, env, "--state", str(state), "--poll-interval", "0.3", "--slow-poll", "1.5")
    rng = random.Random(20261125)
    stop_chaos = threading.Event()

    def chaos() -> None:
        while not stop_chaos.wait(rng.uniform(0.2, 0.9)):
            if rng.random() < 0.5:
                sandbox.admin("POST", "/admin/drop", {"stream": "trading"})
            else:
                sandbox.set_faults(hold_trade_updates=True)
                time.sleep(rng.uniform(0.2, 0.6))
                sandbox.set_faults(hold_trade_updates=False)

    agent = threading.Thread(target=chaos, daemon=True)
    agent.start()
    ids: list[str] = []
    resting: list[str] = []
    try:
        for i in range(240):
            symbol = SYMBOLS[i % len(SYMBOLS)]
            if i % 6 == 5:  # a limit far below the market, canceled later
                order = client.submit_order(
                    LimitOrderRequest(symbol=symbol, qty=10, side="buy", time_in_force="day", limit_price=1)
                )
                resting.append(str(order.id))
            else:
                ids.append(_market(client, symbol, rng.choice((50, 150, 250, 350))))
            if i % 40 == 39:
                for oid in resting:
                    client.cancel_order_by_id(oid)
                ids += resting
                resting = []
            time.sleep(rng.uniform(0.0, 0.03))
    finally:
        stop_chaos.set()
        agent.join(5)
        sandbox.set_faults(hold_trade_updates=False)
    deadline = time.monotonic() + 20
    while not _all_final(client, ids):
        assert time.monotonic() < deadline, "sandbox orders did not all end"
        time.sleep(0.2)
    orders = _broker_orders(client)
    canceled = {o for o in ids if orders[o].status.value == "canceled"}
    # Every fill and every cancel, before the stop: the state file is compared with the broker
    # below, and a cancel still on its way would be drift of the test's making.
    tail.wait_for(
        lambda t: (
            all(_printed_fills(t.lines).get(o, Decimal(0)) == Decimal(str(orders[o].filled_qty)) for o in ids)
            and canceled <= {u["order_id"] for u in t.updates() if u["event"] == "canceled"}
        ),
        timeout=25,
        what="every fill and cancel printed",
    )
    code, _ = tail.stop()
    assert code == 0
    _assert_exactly_once(tail.lines, orders, ids)
    sources = Counter(line["source"] for line in tail.updates())
    assert sources["stream"] > 0 and sources["reconcile"] > 0, sources  # the chaos did make gaps
    assert {line["event"] for line in tail.updates()} >= {"new", "partial_fill", "fill", "canceled"}
    verdict = run_cli("reconcile", "--state", str(state), "--sandbox", "-o", "json", env=env)
    assert verdict.returncode == 0, verdict.stdout[-2000:] + verdict.stderr


def test_a_mute_stream_is_caught_by_the_slow_poll_and_reconnected(
    sandbox: Any, env: dict[str, str], tails: list[Tail], client: TradingClient
) -> None:
    sandbox.set_price("ROST", 10)
    tail = _start(
        tails, env, "--slow-poll", "1.5", "--poll-interval", "0.5", "--events", "new,fill,partial_fill,stream"
    )
    sandbox.set_faults(mute_trading=True)
    muted = [_market(client, "ROST", 150), _market(client, "ROST", 50)]
    tail.wait_for(lambda t: t.stderr_has("forcing a reconnect"), timeout=10, what="mute detected")
    sandbox.set_faults(mute_trading=False)
    tail.wait_for(lambda t: t.stderr_has("reconnected (reconnect 1)"), timeout=15, what="reconnected")
    after = _market(client, "ROST", 50)
    tail.wait_for(lambda t: any(u["order_id"] == after and u["event"] == "fill" for u in t.updates()), what="fill")
    health = _health(env, lambda h: h["reconnects"] == 1 and h["connected"])
    shown = run_cli("status", "--sandbox", "-o", "table", env=env)
    code, _ = tail.stop()
    assert code == 0
    orders = _broker_orders(client)
    _assert_exactly_once(tail.lines, orders, [*muted, after])
    recovered = {u["order_id"] for u in tail.updates() if u["source"] == "reconcile"}
    assert set(muted) <= recovered
    assert [u["source"] for u in tail.updates() if u["order_id"] == after and u["event"] == "fill"] == ["stream"]
    assert [line["event"] for line in tail.lines if line["type"] == "stream"][:3] == [
        "connected",
        "mute",
        "disconnected",
    ]
    assert health["mute_reconnects"] == 1 and health["reconnects"] == 1 and health["connected"] is True
    assert health["last_reconciled_at"] and health["sources"]["reconcile"] >= 2
    assert shown.returncode == 0 and "reconciled" in shown.stdout, shown.stdout + shown.stderr
    final = health_record(env, "trade-updates", tail.process.pid)
    assert final is not None
    assert final["stopped"] is True and final["connected"] is False


def test_backoff_during_an_outage_then_recovery(
    sandbox: Any, env: dict[str, str], tails: list[Tail], client: TradingClient
) -> None:
    """Over real sockets: polled while refused, retried without a storm, reconnected when the
    outage ends. (The schedule itself, over minutes, is checked in virtual time in
    test_supervisor_timing.py.)"""
    sandbox.set_price("PAYX", 10)
    tail = _start(tails, env, "--poll-interval", "1")
    refused_before = sandbox.admin("GET", "/admin/streams")["trading_refused"]
    sandbox.set_faults(refuse_trading=True)
    sandbox.admin("POST", "/admin/drop", {"stream": "trading"})
    outage_started = time.monotonic()
    tail.wait_for(lambda t: t.stderr_has("disconnected"), timeout=10, what="disconnected")
    during = _market(client, "PAYX", 50)
    tail.wait_for(
        lambda t: any(u["order_id"] == during and u["event"] == "fill" for u in t.updates()), what="polled fill"
    )
    deadline = time.monotonic() + 30
    while (attempts := sandbox.admin("GET", "/admin/streams")["trading_refused"] - refused_before) < 3:
        assert time.monotonic() < deadline, f"it stopped trying: {attempts} attempt(s) in 30 s"
        time.sleep(0.1)
    three_refusals = time.monotonic() - outage_started
    sandbox.set_faults(refuse_trading=False)
    back = time.monotonic()
    tail.wait_for(lambda t: t.stderr_has("reconnected"), timeout=35, what="recovery")
    recovered_after = time.monotonic() - back
    after = _market(client, "PAYX", 50)
    tail.wait_for(lambda t: any(u["order_id"] == after and u["event"] == "fill" for u in t.updates()), what="fill")
    code, _ = tail.stop()
    assert code == 0
    # No storm: three refused attempts took seconds (a tight loop makes them in milliseconds).
    assert three_refusals >= 1.5, three_refusals
    assert recovered_after < 32
    assert [u["source"] for u in tail.updates() if u["order_id"] == during and u["event"] == "fill"] == ["reconcile"]
    assert [u["source"] for u in tail.updates() if u["order_id"] == after and u["event"] == "fill"] == ["stream"]


def test_refused_auth_exits_3_within_15_s(sandbox: Any, env: dict[str, str]) -> None:
    sandbox.set_faults(refuse_auth=True)
    started = time.monotonic()
    result = run_cli("tail", "trade-updates", "--sandbox", "-o", "json", env=env, timeout=30)
    assert result.returncode == 3, result.stderr
    assert time.monotonic() - started < 15
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("alpaca-cli: error:")]
    assert len(errors) == 1 and "credentials" in errors[0]
    assert "Traceback" not in result.stderr


def test_a_second_tail_exits_5_with_a_hint(sandbox: Any, env: dict[str, str], tails: list[Tail]) -> None:
    first = _start(tails, env)
    started = time.monotonic()
    second = run_cli("tail", "trade-updates", "--sandbox", "-o", "json", env=env, timeout=30)
    assert second.returncode == 5, second.stderr
    assert time.monotonic() - started < 15
    assert "another process already holds" in second.stderr
    assert first.process.poll() is None  # the first one is untouched
    assert first.stop(signal.SIGINT)[0] == 130


@pytest.mark.usefixtures("unlimited")
def test_sigterm_mid_burst_stops_fast_and_leaves_a_consistent_state_file(
    sandbox: Any, env: dict[str, str], tails: list[Tail], client: TradingClient, tmp_path: Path
) -> None:
    sandbox.reset()
    sandbox.set_price("IDXX", 2)
    state = tmp_path / "burst.json"
    tail = _start(tails, env, "--state", str(state))
    ids: list[str] = []

    def burst() -> None:
        for _ in range(120):
            ids.append(_market(client, "IDXX", 250))

    sender = threading.Thread(target=burst, daemon=True)
    sender.start()
    tail.wait_for(lambda t: len(t.updates()) >= 60, what="the burst under way")
    code, elapsed = tail.stop()
    sender.join(30)
    assert code == 0 and elapsed < 5, (code, elapsed)
    saved = statefile.load(state)  # complete and valid
    first_run = list(tail.lines)
    for line in first_run:  # every printed event reached the file
        if line["type"] == "trade_update" and line["event"] in ("fill", "partial_fill"):
            record = saved.open_orders.get(line["order_id"]) or saved.closed_orders.get(line["order_id"])
            assert record is not None and record.filled_qty >= Decimal(str(line["filled_qty"]))
    deadline = time.monotonic() + 20
    while not _all_final(client, ids):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    # A second run with the same file prints what the first one missed, once, and catches the file up:
    # all of it is printed or on its way once it says it is connected (reconciled), and a stop flushes it.
    again = _start(tails, env, "--state", str(state))
    code, _ = again.stop()
    assert code == 0, again.errors
    second_run = list(again.lines)
    assert all(line["source"] == "reconcile" for line in second_run if line["type"] == "trade_update")
    _assert_exactly_once(first_run + second_run, _broker_orders(client), ids)
    verdict = run_cli("reconcile", "--state", str(state), "--sandbox", env=env)
    assert verdict.returncode == 0, verdict.stdout[-2000:] + verdict.stderr


def test_table_output_filters_and_usage_errors(
    sandbox: Any, env: dict[str, str], client: TradingClient, tmp_path: Path
) -> None:
    sandbox.set_price("TLT", 10)
    process = spawn_cli(
        "tail",
        "trade-updates",
        "--sandbox",
        "-o",
        "table",
        "--symbols",
        "tlt",
        "--events",
        "fill",
        "--count",
        "1",
        env=env,
    )
    try:
        deadline = time.monotonic() + 20
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in process.stderr], daemon=True).start()  # type: ignore[union-attr]
        while "connected" not in lines.get(timeout=max(0.1, deadline - time.monotonic())):
            pass
        _market(client, "CPRT", 10)  # another symbol: filtered out
        _market(client, "TLT", 10)
        out, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    shown = [line for line in out.splitlines() if line.strip()]
    assert len(shown) == 1 and "TLT" in shown[0] and "fill 10 @" in shown[0] and "stream" in shown[0], out
    bad = run_cli("tail", "trade-updates", "--sandbox", "--events", "fills", env=env)
    assert bad.returncode == 2 and "unknown event" in bad.stderr
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("{not json")
    refused = run_cli("tail", "trade-updates", "--sandbox", "--state", str(corrupt), env=env)
    assert refused.returncode == 2 and corrupt.read_text() == "{not json"


def test_a_state_file_corrupted_under_a_running_tail_ends_it_with_exit_2_untouched(
    sandbox: Any, env: dict[str, str], tails: list[Tail], client: TradingClient, tmp_path: Path
) -> None:
    sandbox.set_price("ODFL", 2)
    state = tmp_path / "shared.json"
    tail = _start(tails, env, "--state", str(state))
    broken = tmp_path / "broken"
    broken.write_text("garbage")
    broken.replace(state)  # another program broke it (at once, so tail never reads it half-written)
    _market(client, "ODFL", 10)
    code = tail.process.wait(20)
    assert code == 2
    assert state.read_text() == "garbage"
    tail.wait_for(lambda t: any("alpaca-cli: error:" in line and "not valid JSON" in line for line in t.errors))


def test_a_stream_url_with_no_such_route_ends_tail_with_its_hint_while_rest_answers(
    sandbox: Any, tmp_path: Path
) -> None:
    """REST works, the stream URL 404s at the upgrade: no retry will mend it, so exit 4 with
    the setting to check, not a retry every 30 s forever."""
    env = cli_env(
        tmp_path,
        APCA_API_KEY_ID=sandbox.key_id,
        APCA_API_SECRET_KEY=sandbox.secret_key,
        APCA_API_BASE_URL=sandbox.url,
        APCA_API_STREAM_URL="ws" + sandbox.url.removeprefix("http") + "/no-such-stream",
    )
    started = time.monotonic()
    result = run_cli("tail", "trade-updates", "-o", "json", env=env, timeout=30)
    assert result.returncode == 4, result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("alpaca-cli: error:")]
    assert "404 at the WebSocket upgrade" in line and "APCA_API_STREAM_URL" in line
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 15
