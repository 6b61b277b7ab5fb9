"""Query and body parameters as Alpaca reads them, and its refusal of bad ones.

Shared by every REST module of the sandbox (`server`, `datarest`, `accountrest`)
so a bad value is refused the same way on every route: `BadRequest` carries
the HTTP status and Alpaca's `{"code", "message"}`; the server's guard answers it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime


class BadRequest(Exception):
    """A parameter Alpaca would refuse with 422 (or 400)."""

    def __init__(self, message: str, status: int = 422, code: int = 40010001) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def integer(value: str | None, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"invalid {name}: {value}") from None


def boolean(value: str | None, name: str) -> bool:
    """Query booleans arrive Python-style from the SDK (`True`): case-insensitive."""
    if value is None or value == "":
        return False
    lowered = value.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise BadRequest(f"invalid {name}: {value}")


def day(value: str | None, name: str) -> date | None:
    """A query date: `2026-11-27`, or the date part of an RFC 3339 time."""
    if value is None or value == "":
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise BadRequest(f"invalid {name}: {value}", 400, 40010000) from None


def instant(value: str | None, name: str) -> datetime | None:
    """RFC 3339 timestamps or plain dates; naive means UTC."""
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "+"))
    except ValueError:
        raise BadRequest(f"invalid {name}: {value}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def symbol_list(value: str | None) -> list[str]:
    """A comma-separated `symbols` query, upper-cased, blanks dropped, order kept."""
    found = [s.strip().upper() for s in (value or "").split(",")]
    return list(dict.fromkeys(s for s in found if s))


# The stock feeds Alpaca's data API knows (the sandbox serves the same simulated tape on each).
FEEDS = ("iex", "sip", "otc", "boats", "overnight", "delayed_sip")


def check_feed(value: str | None) -> None:
    """A data route's `feed` query: absent means iex; an unknown feed is a 400."""
    feed = (value or "iex").lower()
    if feed not in FEEDS:
        raise BadRequest(f"invalid feed: {feed}", 400, 40010000)
