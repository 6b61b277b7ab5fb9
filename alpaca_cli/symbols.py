"""Which market a market-data symbol belongs to, and the symbol lists of the data commands.

A slash makes a crypto pair (`BTC/USD`): Alpaca serves those from its crypto
routes and stream (location `us`, no feed plan, open around the clock); every
other symbol is a US stock or ETF. Stock symbols follow `orders.check_symbol`;
this module adds the pairs, so `bars`, `quote` and `stream` can check
their arguments before anything heavy loads.
"""

from __future__ import annotations

import re

from alpaca_cli.errors import UsageError

_PAIR = re.compile(r"^[A-Z0-9]{2,10}/[A-Z]{2,5}$")


def is_crypto(symbol: str) -> bool:
    """A crypto pair (`BTC/USD`) rather than a stock symbol."""
    return "/" in symbol


def data_symbol(text: str) -> str:
    """A stock symbol or a crypto pair, upper-cased ("btc/usd" -> "BTC/USD")."""
    symbol = text.strip().upper()
    if not is_crypto(symbol):
        from alpaca_cli.orders import check_symbol

        return check_symbol(symbol)
    if not _PAIR.match(symbol):
        raise UsageError(f"{text!r} is not a crypto pair: use BASE/QUOTE, e.g. BTC/USD")
    return symbol


def data_symbols(raw: list[str], example: str) -> list[str]:
    """Symbols given as arguments (commas allowed too), checked, upper-cased, de-duplicated, in order."""
    wanted: list[str] = []
    for text in raw:
        for part in filter(None, (piece.strip() for piece in text.split(","))):
            symbol = data_symbol(part)
            if symbol not in wanted:
                wanted.append(symbol)
    if not wanted:
        raise UsageError("no symbols given", hint=f"e.g. {example}")
    return wanted
