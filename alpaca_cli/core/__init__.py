"""The I/O-free core: the state model, `apply`, reconciliation (`diff`, `adopt`),
recovery of missed events (`recover`), the exactly-once memory (`Ledger`), and
the stable key of a trade update (`identity.event_id`, the `id` of every line).

Everything here is pure and synchronous; callers do the I/O at the edges. The
core imports only itself, `alpaca_cli.domain`, `alpaca_cli.text` and (for the
state document) pydantic, and raises its own errors (`core.errors`), which the
edges word for the user (`tests/test_lint.py` checks the imports).
The functions `apply`, `diff` and `recover` re-exported here hide the modules
of the same name as attributes of this package: reach the modules themselves
with `from alpaca_cli.core.diff import ...` or `importlib.import_module`.
"""

from alpaca_cli.core.apply import apply, apply_all
from alpaca_cli.core.diff import (
    KINDS,
    ORDER_KINDS,
    POSITION_KINDS,
    Difference,
    adopt,
    diff,
    initial_state,
)
from alpaca_cli.core.errors import OtherAccount, StateError, check_account
from alpaca_cli.core.ledger import Ledger, is_new
from alpaca_cli.core.recover import (
    fill_price_between,
    keep_positions,
    missed_events,
    missed_part,
    polled_events,
    recover,
    unseen_closed_events,
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
    "Ledger",
    "OrderRecord",
    "OtherAccount",
    "PositionRecord",
    "State",
    "StateError",
    "adopt",
    "apply",
    "apply_all",
    "check_account",
    "diff",
    "fill_price_between",
    "initial_state",
    "is_new",
    "keep_positions",
    "missed_events",
    "missed_part",
    "polled_events",
    "recover",
    "unseen_closed_events",
]
