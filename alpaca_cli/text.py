"""The spellings every written value shares: RFC 3339 times, plain decimals, wire floats, strings.

Output lines, state files and event ids all write times and decimals, and the
same value must give the same text everywhere (an event's `id` is compared,
not parsed). Standard library only: the pure core imports it.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from json.encoder import encode_basestring_ascii

json_string = encode_basestring_ascii  # a str as a JSON string, ASCII-only (the C encoder)


def rfc3339(moment: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, microseconds only when present; naive means UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    text = moment.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


def decimal_text(value: Decimal) -> str:
    """A decimal as a JSON number: exact digits, no exponent, no trailing zeros ("418.38", "100").

    `normalize()` would round to the context's 28 digits and write `1E+2`, so the
    digits are formatted in full and the zeros stripped by hand. Non-finite
    values have no JSON number: "null".
    """
    text = str(value)  # format "f"'s digits, unless it chose an exponent (and twice as fast)
    if "E" in text or "e" in text:  # "e" where a decimal context says capitals=0
        text = format(value, "f")
    elif not value.is_finite():
        return "null"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def utc(moment: datetime) -> datetime:
    """The same instant in UTC; naive datetimes are taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def json_number(value: float | None) -> str:
    """A float as a JSON number: integral values without `.0`, non-finite as null."""
    if value is None or not math.isfinite(value):
        return "null"
    if value.is_integer():
        return str(int(value))
    return repr(value)
