"""Alpaca's trading stream protocol (`/stream`, `trade_updates`) without any I/O.

The client sends JSON (text or binary frames): `authenticate`, then `listen`.
The server answers in binary frames holding JSON, as paper-api does, with an
`authorization` message, a `listening` message, and then one `trade_updates`
message per order event. `alpaca_cli.sandbox.streams` owns the sockets.

One connection per account
--------------------------
Alpaca allows one `trade_updates` connection per account. A further attempt
is refused at the WebSocket upgrade with HTTP 429 (alpaca-py issue #740
"TradingStream reconnect has no backoff (429 storm)", and the "single-connection
slot ... HTTP 429s" comment in alpaca-py's own `trading/stream.py`; users of the
C# SDK report the same "server returned status code '429' when status code
'101' was expected"). The sandbox does the same: while an authenticated
trading connection is open, `GET /stream` answers HTTP 429 with the JSON body
`{"code": 42910000, "message": "connection limit exceeded"}` and never
upgrades. alpaca-py then raises `websockets.InvalidStatusCode` (a
`WebSocketException`, `status_code == 429`, str "server rejected WebSocket
connection: HTTP 429") inside `_start_ws`, logs a warning and retries with
backoff. That is unlike bad keys, which upgrade fine and then get an
`authorization` message with status `unauthorized`.

Two connections that both upgraded before either authenticated race; the
loser gets no `authorization` reply: the server closes it with WebSocket close
code 1008 (policy violation), reason "connection limit exceeded"
(`CLOSE_LIMIT`), and its next attempt meets the 429.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

STREAM = "trade_updates"
CLOSE_LIMIT = 1008
LIMIT_REASON = "connection limit exceeded"
# The body of the HTTP 429 that refuses a second connection's upgrade.
LIMIT_BODY = {"code": 42910000, "message": LIMIT_REASON}


def authorization(action: str, authorized: bool) -> dict[str, Any]:
    """The `authorization` reply; a refusal carries Alpaca's message for bad keys."""
    data: dict[str, Any] = {"action": action, "status": "authorized" if authorized else "unauthorized"}
    if not authorized:
        data["message"] = "access key verification failed"
    return {"stream": "authorization", "data": data}


def listening(streams: list[str]) -> dict[str, Any]:
    return {"stream": "listening", "data": {"streams": streams}}


def listen_error(message: str) -> dict[str, Any]:
    """Answer to a message the server cannot act on (bad JSON or unknown action)."""
    return {"stream": "listening", "data": {"error": message}}


def trade_update(payload: dict[str, Any]) -> dict[str, Any]:
    """Wrap an engine event payload as a `trade_updates` message."""
    return {"stream": STREAM, "data": payload}


def encode(message: dict[str, Any]) -> bytes:
    """Server messages go out as JSON in binary frames, like paper-api's."""
    return json.dumps(message, separators=(",", ":")).encode()


@dataclass
class Outcome:
    """Replies to send, in order, and whether the connection must then close."""

    replies: list[dict[str, Any]] = field(default_factory=list)
    close: bool = False
    # Set when authentication lost the one-connection race (see module doc).
    limit_exceeded: bool = False


class TradeSession:
    """Handshake state of one trading connection: authenticate, then listen."""

    def __init__(self, key_id: str, secret_key: str) -> None:
        self._key_id = key_id
        self._secret_key = secret_key
        self.authenticated = False
        self.streams: list[str] = []

    @property
    def listening(self) -> bool:
        return self.authenticated and STREAM in self.streams

    def receive(self, raw: str | bytes, *, refuse_auth: bool = False, slot_taken: bool = False) -> Outcome:
        """Handle one client frame.

        `slot_taken` says whether another connection of the account already
        holds the trading stream; it only matters for an `authenticate`.
        """
        try:
            message = json.loads(raw)
        except ValueError:
            return Outcome([listen_error("invalid syntax")])
        if not isinstance(message, dict):
            return Outcome([listen_error("invalid syntax")])
        action = message.get("action")
        data = message.get("data")
        data = data if isinstance(data, dict) else {}
        if action == "authenticate":
            return self._authenticate(data, refuse_auth, slot_taken)
        if action == "listen":
            if not self.authenticated:
                return Outcome([authorization("listen", False)])
            streams = data.get("streams")
            if not isinstance(streams, list):
                return Outcome([listen_error("invalid syntax")])
            # Unknown streams are left out of the acknowledgement, as Alpaca does.
            self.streams = [STREAM] if STREAM in streams else []
            return Outcome([listening(self.streams)])
        return Outcome([listen_error("invalid action")])

    def _authenticate(self, data: dict[str, Any], refuse_auth: bool, slot_taken: bool) -> Outcome:
        if self.authenticated:
            return Outcome([authorization("authenticate", True)])
        good = data.get("key_id") == self._key_id and data.get("secret_key") == self._secret_key
        if refuse_auth or not good:
            return Outcome([authorization("authenticate", False)], close=True)
        if slot_taken:
            return Outcome(close=True, limit_exceeded=True)
        self.authenticated = True
        return Outcome([authorization("authenticate", True)])
