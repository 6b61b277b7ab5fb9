"""`tail --count N` counts every printed line, recovered ones included, and prints exactly N (with
`--state`, the rest of a saved batch waits in the outbox for the next run); `--duration S` is wall
time from the start, catch-up included."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.requests import MarketOrderRequest
from helpers import CLI, cli_env, health_record, json_lines, run_cli

from alpaca_cli import statefile
from alpaca_cli.core.identity import event_id


def _place(sandbox: Any, n: int) -> None:
    """`n` market orders, placed through the SDK (what places them is not under test here), filled."""
    client = TradingClient(sandbox.key_id, sandbox.secret_key, paper=True, url_override=sandbox.url)
    ids = [
        client.submit_order(MarketOrderRequest(symbol="AAPL", qty=1, side="buy", time_in_force="day")).id
        for _ in range(n)
    ]
    deadline = time.monotonic() + 20
    while any(client.get_order_by_id(oid).status != "filled" for oid in ids):  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the orders never filled"
        time.sleep(0.2)  # a fill takes one tick (0.02 s); the account's 200 requests a minute are shared


@pytest.mark.timeout(90)
def test_count_1_prints_exactly_one_line_of_a_recovered_burst(sandbox: Any, tmp_path: Path) -> None:
    env = cli_env(tmp_path, sandbox.url)
    tail = subprocess.Popen(
        [*CLI, "tail", "trade-updates", "--sandbox", "-o", "json", "--count", "1", "--slow-poll", "0.5"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while (health_record(env, "trade-updates", tail.pid) or {}).get("mode") != "live":  # connected
            assert time.monotonic() < deadline, "tail never went live"
            time.sleep(0.1)
        sandbox.set_faults(hold_trade_updates=True)  # fills happen, the stream says nothing: a burst to recover
        _place(sandbox, 3)
        out, err = tail.communicate(timeout=40)
    finally:
        tail.kill()
    assert tail.returncode == 0, err
    lines = json_lines(out)
    assert len(lines) == 1, out
    assert lines[0]["type"] == "trade_update" and lines[0]["source"] == "reconcile"


@pytest.mark.timeout(90)
def test_count_with_state_prints_exactly_n_and_the_next_run_prints_the_rest_of_the_batch_first(
    sandbox: Any, tmp_path: Path
) -> None:
    sandbox.reset()  # only this test's orders
    env = cli_env(tmp_path, sandbox.url)
    state = tmp_path / "state.json"
    assert run_cli("reconcile", "--init", "--state", str(state), "--sandbox", env=env).returncode == 0
    _place(sandbox, 3)  # missed while no tail ran: one catch-up batch of new and fill events
    tail = ("tail", "trade-updates", "--sandbox", "-o", "json", "--state", str(state))
    first = run_cli(*tail, "--count", "2", env=env)
    assert first.returncode == 0, first.stderr
    printed = json_lines(first.stdout)
    assert len(printed) == 2, first.stdout
    held = statefile.load(state).outbox  # saved, not printed: waiting for the next run
    assert len(held) >= 4
    second = run_cli(*tail, "--count", str(len(held)), env=env)  # the held lines count: exactly them
    assert second.returncode == 0, second.stderr
    rest = json_lines(second.stdout)
    assert [line["id"] for line in rest] == [event_id(h.to_update()) for h in held]
    assert statefile.load(state).outbox == ()
    everything = printed + rest
    assert all(line["source"] == "reconcile" for line in everything)
    assert len({line["id"] for line in everything}) == len(everything)  # nothing twice
    fills = {line["order_id"] for line in everything if line["event"] == "fill"}
    assert len(fills) == 3 and {line["order_id"] for line in everything} == fills  # nothing lost
    third = run_cli(*tail, "--duration", "0.5", env=env)
    assert third.returncode == 0 and json_lines(third.stdout) == [], third.stdout


@pytest.mark.timeout(90)
def test_duration_is_wall_time_from_the_start_catch_up_included(sandbox: Any, tmp_path: Path) -> None:
    env = cli_env(tmp_path, sandbox.url)
    state = tmp_path / "state.json"
    first = run_cli(
        "tail", "trade-updates", "--sandbox", "-o", "json", "--state", str(state), "--duration", "0.5", env=env
    )
    assert first.returncode == 0, first.stderr
    _place(sandbox, 5)  # missed while no tail ran: the next one catches up first
    started = time.monotonic()
    bare = run_cli(  # what start-up and a clean stop cost on this machine now, with no catch-up
        "tail", "trade-updates", "--sandbox", "-o", "json", "--state", str(state), "--duration", "0", env=env
    )
    overhead = time.monotonic() - started
    assert bare.returncode == 0 and bare.stdout == "", bare.stderr
    started = time.monotonic()
    again = run_cli(
        "tail", "trade-updates", "--sandbox", "-o", "json", "--state", str(state), "--duration", "1", env=env
    )
    took = time.monotonic() - started
    assert again.returncode == 0, again.stderr
    assert took < overhead + 1 + 1.0, (took, overhead)  # the catch-up fits inside the second, not after it
    assert all(line["source"] == "reconcile" for line in json_lines(again.stdout))


def test_the_events_tab_offers_are_the_events_tail_knows() -> None:
    from alpaca_cli.commands.tail import EVENT_NAMES, _complete_events
    from alpaca_cli.core.apply import KNOWN_EVENTS

    assert set(EVENT_NAMES) == KNOWN_EVENTS | {"stream"} and len(EVENT_NAMES) == len(set(EVENT_NAMES))
    assert _complete_events("fi") == ["fill"]
    assert _complete_events("fill,pa") == ["fill,partial_fill"]
    assert "fill,fill" not in _complete_events("fill,")
