"""The sandbox's JSON answers, written once for every REST module."""

from __future__ import annotations

import json as _json
from typing import Any

from aiohttp import web

from alpaca_cli.sandbox import wire


def json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=_json.dumps)


def error(status: int, code: int, message: str) -> web.Response:
    """Alpaca's error answer: `{"code", "message"}` with the HTTP status."""
    return json(wire.error(code, message), status)
