"""The account's watchlists and its trading configuration: what a client stores and reads back.

Pure. Watchlists are named, ordered lists of listed assets (`/v2/watchlists`,
by id or by name); names are unique and at most 64 characters; unknown
symbols are refused as Alpaca refuses them. The configuration
(`/v2/account/configurations`) holds Alpaca's fields with their documented
values; a PATCH changes only the fields it names (a null leaves one as it is).
`dtbp_check` and `pdt_check` were removed from the Trading API on 2026-07-06
(FINRA's intraday margin rule ended pattern day trading): never answered, and
ignored in a PATCH (alpaca-py's `set_account_configurations` still sends them).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from alpaca_cli.sandbox import assets, wire
from alpaca_cli.sandbox.params import BadRequest

MAX_NAME = 64


@dataclass(slots=True)
class Watchlist:
    id: str
    name: str
    created_at: datetime
    updated_at: datetime
    symbols: list[str] = field(default_factory=list)

    def wire(self, *, with_assets: bool = True) -> dict[str, Any]:
        """The watchlist object; the list route leaves `assets` out, as Alpaca does."""
        body: dict[str, Any] = {
            "id": self.id,
            "account_id": wire.ACCOUNT_ID,
            "created_at": wire.ts(self.created_at),
            "updated_at": wire.ts(self.updated_at),
            "name": self.name,
        }
        if with_assets:
            listed = (assets.find(s) for s in self.symbols)
            body["assets"] = [a.wire() for a in listed if a is not None]
        return body


def _not_found() -> BadRequest:
    return BadRequest("watchlist not found", 404, 40410000)


def _check_symbols(symbols: Any) -> list[str]:
    if symbols is None:
        return []
    if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
        raise BadRequest("symbols must be a list of strings")
    out: list[str] = []
    for symbol in symbols:
        found = assets.find(symbol)
        if found is None:
            raise BadRequest(f"asset not found for {symbol.upper()}")
        if found.symbol not in out:
            out.append(found.symbol)
    return out


class Watchlists:
    """The account's watchlists, oldest first (see the module docstring)."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now
        self._lists: dict[str, Watchlist] = {}

    def all(self) -> list[dict[str, Any]]:
        return [w.wire(with_assets=False) for w in self._lists.values()]

    def find(self, watchlist_id: str | None = None, name: str | None = None) -> Watchlist:
        if watchlist_id is not None:
            found = self._lists.get(watchlist_id)
        else:
            found = next((w for w in self._lists.values() if w.name == name), None)
        if found is None:
            raise _not_found()
        return found

    def _check_name(self, name: Any, keep: Watchlist | None = None) -> str:
        if not isinstance(name, str) or not name.strip():
            raise BadRequest("name is required")
        if len(name) > MAX_NAME:
            raise BadRequest(f"name must be at most {MAX_NAME} characters")
        if any(w.name == name and w is not keep for w in self._lists.values()):
            raise BadRequest("watchlist name must be unique")
        return name

    def create(self, body: Any) -> Watchlist:
        if not isinstance(body, dict):
            raise BadRequest("request body must be a JSON object")
        name = self._check_name(body.get("name"))
        symbols = _check_symbols(body.get("symbols"))
        at = self._now()
        made = Watchlist(str(uuid.uuid4()), name, at, at, symbols)
        self._lists[made.id] = made
        return made

    def update(self, found: Watchlist, body: Any) -> Watchlist:
        """PUT: a new name and/or a new symbol list (replacing the old one)."""
        if not isinstance(body, dict) or (body.get("name") is None and body.get("symbols") is None):
            raise BadRequest("name or symbols is required")
        if body.get("name") is not None:
            found.name = self._check_name(body["name"], keep=found)
        if body.get("symbols") is not None:
            found.symbols = _check_symbols(body["symbols"])
        found.updated_at = self._now()
        return found

    def add(self, found: Watchlist, body: Any) -> Watchlist:
        """POST to a watchlist: append one symbol (already there: no change)."""
        symbol = body.get("symbol") if isinstance(body, dict) else None
        if not isinstance(symbol, str) or not symbol:
            raise BadRequest("symbol is required")
        for added in _check_symbols([symbol]):
            if added not in found.symbols:
                found.symbols.append(added)
        found.updated_at = self._now()
        return found

    def remove(self, found: Watchlist, symbol: str) -> Watchlist:
        if symbol.upper() not in found.symbols:
            raise BadRequest(f"symbol {symbol.upper()} not found in watchlist", 404, 40410000)
        found.symbols.remove(symbol.upper())
        found.updated_at = self._now()
        return found

    def delete(self, found: Watchlist) -> None:
        del self._lists[found.id]


# Alpaca's fields and the values each may take (None: any boolean; a set: those values).
_CONFIG_CHOICES: dict[str, set[Any] | None] = {
    "trade_confirm_email": {"all", "none"},
    "suspend_trade": None,
    "no_shorting": None,
    "fractional_trading": None,
    "max_margin_multiplier": {"1", "2", "4"},
    "max_options_trading_level": {0, 1, 2, 3},
    "ptp_no_exception_entry": None,
}
REMOVED_CONFIG_FIELDS = frozenset({"dtbp_check", "pdt_check"})


def default_configuration() -> dict[str, Any]:
    """A new paper account's configuration (a 2x margin account, as the engine models)."""
    return {
        "trade_confirm_email": "all",
        "suspend_trade": False,
        "no_shorting": False,
        "fractional_trading": True,
        "max_margin_multiplier": "2",
        "max_options_trading_level": 0,
        "ptp_no_exception_entry": False,
    }


def patch_configuration(current: dict[str, Any], body: Any) -> dict[str, Any]:
    """The configuration after a PATCH; refuses unknown fields and values outside Alpaca's choices."""
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    updated = dict(current)
    for name, value in body.items():
        if value is None or name in REMOVED_CONFIG_FIELDS:
            continue
        if name not in _CONFIG_CHOICES:
            raise BadRequest(f"unknown configuration field {name}")
        choices = _CONFIG_CHOICES[name]
        valid = isinstance(value, bool) if choices is None else (not isinstance(value, bool) and value in choices)
        if not valid:
            raise BadRequest(f"invalid {name}: {value}")
        updated[name] = value
    return updated
