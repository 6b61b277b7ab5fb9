"""The output layer's JSON: exact decimals, RFC 3339 times, one object per line."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from alpaca_cli.output import Output, dumps, rfc3339


def test_decimals_are_exact_numbers_without_noise() -> None:
    assert dumps({"a": Decimal("0.1"), "b": Decimal("100.000"), "c": Decimal("1E+2")}) == '{"a":0.1,"b":100,"c":100}'
    assert dumps([Decimal("-0.000"), Decimal("12345678901234567890.123456789")]) == "[0,12345678901234567890.123456789]"
    assert dumps(Decimal("NaN")) == "null"


@given(st.decimals(allow_nan=False, allow_infinity=False, places=9))
def test_decimal_round_trips_through_json(value: Decimal) -> None:
    assert json.loads(dumps({"v": value}), parse_float=Decimal, parse_int=Decimal)["v"] == value


@given(
    st.dictionaries(
        st.text(), st.one_of(st.none(), st.booleans(), st.integers(), st.text(), st.floats(allow_nan=False))
    )
)
def test_plain_values_match_the_json_module(value: dict) -> None:
    finite = {k: None if isinstance(v, float) and abs(v) == float("inf") else v for k, v in value.items()}
    assert json.loads(dumps(value)) == finite


def test_datetimes_are_rfc3339_utc_with_z() -> None:
    east = timezone(timedelta(hours=2))
    assert rfc3339(datetime(2024, 5, 1, 12, 0, tzinfo=east)) == "2024-05-01T10:00:00Z"
    assert rfc3339(datetime(2024, 5, 1, 12, 0, 0, 123456)) == "2024-05-01T12:00:00.123456Z"
    assert dumps({"t": datetime(2024, 1, 2, tzinfo=UTC)}) == '{"t":"2024-01-02T00:00:00Z"}'


def test_dataclasses_serialise_by_field() -> None:
    @dataclass
    class Fill:
        qty: Decimal
        at: datetime

    assert json.loads(dumps(Fill(Decimal("1.5"), datetime(2024, 1, 1, tzinfo=UTC)))) == {
        "qty": 1.5,
        "at": "2024-01-01T00:00:00Z",
    }


def test_emit_writes_one_flushed_line_per_record() -> None:
    sink = io.StringIO()
    out = Output("auto", stdout=sink)
    assert out.json  # a StringIO is not a terminal: auto means JSON
    out.emit({"type": "x", "n": 1})
    out.emit({"type": "y"})
    assert sink.getvalue() == '{"type":"x","n":1}\n{"type":"y"}\n'
    assert Output("table", stdout=sink).json is False
