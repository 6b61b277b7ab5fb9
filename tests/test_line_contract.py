"""The output contract, line by line: each `"type"` the tool prints, built from fixed values by
`alpaca_cli.output.records`, is byte for byte the example the README shows for it.

The examples are read out of README.md (each under a `<!-- line:NAME -->` marker), so the
documentation and the code cannot drift apart; and every type the package can print must
have one, so a new line type cannot ship undocumented.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from alpaca_cli.config import Origin
from alpaca_cli.core import Difference
from alpaca_cli.domain import (
    Account,
    Activity,
    Asset,
    Bar,
    CalendarDay,
    Clock,
    MarketSnapshot,
    Order,
    OrderChanges,
    OrderRequest,
    Position,
    Quote,
    Snapshot,
    Trade,
    TradeUpdate,
)
from alpaca_cli.errors import ConnectionLimitError
from alpaca_cli.output import dumps, records

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "alpaca_cli"
EXAMPLE = re.compile(r"<!-- line:(?P<case>[\w-]+) -->\n```json\n(?P<line>[^\n]+)\n```")

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
T1 = datetime(2026, 3, 2, 14, 30, 1, 250000, tzinfo=UTC)
ACCOUNT = Account(
    id="0d4a8c3e-5b7f-4e21-9a6d-2c8f1e3b7a90",
    account_number="PA3KQ9V0ZQ2L",
    status="ACTIVE",
    cash=Decimal("77083.60"),
    equity=Decimal("100000"),
    buying_power=Decimal("177083.6"),
)
ORDER = Order(
    id="8f1d18ff-2cff-419d-99b2-4f8e5f28d17d",
    client_order_id="acli-feb053ada0ca4c9ba7e34d7ab7e9ea22",
    symbol="AAPL",
    side="buy",
    type="limit",
    time_in_force="day",
    status="filled",
    submitted_at=T0,
    qty=Decimal(100),
    filled_qty=Decimal(100),
    filled_avg_price=Decimal("229.164"),
    limit_price=Decimal("229.50"),
    filled_at=T1,
)
WORKING = Order(
    id="5e0c7d1a-93b4-4f6e-8a2d-7b1c9e4f3a62",
    client_order_id="acli-3c9e1b7d2f8a4e6b9c0d1e2f3a4b5c6d",
    symbol="MSFT",
    side="sell",
    type="limit",
    time_in_force="gtc",
    status="new",
    submitted_at=T0,
    qty=Decimal(50),
    limit_price=Decimal("425"),
)
POSITION = Position(
    symbol="MSFT",
    qty=Decimal(200),
    side="long",
    avg_entry_price=Decimal("418.508"),
    market_value=Decimal("84140"),
    current_price=Decimal("420.7"),
    unrealized_pl=Decimal("438.4"),
    asset_id="b6d1aa75-5c9c-4353-a305-9e2caa1925ab",
)
SNAPSHOT = Snapshot(account=ACCOUNT, positions=(POSITION,), open_orders=(WORKING,), taken_at=T1)
DRIFT = Difference(
    kind="position_qty_changed",
    symbol="MSFT",
    local={"qty": Decimal(250), "side": "long", "avg_entry_price": Decimal("418.508")},
    broker={"qty": Decimal(200), "side": "long", "avg_entry_price": Decimal("418.508")},
    detail="local long 250, broker long 200",
)


class _Change:
    """A connection change as the bridge reports one."""

    stream = "trade-updates"
    event = "failed"
    at = T1
    reconnects = 0
    reason = None
    error = ConnectionLimitError("another process holds this account's trade-update stream")


BAR = Bar("AAPL", T0, 229.1, 229.42, 228.97, 229.3, 18250.0, trade_count=212.0, vwap=229.2113)
QUOTE = Quote("AAPL", T1, 229.28, 3.0, 229.31, 5.0)
TRADE = Trade("AAPL", T1, 229.3, 100.0, 52983525029461)


def _recovered_fill() -> TradeUpdate:
    return TradeUpdate("fill", ORDER, T1, price=Decimal("229.21"), qty=Decimal(60), source="reconcile")


def _notice() -> object:
    from alpaca_cli.supervisor import Notice

    return Notice("connected", T1, reconnects=1, recovered=2)


CASES: dict[str, Callable[[], object]] = {
    "trade_update": lambda: records.trade_update(_recovered_fill()),
    "order": lambda: records.order(ORDER, submission="sent", sends=1),
    "order_request": lambda: records.order_request(
        OrderRequest(
            "AAPL", "buy", "limit", "day", ORDER.client_order_id, qty=Decimal(100), limit_price=Decimal("229.5")
        ),
        "paper",
    ),
    "replace_request": lambda: records.replace_request(
        WORKING, OrderChanges("acli-0a1b2c3d4e5f46a7b8c9d0e1f2a3b4c5", limit_price=Decimal("424.25")), "paper"
    ),
    "cancel": lambda: records.cancel(WORKING, ok=True, status="canceled"),
    "close_request": lambda: records.close_request(POSITION, "sell", "paper", None, Decimal(50)),
    "close": lambda: records.close("MSFT", WORKING, None, recovered=False),
    "difference": lambda: records.difference(DRIFT),
    "summary": lambda: records.summary(SNAPSHOT, [DRIFT], written=False, created=False),
    "stream": lambda: records.stream(_notice()),  # type: ignore[arg-type]
    "stream-failed": lambda: records.stream(_Change()),
    "bar": lambda: records.BarLines()(BAR).rstrip("\n"),
    "quote": lambda: records.QuoteLines()(QUOTE).rstrip("\n"),
    "trade": lambda: records.TradeLines()(TRADE).rstrip("\n"),
    "snapshot": lambda: records.snapshot(MarketSnapshot("AAPL", TRADE, QUOTE, BAR)),
    "status": lambda: records.status(
        "paper",
        ACCOUNT,
        Clock(T1, True, datetime(2026, 3, 3, 14, 30, tzinfo=UTC), datetime(2026, 3, 2, 21, 0, tzinfo=UTC)),
        [POSITION],
        [WORKING],
        {"trade-updates": [{"stream": "trade-updates", "state": "running", "connected": True, "pid": 4242}]},
        with_positions=False,
        with_orders=False,
    ),
    "position": lambda: records.position(POSITION),
    "activity": lambda: records.activity(
        Activity(
            "20260302093001250::9c1e5f7a-2b4d-4e8f-a1c3-5d7e9f0b2c4d",
            "FILL",
            at=T1,
            symbol="AAPL",
            side="buy",
            qty=Decimal(60),
            price=Decimal("229.21"),
            net_amount=Decimal("-13752.6"),
            order_id=ORDER.id,
        )
    ),
    "clock": lambda: records.clock(
        Clock(T1, True, datetime(2026, 3, 3, 14, 30, tzinfo=UTC), datetime(2026, 3, 2, 21, 0, tzinfo=UTC))
    ),
    "config": lambda: records.config(
        [
            ("environment", "paper", Origin("derived", "trading_url")),
            ("profile", "work", Origin("environment", "ALPACA_CLI_PROFILE")),
            ("key_id", "PKQ7…3XWZ", Origin("profile", "work", "/home/ops/.config/alpaca-cli/config.toml")),
            ("secret_key", "********", Origin("profile", "work", "/home/ops/.config/alpaca-cli/config.toml")),
            ("deadline", 20.0, Origin("default")),
        ]
    ),
    "calendar_day": lambda: records.calendar_day(CalendarDay(date(2026, 12, 24), "09:30", "13:00")),
    "asset": lambda: records.asset(
        Asset(
            "GME",
            "GameStop Corp.",
            "NYSE",
            "active",
            True,
            marginable=True,
            shortable=True,
            id="1f2e3d4c-0000-4000-8000-5a6b7c8d9e0f",
        )
    ),
    "demo_step": lambda: records.demo_step(
        "recover", 6, "The stream was cut while a fill happened; tail recovers it from the broker.", title="A lost fill"
    ),
    "demo_summary": lambda: records.demo_summary(
        orders=6,
        placed=5,
        refused=1,
        events=14,
        fills_live=5,
        fills_recovered=1,
        reconnects=1,
        in_sync=True,
        seconds=14.2,
    ),
}


def _examples() -> dict[str, str]:
    return {m["case"]: m["line"] for m in EXAMPLE.finditer((ROOT / "README.md").read_text(encoding="utf-8"))}


def _text(built: object) -> str:
    return built if isinstance(built, str) else dumps(built)


@pytest.mark.parametrize("example", sorted(CASES))
def test_each_line_is_byte_for_byte_its_readme_example(example: str) -> None:
    examples = _examples()
    assert example in examples, f"README.md has no <!-- line:{example} --> example"
    assert _text(CASES[example]()) == examples[example]


def test_every_readme_example_is_checked() -> None:
    assert sorted(_examples()) == sorted(CASES)


def _printed_types() -> set[str]:
    """Every `"type"` the package (not the sandbox, which speaks Alpaca's wire) can print."""
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        if "sandbox" in path.relative_to(PACKAGE).parts:
            continue
        text = path.read_text(encoding="utf-8")
        found |= set(re.findall(r'"type":\s*"(\w+)"', text)) | set(re.findall(r'\btype="(\w+)"', text))
    return found


def test_every_type_the_package_prints_has_a_golden_line() -> None:
    documented = {json.loads(line)["type"] for line in _examples().values()}
    assert _printed_types() - documented == set()


def test_only_the_records_module_builds_lines() -> None:
    """A dict literal with a "type" key outside `output/records.py` is a line built elsewhere."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if "sandbox" in relative.parts or relative == Path("output/records.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Dict) and any(
                isinstance(key, ast.Constant) and key.value == "type" for key in node.keys
            ):
                offenders.append(f"{relative}:{node.lineno}")
    assert offenders == []


def test_the_readme_list_of_types_is_the_documented_lines() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = text[text.index('each with a `"type"`:') : text.index("[one line of each type]")]
    documented = {json.loads(line)["type"] for line in _examples().values()}
    assert set(re.findall(r"`(\w+)`", listed)) == documented
