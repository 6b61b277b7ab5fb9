"""`bridge.websocket`: aiohttp's client, as the SDK's trading stream uses it, against a real server.

Each case runs an aiohttp server on a free port in the test's own loop and
checks what the SDK's loop and the bridge rely on: messages as str or bytes,
`websockets`' errors (with the HTTP status or the close frame), and no
client session left open when a connection fails or ends.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from alpaca_cli.bridge import websocket
from alpaca_cli.bridge.streams import describe, http_status, trading_refusal
from alpaca_cli.errors import ConnectionLimitError

pytestmark = pytest.mark.timeout(30)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/stream", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"ws://127.0.0.1:{port}/stream"
    finally:
        await runner.cleanup()


def run(scenario: Callable[[], Awaitable[None]], caplog: pytest.LogCaptureFixture) -> None:
    """Run `scenario` on a fresh loop, then fail if any aiohttp session or connector was left open."""
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(scenario())  # type: ignore[arg-type]
        gc.collect()  # aiohttp reports an unclosed session when it is collected
    assert not [r for r in caplog.records if "Unclosed" in r.getMessage()], caplog.text


def test_messages_cross_as_text_or_bytes_both_ways(caplog: pytest.LogCaptureFixture) -> None:
    heard: list[tuple[WSMsgType, Any]] = []

    async def echo(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            heard.append((message.type, message.data))
            if message.type is WSMsgType.TEXT:
                await ws.send_str(message.data.upper())
            else:
                await ws.send_bytes(message.data[::-1])
        return ws

    async def scenario() -> None:
        async with serving(echo) as url:
            sock = await websocket.connect(url, {"User-Agent": "test"})
            await sock.send('{"action":"listen"}')
            assert await sock.recv() == '{"ACTION":"LISTEN"}'
            await sock.send(b"\x01\x02")
            assert await sock.recv() == b"\x02\x01"
            await sock.close()

    run(scenario, caplog)
    assert heard == [(WSMsgType.TEXT, '{"action":"listen"}'), (WSMsgType.BINARY, b"\x01\x02")]


@pytest.mark.parametrize("status", [401, 404, 429])
def test_a_refused_upgrade_is_invalid_status_with_its_http_status(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    async def refuse(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text="no")

    async def scenario() -> None:
        async with serving(refuse) as url:
            with pytest.raises(InvalidStatus) as refused:
                await websocket.connect(url, {})
            assert http_status(refused.value) == status
            assert describe(refused.value) == f"HTTP {status} at the WebSocket upgrade"

    run(scenario, caplog)


def test_a_close_frame_keeps_its_code_and_reason(caplog: pytest.LogCaptureFixture) -> None:
    """1008 is how the trading stream says "connection limit": the bridge must see the code."""

    async def limit(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.close(code=1008, message=b"connection limit exceeded")
        return ws

    async def scenario() -> None:
        async with serving(limit) as url:
            sock = await websocket.connect(url, {})
            with pytest.raises(ConnectionClosedError) as closed:
                await sock.recv()
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "connection limit exceeded")
            assert isinstance(trading_refusal(closed.value), ConnectionLimitError)
            await sock.close()

    run(scenario, caplog)


def test_a_connection_cut_without_a_close_frame_is_lost_and_sending_after_it_fails_alike(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def cut(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        assert request.transport is not None
        request.transport.abort()  # TCP reset, no close frame
        return ws

    async def scenario() -> None:
        async with serving(cut) as url:
            sock = await websocket.connect(url, {})
            with pytest.raises(ConnectionClosedError) as lost:
                await sock.recv()
            assert describe(lost.value) == "connection lost (no close frame)"
            with pytest.raises(ConnectionClosedError):
                await sock.send("anyone?")
            await sock.close()

    run(scenario, caplog)


def test_closing_from_another_task_ends_a_waiting_recv(caplog: pytest.LogCaptureFixture) -> None:
    """How the bridge stops or replaces a socket: `close()` while the SDK waits in `recv()`."""

    async def silent(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for _ in ws:
            pass
        return ws

    async def scenario() -> None:
        async with serving(silent) as url:
            sock = await websocket.connect(url, {})
            waiting = asyncio.ensure_future(sock.recv())
            await asyncio.sleep(0.05)
            await asyncio.wait_for(sock.close(), websocket.CLOSE_TIMEOUT + 1)
            with pytest.raises(ConnectionClosedError):
                await asyncio.wait_for(waiting, 1)

    run(scenario, caplog)


def test_nothing_listening_is_an_os_error_and_leaves_no_session_open(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there

    async def scenario() -> None:
        with pytest.raises(OSError) as refused:
            await websocket.connect(f"ws://127.0.0.1:{port}/stream", {})
        assert describe(refused.value).startswith("cannot connect: ")

    run(scenario, caplog)


def test_a_handshake_cut_short_by_a_stop_leaves_no_session_open(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        answer = asyncio.Event()

        async def slow(request: web.Request) -> web.StreamResponse:
            await answer.wait()
            return web.Response(status=503)

        async with serving(slow) as url:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(websocket.connect(url, {}), 0.2)
            answer.set()

    run(scenario, caplog)


def test_a_peer_that_never_answers_a_ping_is_given_up_and_said_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(websocket, "HEARTBEAT", 0.2)  # a ping after 0.2 s of silence, 0.1 s for its pong

    async def deaf(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=False)  # pings are never answered
        await ws.prepare(request)
        async for _ in ws:  # until the client gives up on us
            pass
        return ws

    async def scenario() -> None:
        async with serving(deaf) as url:
            sock = await websocket.connect(url, {})
            with pytest.raises(ConnectionClosedError) as silent:
                await asyncio.wait_for(sock.recv(), 2)
            assert describe(silent.value) == "connection lost (no answer to a ping)"
            await sock.close()

    run(scenario, caplog)


def test_a_close_frame_without_a_code_reads_as_websockets_reads_it(caplog: pytest.LogCaptureFixture) -> None:
    async def bare_close(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        assert request.transport is not None
        request.transport.write(b"\x88\x00")  # a close frame with no payload: no code, no reason
        async for _ in ws:  # until the client has closed too
            pass
        return ws

    async def scenario() -> None:
        async with serving(bare_close) as url:
            sock = await websocket.connect(url, {})
            with pytest.raises(ConnectionClosedError) as closed:
                await sock.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1005
            assert describe(closed.value) == "connection closed (1005)"
            await sock.close()

    run(scenario, caplog)
