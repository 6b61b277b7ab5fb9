"""The I/O-free core: the state model, `apply`, reconciliation (`diff`), and the
stable key of a trade update (`identity.event_id`, the `id` of every line).

Everything here is pure and synchronous; callers do the I/O at the edges.
The functions `apply` and `diff` re-exported here hide the modules of the
same name as attributes of this package: reach the modules themselves with
`from alpaca_cli.core.diff import ...` or `importlib.import_module`.
"""

from alpaca_cli.core.apply import apply, apply_all
from alpaca_cli.core.diff import (
    KINDS,
    ORDER_KINDS,
    POSITION_KINDS,
    Difference,
    adopt,
    check_account,
    diff,
    missed_events,
)
from alpaca_cli.core.state import (
    AccountRecord,
    ClosedOrder,
    LastEvent,
    OrderRecord,
    PositionRecord,
    State,
)

__all__ = [
    "KINDS",
    "ORDER_KINDS",
    "POSITION_KINDS",
    "AccountRecord",
    "ClosedOrder",
    "Difference",
    "LastEvent",
    "OrderRecord",
    "PositionRecord",
    "State",
    "adopt",
    "apply",
    "apply_all",
    "check_account",
    "diff",
    "missed_events",
]
