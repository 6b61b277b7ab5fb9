"""The sandbox's `page_token`: where the next page of a symbol-ordered listing starts.

Alpaca's tokens are opaque; the sandbox's carry the symbol and time to resume
at, so any of its historical listings (bars, trades, quotes) pages the same way.
"""

from __future__ import annotations

import base64
from datetime import datetime


def encode(symbol: str, at: datetime) -> str:
    return base64.urlsafe_b64encode(f"{symbol}|{at.isoformat()}".encode()).decode()


def decode(token: str) -> tuple[str, datetime]:
    """The symbol and time a token resumes at; `ValueError` for a token the sandbox never gave."""
    try:
        symbol, stamp = base64.urlsafe_b64decode(token.encode()).decode().split("|")
        return symbol, datetime.fromisoformat(stamp)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("invalid page_token") from None
