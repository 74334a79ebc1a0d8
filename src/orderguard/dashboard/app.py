"""The dashboard's Starlette application.

=====================================  ===========================================================
``GET /``                              the page (inline HTML, CSS, JS and SVG charts; no CDN)
``GET /api/state``                     one snapshot as JSON
``GET /events``                        Server-Sent Events: a snapshot every ``interval`` seconds
``GET /metrics``                       Prometheus text (live source and ``[metrics]`` extra)
``POST /api/operations/{id}/rollback``  force a rollback; needs the token
=====================================  ===========================================================

Mutating requests need the token printed when the dashboard starts, in the ``X-Orderguard-Token``
header (or ``Authorization: Bearer``). A custom header also means a page of another site cannot
forge the request (a browser will not send it cross-origin without a CORS preflight, which this
app never grants). Requests naming another host than the loopback ones (or the one served on) are
refused, so a DNS-rebinding page cannot read the state either. The token never appears in a
response, a log line or the page's HTML: the page reads it from the URL's fragment, which the
browser never sends.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from orderguard.dashboard.page import PAGE
from orderguard.dashboard.state import DashboardSource, RollbackRefusedError
from orderguard.errors import ConfigurationError

log = logging.getLogger("orderguard.dashboard")

TOKEN_HEADER = "x-orderguard-token"
_OPERATION_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _token_of(request: Request) -> str | None:
    given = request.headers.get(TOKEN_HEADER)
    if given:
        return given
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return None


def build_app(
    source: DashboardSource,
    token: str,
    *,
    interval: float = 1.0,
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS,
) -> Starlette:
    if len(token) < 16:
        raise ValueError("the dashboard token must be at least 16 characters")

    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE, headers={"Cache-Control": "no-store"})

    async def state(request: Request) -> Response:
        return JSONResponse(await source.snapshot())

    async def events(request: Request) -> Response:
        async def stream() -> AsyncIterator[str]:
            while True:
                try:
                    snap = await source.snapshot()
                    yield f"data: {json.dumps(snap)}\n\n"
                except Exception as exc:  # a failed read is shown, the stream goes on
                    log.warning("dashboard snapshot failed: %s", exc)
                    yield f"event: failure\ndata: {json.dumps({'error': str(exc)})}\n\n"
                if await request.is_disconnected():
                    return
                await asyncio.sleep(interval)  # real time: this paces a person's screen

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def metrics(request: Request) -> Response:
        try:
            body = source.metrics()
        except ConfigurationError as exc:  # prometheus-client missing: the extra says how
            return Response(str(exc) + "\n", status_code=501, media_type="text/plain")
        if body is None:
            return Response(
                "no metrics: this dashboard reads a journal, not a live manager\n",
                status_code=404,
                media_type="text/plain",
            )
        return Response(body, media_type=METRICS_CONTENT_TYPE)

    async def rollback(request: Request) -> Response:
        given = _token_of(request)
        if given is None or not hmac.compare_digest(given.encode(), token.encode()):
            return JSONResponse({"error": "a valid token is required"}, status_code=401)
        operation_id = request.path_params["operation_id"]
        if not _OPERATION_ID.match(operation_id):
            return JSONResponse({"error": "malformed operation id"}, status_code=400)
        try:
            result = await source.rollback(operation_id)
        except RollbackRefusedError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        log.warning("operation %s rolled back from the dashboard", operation_id)
        body: dict[str, Any] = {
            "operation_id": result.operation_id,
            "safe": result.safe,
            "state": result.state,
        }
        return JSONResponse(body, status_code=200 if result.safe else 202)

    routes = [
        Route("/", page),
        Route("/api/state", state),
        Route("/events", events),
        Route("/metrics", metrics),
        Route("/api/operations/{operation_id}/rollback", rollback, methods=["POST"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))],
    )


__all__ = ["LOOPBACK_HOSTS", "TOKEN_HEADER", "build_app"]
