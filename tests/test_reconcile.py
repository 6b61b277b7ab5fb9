"""`alpaca-cli reconcile` end to end: drift made at the sandbox while nobody listens.

The drift is made the way it happens for real: through the unmodified SDK
(orders placed, canceled, positions sold by "someone else") and the sandbox's
admin routes (prices, steps, bulk seeding). This module runs its own sandbox
whose market moves only on `/admin/step`, so a partial fill can be stopped at
exactly 100 of 150 shares.
"""

from __future__ import annotations

import asyncio
import io
import json
import stat
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from alpaca_cli import statefile
from alpaca_cli.core import State
from tests.conftest import SandboxHandle
from tests.helpers import cli_env, json_lines, run_cli

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    """A sandbox that never ticks on its own (one step per hour): tests step it.

    Always open, as the suite runs at any hour; the rate limit stays on.
    """
    handle = SandboxHandle(port=0, seed=11, tick_interval=3600, bar_interval=0.5, always_open=True)
    with handle:
        yield handle


@pytest.fixture(scope="module")
def client(sandbox: SandboxHandle) -> Any:
    from alpaca.trading.client import TradingClient

    return TradingClient(sandbox.key_id, sandbox.secret_key, paper=True, url_override=sandbox.url)


def reconcile(sandbox: SandboxHandle, home: Path, *args: str) -> Any:
    return run_cli("reconcile", "--sandbox", *args, env=cli_env(home, sandbox.url))


def requests_since(sandbox: SandboxHandle, before: dict[str, int]) -> dict[str, int]:
    """Requests the sandbox answered since `before` (a copy of `sandbox.counts`), by route."""
    return {route: n - before.get(route, 0) for route, n in sandbox.counts.items() if n != before.get(route, 0)}


def kinds(lines: list[dict[str, Any]]) -> Counter[tuple[str, str | None]]:
    return Counter((line["kind"], line["symbol"]) for line in lines if line["type"] == "difference")


def the_summary(lines: list[dict[str, Any]]) -> dict[str, Any]:
    assert lines and lines[-1]["type"] == "summary", lines[-3:]
    assert sum(1 for line in lines if line["type"] == "summary") == 1
    return lines[-1]


def limit(client: Any, symbol: str, side: str, qty: int, price: float) -> Any:
    from alpaca.trading.requests import LimitOrderRequest

    return client.submit_order(
        LimitOrderRequest(symbol=symbol, qty=qty, side=side, time_in_force="gtc", limit_price=price)
    )


def market(client: Any, symbol: str, side: str, qty: int) -> Any:
    from alpaca.trading.requests import MarketOrderRequest

    return client.submit_order(MarketOrderRequest(symbol=symbol, qty=qty, side=side, time_in_force="day"))


def test_drift_is_reported_by_kind_then_write_brings_it_in_sync(sandbox, client, tmp_path: Path) -> None:
    sandbox.reset()
    for symbol, price in (("AAPL", 100), ("MSFT", 200), ("SPY", 400), ("IBM", 150), ("TSLA", 250)):
        sandbox.set_price(symbol, price)
    market(client, "SPY", "buy", 10)
    to_cancel = limit(client, "AAPL", "buy", 5, 50)
    to_fill = limit(client, "MSFT", "buy", 3, 150)
    to_part_fill = limit(client, "IBM", "buy", 150, 100)
    sandbox.step()
    state = tmp_path / "state.json"
    created = reconcile(sandbox, tmp_path, "--state", str(state), "--init", "-o", "json")
    assert created.returncode == 0, created.stderr
    assert set(statefile.load(state).open_orders) == {str(o.id) for o in (to_cancel, to_fill, to_part_fill)}

    # Nobody listens from here on.
    client.cancel_order_by_id(to_cancel.id)
    sandbox.set_price("MSFT", 140)  # below the 150 limit: fills
    sandbox.set_price("IBM", 90)  # below the 100 limit: fills 100 shares per step
    market(client, "SPY", "sell", 10)  # the position is closed behind our back
    sandbox.step()
    sandbox.set_price("IBM", 200)  # and IBM stops filling at 100 of 150
    by_someone_else = limit(client, "TSLA", "buy", 1, 100)
    assert client.get_order_by_id(to_part_fill.id).filled_qty == "100"
    assert {p.symbol for p in client.get_all_positions()} == {"MSFT", "IBM"}

    result = reconcile(sandbox, tmp_path, "--state", str(state), "-o", "json")
    assert result.returncode == 1, result.stderr
    lines = json_lines(result.stdout)
    assert kinds(lines) == Counter(
        {
            ("order_canceled", "AAPL"): 1,
            ("order_filled", "MSFT"): 1,
            ("position_missing_locally", "MSFT"): 1,
            ("position_missing_locally", "IBM"): 1,
            ("position_missing_at_broker", "SPY"): 1,
            ("partial_fill_missed", "IBM"): 1,
            ("order_unknown_locally", "TSLA"): 1,
        }
    )
    by_kind = {line["kind"]: line for line in lines if line["type"] == "difference" and line["order_id"]}
    assert by_kind["order_canceled"]["order_id"] == str(to_cancel.id)
    assert by_kind["order_filled"]["broker"]["filled_qty"] == 3
    assert by_kind["partial_fill_missed"]["local"]["filled_qty"] == 0
    assert by_kind["partial_fill_missed"]["broker"]["filled_qty"] == 100
    assert by_kind["order_unknown_locally"]["order_id"] == str(by_someone_else.id)
    summary = the_summary(lines)
    assert summary["in_sync"] is False and summary["differences"] == 7 and summary["written"] is False
    before = state.read_bytes()

    written = reconcile(sandbox, tmp_path, "--state", str(state), "--write", "-o", "json")
    assert written.returncode == 1, written.stderr  # drift found (and adopted) is still exit 1
    assert kinds(json_lines(written.stdout)) == kinds(lines)
    assert the_summary(json_lines(written.stdout))["written"] is True
    assert state.read_bytes() != before
    adopted = statefile.load(state)
    assert {s: p.qty for s, p in adopted.positions.items()} == {"MSFT": Decimal(3), "IBM": Decimal(100)}
    assert set(adopted.open_orders) == {str(to_part_fill.id), str(by_someone_else.id)}
    assert adopted.open_orders[str(to_part_fill.id)].filled_qty == 100
    assert adopted.closed_orders[str(to_cancel.id)].status == "canceled"
    assert adopted.closed_orders[str(to_fill.id)].status == "filled"
    assert adopted.last_reconciled_at is not None

    again = reconcile(sandbox, tmp_path, "--state", str(state), "-o", "json")
    assert again.returncode == 0, again.stdout
    summary = the_summary(json_lines(again.stdout))
    assert summary["in_sync"] is True and summary["differences"] == 0
    assert summary["by_kind"] == dict.fromkeys(summary["by_kind"], 0)


def test_an_order_the_broker_no_longer_knows_is_drift_not_an_error(sandbox, client, tmp_path: Path) -> None:
    """A paper account reset forgets every order: the lookup of one the file believes open
    answers 404, which is `order_missing_at_broker` (exit 1), and `--write` clears it."""
    sandbox.reset()
    sandbox.set_price("F", 10)
    forgotten = limit(client, "F", "buy", 1, 1)
    state = tmp_path / "state.json"
    assert reconcile(sandbox, tmp_path, "--state", str(state), "--init", "-o", "json").returncode == 0
    sandbox.reset()

    result = reconcile(sandbox, tmp_path, "--state", str(state), "-o", "json")
    assert result.returncode == 1, result.stderr
    assert kinds(json_lines(result.stdout)) == Counter({("order_missing_at_broker", "F"): 1})
    followed = tmp_path / "tail.json"
    followed.write_bytes(state.read_bytes())
    tail = run_cli(
        "tail",
        "trade-updates",
        "--sandbox",
        "--state",
        str(followed),
        "--duration",
        "1",
        env=cli_env(tmp_path, sandbox.url),
    )
    assert tail.returncode == 0, tail.stderr
    assert str(forgotten.id) not in statefile.load(followed).open_orders
    assert reconcile(sandbox, tmp_path, "--state", str(state), "--write", "-o", "json").returncode == 1
    assert str(forgotten.id) not in statefile.load(state).open_orders
    assert reconcile(sandbox, tmp_path, "--state", str(state), "-o", "json").returncode == 0


def test_many_orders_the_broker_forgot_cost_a_few_lookups_not_one_each(sandbox, tmp_path: Path) -> None:
    """300 believed-open orders gone in a reset: the closed listing places none, three lookups
    answer 404, and the rest are taken as gone too (one lookup each would meet the rate limit)."""
    sandbox.reset()
    sandbox.admin("POST", "/admin/seed", {"open_orders": 300, "positions": 0})
    state = tmp_path / "state.json"
    assert reconcile(sandbox, tmp_path, "--state", str(state), "--init").returncode == 0
    sandbox.reset()
    before = dict(sandbox.counts)

    result = reconcile(sandbox, tmp_path, "--state", str(state), "-o", "json")
    assert result.returncode == 1, result.stderr
    made = requests_since(sandbox, before)
    assert made.get("GET /v2/orders/{order_id}", 0) <= 3, made
    missing = [line for line in json_lines(result.stdout) if line.get("kind") == "order_missing_at_broker"]
    assert len(missing) == 300, the_summary(json_lines(result.stdout))


def test_more_than_500_open_orders_are_all_seen(sandbox, tmp_path: Path) -> None:
    sandbox.reset()
    state = tmp_path / "state.json"
    assert reconcile(sandbox, tmp_path, "--state", str(state), "--init").returncode == 0
    sandbox.admin("POST", "/admin/seed", {"open_orders": 1234, "positions": 0})

    result = reconcile(sandbox, tmp_path, "--state", str(state), "-o", "json")
    assert result.returncode == 1, result.stderr
    lines = json_lines(result.stdout)
    unknown = {line["order_id"] for line in lines if line.get("kind") == "order_unknown_locally"}
    assert len(unknown) == 1234
    summary = the_summary(lines)
    assert summary["open_orders"] == 1234 and summary["by_kind"]["order_unknown_locally"] == 1234

    fresh = tmp_path / "fresh.json"
    created = reconcile(sandbox, tmp_path, "--state", str(fresh), "--init", "-o", "json")
    assert created.returncode == 0, created.stderr
    assert the_summary(json_lines(created.stdout))["open_orders"] == 1234
    assert set(statefile.load(fresh).open_orders) == unknown
    assert reconcile(sandbox, tmp_path, "--state", str(fresh)).returncode == 0


def test_orders_that_left_the_open_list_cost_pages_not_a_request_each(sandbox, client, tmp_path: Path) -> None:
    """1,234 believed-open orders canceled at the broker: their final states come from the
    closed listing (3 pages), not 1,234 lookups that Alpaca's ~200 requests a minute forbid."""
    sandbox.reset()
    sandbox.admin("POST", "/admin/seed", {"open_orders": 1234, "positions": 0})
    state = tmp_path / "state.json"
    assert reconcile(sandbox, tmp_path, "--state", str(state), "--init").returncode == 0
    client.cancel_orders()
    before = dict(sandbox.counts)

    result = reconcile(sandbox, tmp_path, "--state", str(state), "-o", "json")
    assert result.returncode == 1, result.stderr
    made = requests_since(sandbox, before)
    assert made.get("GET /v2/orders/{order_id}", 0) == 0, made
    assert made["GET /v2/orders"] <= 5, made  # the open list (1 page) and the closed one (3 pages)
    closed = [line for line in json_lines(result.stdout) if line.get("kind") == "order_canceled"]
    assert len(closed) == 1234, the_summary(json_lines(result.stdout))


def test_init_creates_a_0600_file_and_never_replaces_one(sandbox, client, tmp_path: Path) -> None:
    sandbox.reset()
    sandbox.set_price("AAPL", 100)
    order = limit(client, "AAPL", "buy", 2, 50)
    state = tmp_path / "state.json"
    result = reconcile(sandbox, tmp_path, "--state", str(state), "--init", "-o", "json")
    assert result.returncode == 0, result.stderr
    summary = the_summary(json_lines(result.stdout))
    assert summary["created"] is True and summary["written"] is True and summary["in_sync"] is True
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert set(statefile.load(state).open_orders) == {str(order.id)}
    before = state.read_bytes()

    again = reconcile(sandbox, tmp_path, "--state", str(state), "--init")
    assert again.returncode == 2
    assert again.stderr.count("\n") == 1 and "already exists" in again.stderr and "--write" in again.stderr
    assert state.read_bytes() == before


def test_missing_file_is_exit_2_unless_write_creates_it(sandbox, tmp_path: Path) -> None:
    sandbox.reset()
    state = tmp_path / "state.json"
    missing = reconcile(sandbox, tmp_path, "--state", str(state))
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1 and "--init" in missing.stderr and "does not exist" in missing.stderr
    assert not state.exists()

    created = reconcile(sandbox, tmp_path, "--state", str(state), "--write", "-o", "json")
    assert created.returncode == 0, created.stderr
    assert the_summary(json_lines(created.stdout))["created"] is True
    assert stat.S_IMODE(state.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b'{"version": 1, "account_id": "x", "positions": {', id="truncated"),
        pytest.param(b"\x00\x01 not json", id="garbage"),
        pytest.param(b'{"version": 7, "account_id": "x"}', id="unknown-version"),
        pytest.param(State.empty("someone-else").model_dump_json().encode(), id="other-account"),
    ],
)
@pytest.mark.parametrize("flags", [(), ("--write",), ("--init",)], ids=["check", "write", "init"])
def test_untrusted_file_is_exit_2_one_line_bytes_untouched(
    sandbox, tmp_path: Path, content: bytes, flags: tuple[str, ...]
) -> None:
    state = tmp_path / "state.json"
    state.write_bytes(content)
    result = reconcile(sandbox, tmp_path, "--state", str(state), *flags, "-o", "json")
    assert result.returncode == 2, result.stdout
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("alpaca-cli: error: state file")
    assert state.read_bytes() == content


def test_table_mode_groups_by_kind_with_a_verdict(sandbox, client, tmp_path: Path) -> None:
    sandbox.reset()
    sandbox.set_price("AAPL", 100)
    state = tmp_path / "state.json"
    assert reconcile(sandbox, tmp_path, "--state", str(state), "--init").returncode == 0
    in_sync = reconcile(sandbox, tmp_path, "--state", str(state), "-o", "table")
    assert in_sync.returncode == 0 and in_sync.stdout.strip() == "in sync"

    limit(client, "AAPL", "buy", 1, 50)
    limit(client, "AAPL", "buy", 1, 51)
    market(client, "AAPL", "buy", 4)
    sandbox.step()
    drift = reconcile(sandbox, tmp_path, "--state", str(state), "-o", "table")
    assert drift.returncode == 1, drift.stderr
    *table, verdict = drift.stdout.rstrip().splitlines()
    assert verdict == "3 differences: 1 position_missing_locally, 2 order_unknown_locally"
    rendered = "\n".join(table)
    assert "Differences (local state vs broker)" in rendered
    assert rendered.count("order_unknown_locally") == 1  # the kind names its group once
    assert rendered.count("position_missing_locally") == 1 and rendered.count("AAPL") == 3
    assert not drift.stdout.lstrip().startswith("{")


def test_write_retakes_the_snapshot_when_another_process_wrote_meanwhile(
    sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`submit --state` records an order after reconcile's snapshot: --write keeps it open."""
    from alpaca_cli.bridge import Broker
    from alpaca_cli.commands import reconcile as command
    from alpaca_cli.config import load_settings, resolve
    from alpaca_cli.output import Output

    sandbox.reset()
    sandbox.set_price("AAPL", 100)
    state = tmp_path / "state.json"
    assert reconcile(sandbox, tmp_path, "--state", str(state), "--init").returncode == 0
    monkeypatch.chdir(tmp_path)  # no stray .env
    connection = resolve(load_settings(sandbox=True, sandbox_url=sandbox.url))
    out = Output("json", stdout=io.StringIO())

    async def race() -> list[Any]:
        async with Broker(connection) as broker:
            local = statefile.load(state)
            early = await broker.snapshot(local.open_orders)
            placed = await asyncio.to_thread(
                run_cli,
                "submit", "AAPL", "buy", "--qty", "1", "--type", "limit", "--limit-price", "50", "--tif", "gtc",
                "--state", str(state), "--sandbox", "-o", "json",
                env=cli_env(tmp_path, sandbox.url),
            )  # fmt: skip
            assert placed.returncode == 0, placed.stderr
            differences, _ = await command._write(out, broker, state, local, early)
            return [json.loads(placed.stdout)["id"], differences]

    order_id, differences = asyncio.run(race())
    assert differences == []  # the fresh snapshot agrees with what submit recorded
    assert set(statefile.load(state).open_orders) == {order_id}


def test_orders_pages_past_500_and_limit_keeps_the_newest(sandbox, tmp_path: Path, monkeypatch) -> None:
    """The bridge's paging (what the snapshot stands on): every order once, oldest first;
    `limit` keeps the newest; `after` keeps only the later ones."""
    from alpaca_cli.bridge import Broker
    from alpaca_cli.config import load_settings, resolve

    sandbox.reset()
    sandbox.admin("POST", "/admin/seed", {"open_orders": 1234, "positions": 3})
    monkeypatch.chdir(tmp_path)
    connection = resolve(load_settings(sandbox=True, sandbox_url=sandbox.url))

    async def listings() -> tuple[Any, Any, Any]:
        async with Broker(connection) as broker:
            every = await broker.orders("open")
            newest = await broker.orders("open", limit=700)
            later = await broker.orders("open", after=every[999].submitted_at)
            return every, newest, later

    every, newest, later = asyncio.run(listings())
    assert len(every) == len({o.id for o in every}) == 1234
    assert [o.submitted_at for o in every] == sorted(o.submitted_at for o in every)
    assert [o.id for o in newest] == [o.id for o in every[-700:]]
    assert [o.id for o in later] == [o.id for o in every[1000:]]


def test_broker_unreachable_is_exit_4_and_the_file_untouched(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    state = tmp_path / "state.json"
    content = State.empty("acct").model_dump_json().encode()
    state.write_bytes(content)
    result = run_cli(
        "reconcile", "--sandbox", "--state", str(state), "--write",
        env=cli_env(tmp_path, f"http://127.0.0.1:{port}"),
    )  # fmt: skip
    assert result.returncode == 4, result.stderr
    assert result.stderr.count("\n") == 1 and f"cannot reach 127.0.0.1:{port}" in result.stderr
    assert "alpaca-cli sandbox serve" in result.stderr
    assert state.read_bytes() == content
