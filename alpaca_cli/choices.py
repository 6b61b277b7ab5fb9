"""The fixed choices of order and market-data flags, shared by the commands that take them.

Declared once so that `--help` lists them, TAB offers them, and every command
accepts the same words. They must equal `orders.SIDES`, `ORDER_TYPES`,
`TIME_IN_FORCE` and `ORDER_CLASSES`, which validation checks
(tests/test_account_logic.py); they are repeated here rather than imported
so that `--help` and TAB load nothing but the standard library.
"""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    buy = "buy"
    sell = "sell"


class OrderType(StrEnum):
    market = "market"
    limit = "limit"
    stop = "stop"
    stop_limit = "stop_limit"
    trailing_stop = "trailing_stop"


class TimeInForce(StrEnum):
    day = "day"
    gtc = "gtc"
    ioc = "ioc"
    fok = "fok"
    opg = "opg"
    cls = "cls"


class OrderClass(StrEnum):
    simple = "simple"
    bracket = "bracket"
    oco = "oco"
    oto = "oto"


class Feed(StrEnum):
    """The stock data feed: IEX (every plan) or SIP (all exchanges, paid plans)."""

    iex = "iex"
    sip = "sip"


class Timeframe(StrEnum):
    """The bar widths `alpaca-cli bars` exports (Alpaca's spelling)."""

    minute = "1Min"
    five_minutes = "5Min"
    hour = "1Hour"
    day = "1Day"
