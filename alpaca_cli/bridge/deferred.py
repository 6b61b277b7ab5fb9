"""pandas only when something uses it.

alpaca-py's `alpaca.trading.requests` runs `import pandas as pd` at import time
for one validator (`pd.Timestamp` in a corporate-actions request), and every
`alpaca.trading.*` import runs that package's `__init__`, which imports it. So
a command that only reads the account would load pandas and numpy: about a
third of a second and tens of megabytes that no trading call uses.

`defer_pandas()` puts a placeholder module under the name `pandas` before the
bridge imports alpaca-py. The placeholder imports the real pandas the first
time anyone asks it for an attribute (that validator, or the market-data
package's `from pandas import DataFrame`), steps out of `sys.modules`, and from
then on hands every attribute over to the real module: code that bound the
placeholder keeps working, code that imports pandas afterwards gets the real one.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

_NAME = "pandas"


class _OnDemand(types.ModuleType):
    """Stands in for a module until the first attribute is asked for."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_real(self), name)


def _real(placeholder: _OnDemand) -> types.ModuleType:
    if sys.modules.get(_NAME) is placeholder:
        del sys.modules[_NAME]
    return importlib.import_module(_NAME)


def defer_pandas() -> None:
    """Install the placeholder, unless pandas is loaded already (or not installed)."""
    if _NAME in sys.modules:
        return
    spec = importlib.util.find_spec(_NAME)
    if spec is None:
        return
    placeholder = _OnDemand(_NAME)
    placeholder.__spec__ = spec  # `import pandas` and find_spec see the real spec, without loading it
    sys.modules[_NAME] = placeholder
