"""Every failure of a broker call, translated once into the tool's own errors.

The rule the contract sets: a broker that refuses (a JSON error of Alpaca's
own shape) is a refusal with its status; one that answers something else — an
HTML page, malformed or truncated JSON, a field missing or of the wrong type,
a 404 from a route that does not exist, or nothing in time — is exit 4 with
one line naming the route. Bodies are summarized, never pasted: an HTML page
becomes its status and title.

A 404 is "no such order" only from a lookup of one order, and only in Alpaca's
own words; from anything else, or saying "endpoint not found" (what Alpaca
answers on a path it does not serve, e.g. a base URL ending in /v2), it means
the URL is wrong.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import requests
from alpaca.common.exceptions import APIError

from alpaca_cli.bridge.mapping import MalformedAnswer
from alpaca_cli.bridge.transport import Call, DeadlineExceeded, RateLimited
from alpaca_cli.errors import AuthError, BrokerRejected, CliError, RouteNotFound, UnreachableError

BUYING_POWER_CODE = 40310000
SUMMARY_LENGTH = 120
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>|<h1[^>]*>(.*?)</h1>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_HTML = re.compile(r"<\s*(!doctype|html|head|body|title|h1|p|pre)\b", re.IGNORECASE)


def alpaca_error(body: str) -> tuple[int, str] | None:
    """(code, message) when `body` is Alpaca's JSON error, `{"code": 40410000, "message": "..."}`."""
    try:
        document = json.loads(body)
    except (ValueError, TypeError):
        return None
    if not isinstance(document, dict):
        return None
    code, message = document.get("code"), document.get("message")
    if isinstance(code, bool) or not isinstance(code, int | str) or not isinstance(message, str):
        return None
    try:
        return int(code), one_line(message)
    except ValueError:
        return None


def one_line(text: str) -> str:
    """Whitespace folded to single spaces, cut to a readable length."""
    folded = " ".join(text.split())
    return folded if len(folded) <= SUMMARY_LENGTH else folded[: SUMMARY_LENGTH - 1] + "…"


def summarize(body: str) -> str:
    """A body that is not Alpaca's JSON error, as a few words: an HTML page by its title.

    `html` (its table of entities) is imported only for such a page: every broker call imports
    this module, and a call that goes well never needs it."""
    text = body.strip()
    if not text:
        return "an empty body"
    if _HTML.search(text[:2000]):
        import html

        found = _TITLE.search(text)
        title = one_line(html.unescape(_TAG.sub(" ", next(g for g in found.groups() if g)))) if found else ""
        return f"an HTML page ({title})" if title else "an HTML page"
    return repr(one_line(text))


def translate(error: BaseException, call: Call, base_setting: str, *, sandbox: bool = False) -> CliError:
    """The one translation of a failed call; `base_setting` names where its base URL comes from."""
    what, route = call.what, call.route
    if isinstance(error, RateLimited):
        return UnreachableError(
            f"{what}: the broker's rate limit leaves no room for {route} within {call.seconds:g} s "
            f"(it starts over in {error.wait:.0f} s)",
            hint="too many requests for this account just now; try again in a minute",
        )
    if isinstance(error, DeadlineExceeded):
        return UnreachableError(
            f"{what}: no complete answer from the broker within {call.seconds:g} s ({route})",
            hint="the broker is slow or not answering; try again later",
        )
    if isinstance(error, APIError):
        return _refusal(error, call, base_setting)
    if isinstance(error, MalformedAnswer):
        return UnreachableError(f"{what}: the broker's answer to {route} is malformed ({error})")
    if isinstance(error, requests.exceptions.JSONDecodeError):
        return UnreachableError(f"{what}: the broker's answer to {route} is not valid JSON (truncated or corrupt)")
    if isinstance(error, requests.exceptions.Timeout):
        return UnreachableError(f"{what}: the broker did not answer {route} in time", hint="try again later")
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        return UnreachableError(f"{what}: the broker's answer to {route} broke off before its end")
    if isinstance(error, requests.exceptions.ConnectionError):
        where = urlsplit(call.url).netloc if call.url else "the broker"
        hint = (
            "is a sandbox running there? start one with `alpaca-cli sandbox serve`"
            if sandbox
            else f"is {base_setting} right and the service up?"
        )
        return UnreachableError(f"{what}: cannot reach {where} for {route}", hint=hint)
    return UnreachableError(f"{what}: {route} failed ({type(error).__name__}: {one_line(str(error))})")


def _refusal(error: APIError, call: Call, base_setting: str) -> CliError:
    what, route = call.what, call.route
    status = error.status_code or 0
    body = str(error._error or "")
    known = alpaca_error(body)
    message = known[1] if known else summarize(body)
    if status == 401 or (status == 403 and not _buying_power(known)):
        return AuthError(
            f"{what}: the broker refused the credentials ({status} {message})",
            hint="check APCA_API_KEY_ID / APCA_API_SECRET_KEY and paper vs live",
        )
    if status == 429:
        return UnreachableError(f"{what}: the broker kept answering 429 (rate limited) for {route}", hint=message)
    if status == 404 and not (call.lookup and known is not None and "endpoint" not in known[1].lower()):
        return RouteNotFound(
            f"{what}: {call.method or 'GET'} {call.url or route} answered 404: no such route",
            hint=f"is {base_setting} right? give the host only, without /v2",
        )
    if status >= 500 or known is None:
        return UnreachableError(f"{what}: {route} answered {status} with {message}", hint="try again later")
    return BrokerRejected(f"{what}: {message}", status=status, code=known[0])


def _buying_power(known: tuple[int, str] | None) -> bool:
    return known is not None and (known[0] == BUYING_POWER_CODE or "buying power" in known[1].lower())
