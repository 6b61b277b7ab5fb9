"""The broker bridge: the only package that imports alpaca-py.

Commands talk to Alpaca (or the sandbox) only through `Broker`, an async
context manager. It runs the blocking SDK off the event loop and hands back
the project's own domain types and errors, so the rest of the code never
touches an SDK object.
"""

from __future__ import annotations

import logging
from types import TracebackType

from alpaca_cli.bridge.rest import RestBridge
from alpaca_cli.config import Connection

log = logging.getLogger(__name__)


class Broker(RestBridge):
    """`async with Broker(connection) as broker:` — REST now, streams attach later."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)

    async def __aenter__(self) -> Broker:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A failing shutdown is logged, never raised: it must not mask the
        # error (or the clean exit) that is already on its way out.
        try:
            self.close()
        except Exception:
            log.warning("broker bridge did not close cleanly", exc_info=True)


__all__ = ["Broker"]
