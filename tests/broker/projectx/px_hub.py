"""A SignalR JSON-protocol hub on loopback, for testing our client: handshake, completions,
pings, pushed events, 401 at the upgrade, silence with the socket open, abrupt drops."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

RS = "\x1e"


async def until(
    condition: Callable[[], bool], timeout: float = 5.0, what: str = "condition"
) -> None:
    """Poll ``condition`` until true (a deadline, never a bare sleep)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        await asyncio.sleep(0.005)


@dataclass
class Invocation:
    connection: int
    target: str
    arguments: list[Any]


@dataclass
class FakeHub:
    accept_token: Callable[[str], bool] = lambda token: True
    ping_interval: float | None = None
    fail_targets: set[str] = field(default_factory=set)
    handshake_extra: str = ""  # records sent in the same frame as the handshake answer
    silent: bool = False  # send nothing at all, keep the socket open
    invocations: list[Invocation] = field(default_factory=list)
    tokens_seen: list[str] = field(default_factory=list)
    queries: list[dict[str, list[str]]] = field(default_factory=list)
    pings_received: int = 0
    rejected: int = 0
    live: dict[int, ServerConnection] = field(default_factory=dict)
    connections: int = 0
    _server: Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, name: str = "user") -> str:
        return f"http://127.0.0.1:{self.port}/hubs/{name}"

    async def start(self) -> FakeHub:
        self._server = await serve(
            self._handle, "127.0.0.1", 0, process_request=self._process_request, ping_interval=None
        )
        return self

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def targets(self, connection: int | None = None) -> list[str]:
        return [
            i.target for i in self.invocations if connection is None or i.connection == connection
        ]

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        query = parse_qs(urlsplit(request.path).query)
        token = (query.get("access_token") or [""])[0]
        self.queries.append(query)
        if not self.accept_token(token):
            self.rejected += 1
            return connection.respond(HTTPStatus.UNAUTHORIZED, "Unauthorized\n")
        self.tokens_seen.append(token)
        return None

    async def push(self, target: str, *arguments: Any) -> None:
        message = json.dumps(
            {"type": 1, "target": target, "arguments": list(arguments)}, default=str
        )
        for ws in list(self.live.values()):
            with contextlib.suppress(Exception):
                await ws.send(message + RS)

    async def send_raw(self, text: str) -> None:
        for ws in list(self.live.values()):
            with contextlib.suppress(Exception):
                await ws.send(text)

    def drop_all(self) -> None:
        """Cut every connection without a close frame (a dead network)."""
        for ws in list(self.live.values()):
            ws.transport.abort()

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        index = self.connections
        first = await ws.recv()
        hello = json.loads(str(first).rstrip(RS))
        if hello.get("protocol") != "json":
            await ws.send(json.dumps({"error": "json only"}) + RS)
            return
        await ws.send("{}" + RS + self.handshake_extra)
        self.live[index] = ws
        pinger = asyncio.get_running_loop().create_task(self._ping(ws))
        self._tasks.add(pinger)
        try:
            buffer = ""
            async for frame in ws:
                parts = (buffer + str(frame)).split(RS)
                buffer = parts.pop()
                for part in parts:
                    if part.strip():
                        await self._on_record(index, ws, json.loads(part))
        except Exception:
            pass
        finally:
            self.live.pop(index, None)
            pinger.cancel()
            self._tasks.discard(pinger)

    async def _on_record(self, index: int, ws: ServerConnection, message: dict[str, Any]) -> None:
        if message.get("type") == 6:
            self.pings_received += 1
            return
        if message.get("type") != 1:
            return
        target = message["target"]
        self.invocations.append(Invocation(index, target, message.get("arguments", [])))
        if "invocationId" in message and not self.silent:
            reply: dict[str, Any] = {"type": 3, "invocationId": message["invocationId"]}
            if target in self.fail_targets:
                reply["error"] = f"{target} failed"
            else:
                reply["result"] = None
            await ws.send(json.dumps(reply) + RS)

    async def _ping(self, ws: ServerConnection) -> None:
        if self.ping_interval is None:
            return
        with contextlib.suppress(Exception):
            while True:
                await asyncio.sleep(self.ping_interval)
                if not self.silent:
                    await ws.send('{"type":6}' + RS)


class Tokens:
    """A token source: a new token after each rejection of the current one."""

    def __init__(self) -> None:
        self.serial = 1
        self.value = "hub-token-0001-secret"
        self.rejections = 0

    async def token(self) -> str:
        return self.value

    async def after_rejection(self, rejected: str) -> str:
        self.rejections += 1
        if rejected == self.value:
            self.rotate()
        return self.value

    def rotate(self) -> str:
        self.serial += 1
        self.value = f"hub-token-{self.serial:04d}-secret"
        return self.value


Subscriber = Callable[[Any], Awaitable[None]]
