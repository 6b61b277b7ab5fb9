"""Fault switches of the sandbox: the failures real brokers and networks produce.

One mutable `Faults` object is shared by the REST middleware and the stream
handlers of a running sandbox; tests flip its fields (directly, through
`POST /admin/faults`, or with `sandbox serve` flags) to provoke the failure
cases a trading tool must survive: refused keys, 5xx storms, an order accepted
whose answer never arrives, a trade stream that goes quiet or drops.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any


@dataclass
class Faults:
    """What the sandbox currently does wrong (all off by default)."""

    # REST answers 401 and the streams refuse authentication.
    refuse_auth: bool = False
    # Answer `rest_status` to the next `rest_count` REST requests (0: to every one, until
    # switched off); `sandbox serve --rest-status N --rest-count M` means the same.
    rest_status: int | None = None
    rest_count: int = 0
    # POST /v2/orders: record the order, then drop the connection unanswered (next N times).
    drop_after_accept: int = 0
    # The engine keeps filling but the trading stream sends nothing; held events are lost.
    hold_trade_updates: bool = False
    # An outage of the trading stream: every upgrade of `/stream` is answered HTTP 503.
    refuse_trading: bool = False
    # Connections stay open but nothing is sent on them.
    mute_trading: bool = False
    mute_data: bool = False
    # Drop stream connections every so many seconds.
    drop_trading_every: float | None = None
    drop_data_every: float | None = None

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
