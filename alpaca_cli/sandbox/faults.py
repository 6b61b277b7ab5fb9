"""Fault switches of the sandbox: the failures real brokers and networks produce.

One mutable `Faults` object is shared by the REST middleware and the stream
handlers of a running sandbox; tests flip its fields (directly, through
`POST /admin/faults`, or with `sandbox serve` flags) to provoke the failure
cases a trading tool must survive: refused keys, 5xx storms, an order accepted
whose answer never arrives, a stream that goes quiet or drops, a bar corrected
after it was sent.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any


def _switch(default: Any, help: str, *, metavar: str = "", low: float | None = None, high: float | None = None) -> Any:
    """A fault field: its default, and what `sandbox serve --help` and the README say of it."""
    return field(default=default, metadata={"help": help, "metavar": metavar, "min": low, "max": high})


@dataclass
class Faults:
    """What the sandbox currently does wrong (all off by default).

    Each field is a `sandbox serve` flag of the same name (`--rest-status` for
    `rest_status`) and a key of `POST /admin/faults`; its metadata is the help
    text both print, so a new switch is one field here.
    """

    refuse_auth: bool = _switch(False, "refuse every key: REST 401, streams unauthorized")
    rest_status: int | None = _switch(
        None, "answer HTTP N to REST requests (with `rest_count`), until switched off", metavar="N", low=400, high=599
    )
    rest_count: int = _switch(
        0, "...to the next M REST requests only (0: to every one, until `rest_status` is off)", metavar="M", low=0
    )
    drop_after_accept: int = _switch(
        0,
        "record the next N orders (placed, replaced or closing a position), then drop the connection "
        "unanswered (the lost-answer case `submit`, `replace` and `close` must survive)",
        metavar="N",
        low=0,
    )
    hold_trade_updates: bool = _switch(False, "keep filling but send no trade updates: a gap (the events are lost)")
    refuse_trading: bool = _switch(False, "answer HTTP 503 to every trade-stream upgrade: an outage")
    mute_trading: bool = _switch(False, "the trade stream stays connected but never speaks")
    mute_data: bool = _switch(False, "the market-data streams stay connected but never speak")
    drop_trading_every: float | None = _switch(
        None, "cut trade-stream connections every S seconds", metavar="S", low=0.01
    )
    drop_data_every: float | None = _switch(None, "cut market-data connections every S seconds", metavar="S", low=0.01)
    correct_bars_after: float | None = _switch(
        None,
        "S seconds after each streamed bar, a late trade lands in it and an `updatedBars` message "
        "carries the corrected bar (the bars API serves the corrected one from then on)",
        metavar="S",
        low=0.0,
    )

    def update(self, **fields: Any) -> None:
        """Set several fields at once, refusing unknown names and wrong types.

        Validation happens before any field changes, so a bad request leaves
        the faults as they were.
        """
        hints = typing.get_type_hints(type(self))
        checked: dict[str, Any] = {}
        for name, value in fields.items():
            if name not in hints:
                raise ValueError(f"unknown fault {name!r}")
            checked[name] = _coerce(name, hints[name], value)
        for name, value in checked.items():
            setattr(self, name, value)

    def next_rest_status(self) -> int | None:
        """The status to inject into this REST request, if any, counting it down."""
        status = self.rest_status
        if status is None or self.rest_count == 0:
            return status
        self.rest_count -= 1
        if self.rest_count == 0:
            self.rest_status = None  # the last of the counted answers
        return status

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def reset(self) -> None:
        """Switch every fault off again."""
        for f in dataclasses.fields(self):
            setattr(self, f.name, f.default)


def _coerce(name: str, hint: Any, value: Any) -> Any:
    """Check `value` against the field's type; ints are accepted where floats are."""
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None:
        if type(None) in allowed:
            return None
        raise ValueError(f"fault {name!r} cannot be null")
    for kind in allowed:
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    raise ValueError(f"fault {name!r} must be {hint}, not {type(value).__name__}")


@dataclass(frozen=True)
class Switch:
    """One fault field as a command-line flag: name, value type, default, limits, help."""

    name: str
    kind: type  # bool, int or float
    optional: bool  # None is a value (off)
    default: Any
    help: str
    metavar: str
    low: float | None
    high: float | None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def switches() -> list[Switch]:
    """Every fault field, in declaration order."""
    hints = typing.get_type_hints(Faults)
    found = []
    for f in dataclasses.fields(Faults):
        allowed = typing.get_args(hints[f.name]) if isinstance(hints[f.name], types.UnionType) else (hints[f.name],)
        kinds = [k for k in allowed if k is not type(None)]
        meta = f.metadata
        found.append(
            Switch(
                f.name,
                kinds[0],
                type(None) in allowed,
                f.default,
                meta["help"],
                meta["metavar"],
                meta["min"],
                meta["max"],
            )
        )
    return found


def readme_table() -> str:
    """The README's table of fault switches, made from the fields (a test keeps the README in step)."""
    rows = ["| flag (`/admin/faults` key) | default | meaning |", "|---|---|---|"]
    for s in switches():
        flag = f"{s.flag} {s.metavar}".strip()
        default = "off" if s.default is None or s.default is False else str(s.default)
        rows.append(f"| `{flag}` (`{s.name}`) | {default} | {s.help} |")
    return "\n".join(rows)
