"""The ASGI application: REST under ``/api``, hubs under ``/hubs``, the control API, and faults.

Layers, outermost first:

1. :class:`CaseInsensitivePaths` — ProjectX paths are case-insensitive (§1); routes are lower-case.
2. :class:`FaultLayer` — armed request faults (:mod:`orderguard.gateway.faults`) act here, around
   the real handling, because only here can a response be withheld, replaced or delayed and the
   connection itself be closed.
3. Starlette routes. ``/api/*`` goes through :func:`api` which does, in order: method check,
   token (401), rate limit (429), body binding (400 with ASP.NET's problem shape), the handler,
   and — for mutations — persisting the state before the answer leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from . import control, rest
from .auth import TokenProblem, bearer_token
from .binding import BindingError, Body
from .config import ExpiredValidate
from .core import GatewayCore
from .faults import (
    NOT_EXECUTED,
    UNKNOWN_ERROR_CODE,
    ArmedFault,
    WireFault,
    pending_code,
    reject_code,
)
from .ratelimit import retry_after_header
from .wire import dumps, envelope

log = logging.getLogger("orderguard.gateway")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON_TYPE = "application/json; charset=utf-8"


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(dumps(payload), status_code=status, media_type=JSON_TYPE, headers=headers)


def _problem_response(error: BindingError) -> Response:
    return Response(dumps(error.problem()), status_code=400, media_type="application/problem+json")


# -- /api ----------------------------------------------------------------------------------------


async def api(request: Request) -> Response:
    core: GatewayCore = request.app.state.core
    path = request.path_params["path"].strip("/").lower()
    if path == "status/ping":
        if request.method != "GET":
            return Response(status_code=405, headers={"Allow": "GET"})
        return PlainTextResponse("pong")
    endpoint = rest.ENDPOINTS.get(path)
    if endpoint is None:
        return Response(status_code=404)
    if request.method != "POST":
        return Response(status_code=405, headers={"Allow": "POST"})

    claims = None
    if endpoint.auth:
        check = core.tokens.check(bearer_token(request.headers.get("authorization")))
        if (
            path == "auth/validate"
            and check.claims is not None
            and check.problem
            in (
                TokenProblem.EXPIRED,
                TokenProblem.REVOKED,
            )
        ):
            answer = _validate_problem(core, check.problem, check.claims)
            if answer is not None:
                return answer
        elif not check.ok:
            return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})
        claims = check.claims
        assert claims is not None
        limited = _rate_limited(core, claims.user_name, claims.token_id, endpoint.bars)
        if limited is not None:
            return limited

    raw = await request.body()
    content_type = request.headers.get("content-type", "")
    if raw.strip() and content_type and "json" not in content_type.lower():
        return Response(status_code=415)  # ASP.NET [FromBody] wants JSON
    try:
        body = Body.from_bytes(raw, allow_empty=endpoint.empty_body)
        payload = await endpoint.handler(core, body, claims)
    except BindingError as error:
        return _problem_response(error)
    if endpoint.mutation:
        await core.persist()  # an acknowledged mutation survives a crash right after
    return json_response(payload)


def _validate_problem(core: GatewayCore, problem: TokenProblem, claims: Any) -> Response | None:
    """Auth/validate on an expired or ended session: its own codes (or 401, or a renewal)."""
    if (
        problem is TokenProblem.EXPIRED
        and core.config.expired_validate is ExpiredValidate.UNAUTHORIZED
    ):
        return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})
    payload = rest.validate_problem(core, problem.value, claims)
    if payload is None:  # renew within the grace window
        token, _ = core.tokens.issue(claims.user_name, claims.session_id)
        return json_response(envelope(newToken=token))
    return json_response(payload)


def _rate_limited(core: GatewayCore, user: str, token_id: str, bars: bool) -> Response | None:
    if not core.rate_limits_enabled:
        return None
    windows = core.bars_limits if bars else core.general_limits
    wait = windows.admit(core.rate_key(user, token_id))
    if wait is None:
        return None
    headers = {"Retry-After": retry_after_header(wait)} if core.config.retry_after else None
    return Response(status_code=429, headers=headers)


# -- hubs ----------------------------------------------------------------------------------------


async def negotiate(request: Request) -> Response:
    core: GatewayCore = request.app.state.core
    token = request.query_params.get("access_token") or bearer_token(
        request.headers.get("authorization")
    )
    if not core.tokens.check(token).ok:
        return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})
    try:
        version = int(request.query_params.get("negotiateVersion", "0"))
    except ValueError:
        version = 0
    return json_response(core.hubs.negotiate(version))


async def user_hub(websocket: WebSocket) -> None:
    await websocket.app.state.core.hubs.serve(websocket, "user")


async def market_hub(websocket: WebSocket) -> None:
    await websocket.app.state.core.hubs.serve(websocket, "market")


# -- layers --------------------------------------------------------------------------------------


class CaseInsensitivePaths:
    """Lower-cases the path before routing; the query string is left as it is."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path = scope["path"]
            if path != path.lower():
                scope = dict(scope)
                scope["path"] = path.lower()
                scope["raw_path"] = scope["path"].encode()
        await self.app(scope, receive, send)


class _Captured:
    """A response recorded instead of sent, to be sent later, replaced or thrown away."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def send(self, message: Message) -> None:
        self.messages.append(message)

    async def replay(self, send: Send) -> None:
        for message in self.messages:
            await send(message)


async def _close_without_answer(send: Send) -> None:
    """Drop the TCP connection with no response bytes (uvicorn's transport, when reachable).

    ASGI has no "abort": if the transport cannot be reached, start a response whose body never
    completes and fail, which makes the server close the connection mid-answer — to the client
    the same thing, an answer that never arrived.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None:
        transport.close()
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]}
    )
    await send({"type": "http.response.body", "body": b"{", "more_body": True})
    raise ConnectionAbortedError("answer withheld by an injected fault")


async def _send_response(send: Send, response: Response) -> None:
    async def no_receive() -> Message:
        return {"type": "http.disconnect"}

    await response({"type": "http"}, no_receive, send)


class FaultLayer:
    """Applies the next armed request fault of an ``/api`` endpoint (see faults.py's table)."""

    def __init__(self, app: ASGIApp, core: GatewayCore) -> None:
        self.app = app
        self.core = core

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/api/"):
            await self.app(scope, receive, send)
            return
        endpoint = path[len("/api/") :].strip("/")
        fault = self.core.faults.take(endpoint)
        if fault is None:
            await self.app(scope, receive, send)
            return
        self.core.record("fault_fired", target=endpoint, kind=fault.kind.value)
        await self._apply(fault, endpoint, scope, receive, send)

    async def _apply(
        self, fault: ArmedFault, endpoint: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        kind = fault.kind
        # Read the whole body first: the request may be executed now, later, or never.
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)

        async def replay_receive() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        if kind in NOT_EXECUTED:
            await self._refuse(kind, fault, endpoint, send)
            return
        if kind is WireFault.LATE:
            await _close_without_answer(send)
            self._execute_later(scope, replay_receive, fault.duration())
            return
        if kind is WireFault.DELAY:
            await asyncio.sleep(fault.duration())
            await self.app(scope, replay_receive, send)
            return
        captured = _Captured()
        await self.app(scope, replay_receive, captured.send)  # executed
        if kind is WireFault.AMBIGUOUS:
            await _close_without_answer(send)
        elif kind is WireFault.SERVER_ERROR:
            await _send_response(send, Response("Internal Server Error", status_code=500))
        elif kind is WireFault.RATE_LIMITED_AFTER_SEND:
            await _send_response(send, Response(status_code=429))
        elif kind is WireFault.PENDING:
            code = fault.code if fault.code is not None else pending_code(endpoint)
            await _send_response(send, json_response(envelope(code, fault.message)))
        elif kind is WireFault.UNKNOWN_CODE:
            code = fault.code if fault.code is not None else UNKNOWN_ERROR_CODE
            await _send_response(send, json_response(envelope(code, fault.message)))
        else:  # HOLD, QUERY_TIMEOUT: the real answer, too late for the client
            await asyncio.sleep(fault.duration())
            with contextlib.suppress(Exception):
                await captured.replay(send)

    async def _refuse(self, kind: WireFault, fault: ArmedFault, endpoint: str, send: Send) -> None:
        if kind is WireFault.REJECT:
            code = fault.code if fault.code is not None else reject_code(endpoint)
            message = fault.message or "injected rejection"
            await _send_response(send, json_response(envelope(code, message)))
        elif kind is WireFault.RATE_LIMITED:
            await _send_response(send, Response(status_code=429))
        elif kind in (WireFault.HTTP_500, WireFault.QUERY_ERROR):
            await _send_response(send, Response("Internal Server Error", status_code=500))
        else:  # FAIL_BEFORE_SEND, LOST
            await _close_without_answer(send)

    def _execute_later(self, scope: Scope, receive: Receive, seconds: float) -> None:
        async def later() -> None:
            await asyncio.sleep(seconds)
            await self.app(scope, receive, _Captured().send)

        task = asyncio.get_running_loop().create_task(later())
        self.core.background.add(task)
        task.add_done_callback(self.core.background.discard)


def build_app(core: GatewayCore) -> ASGIApp:
    """The whole ASGI application of one gateway."""
    routes = [
        Route("/api/{path:path}", api, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        Route("/hubs/user/negotiate", negotiate, methods=["POST"]),
        Route("/hubs/market/negotiate", negotiate, methods=["POST"]),
        WebSocketRoute("/hubs/user", user_hub),
        WebSocketRoute("/hubs/market", market_hub),
        *control.routes(),
    ]
    starlette = Starlette(routes=routes)
    starlette.state.core = core
    return CaseInsensitivePaths(FaultLayer(starlette, core))


__all__ = ["build_app", "json_response"]
