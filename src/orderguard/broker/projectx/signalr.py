"""A small SignalR client: JSON hub protocol over ``websockets``, built for long sessions.

What it does, and why we wrote it rather than take one (DESIGN §4):

* **Both ways in.** ``skip_negotiation`` connects the WebSocket straight to the hub URL (the
  official example); otherwise ``POST <hub>/negotiate?negotiateVersion=1`` first and connect with
  the ``id`` it returns (project-x-py's way; redirects are followed). The token travels as the
  ``access_token`` query parameter (and as a bearer header on negotiate).
* **Handshake** ``{"protocol":"json","version":1}`` → ``{}``; records end with ``0x1E`` and may
  share or split frames.
* **Liveness.** A ping (type 6) every ``keepalive_interval``; no message at all for
  ``silence_timeout`` (the server pings every 15 s) means the socket is dead even if it is open:
  the state listener hears ``SILENT`` and we reconnect.
* **Reconnect** forever with exponential backoff and jitter (``rng`` injectable), each time with
  the token the token source gives *then* (a refreshed one after a 401 at the upgrade), then
  ``on_open`` re-subscribes (the server forgets subscriptions), and only then the listener hears
  ``CONNECTED`` (first time) or ``RECONNECTED`` — the cue to resync over REST, since events in
  the gap are lost (FAILURES F7, spec §6.4).
* **Clean stop.** :meth:`HubClient.close` cancels everything it started and never waits on the
  network for longer than ``close_timeout``.

Timers run on the injected :class:`~orderguard.clock.Clock`.

Over 500 lines: one hub connection's life (negotiate, handshake, keepalive, invocations, reconnect
with backoff) shares the connection's state throughout; the framing and parsing are the small
functions before the client class.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from orderguard.broker.base import ConnectionState
from orderguard.clock import Clock

from .http import HttpSeam, NoAnswerError, NotSentError, loads

log = logging.getLogger("orderguard.projectx")
WS_LOGGER_NAME = "orderguard.projectx.ws"

RS = "\x1e"
HANDSHAKE = json.dumps({"protocol": "json", "version": 1}) + RS
PING = json.dumps({"type": 6}) + RS

INVOCATION, STREAM_ITEM, COMPLETION, PING_TYPE, CLOSE = 1, 2, 3, 6, 7


class HubTokens(Protocol):
    async def token(self) -> str: ...

    async def after_rejection(self, rejected: str) -> str: ...


class HubError(Exception):
    """The hub refused something (handshake, negotiate, an invocation) or the link dropped."""


class HubAuthRejectedError(HubError):
    """HTTP 401 at negotiate or at the WebSocket upgrade: the token needs renewing."""


@dataclass(frozen=True, slots=True)
class HubOptions:
    skip_negotiation: bool = True
    keepalive_interval: float = 10.0
    silence_timeout: float = 30.0
    handshake_timeout: float = 10.0
    invoke_timeout: float = 10.0
    reconnect_initial_delay: float = 0.5
    reconnect_max_delay: float = 30.0
    close_timeout: float = 2.0


def backoff_delay(attempt: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: uniform in [cap/2, cap], cap = min(max, initial·2^n)."""
    cap = min(maximum, initial * (2 ** min(attempt, 30)))
    return rng.uniform(cap / 2, cap)


def ws_url(url: str, params: dict[str, str]) -> str:
    """``http(s)`` → ``ws(s)``, with ``params`` added to the query."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    query = [*parse_qsl(parts.query), *params.items()]
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(query), ""))


def _http_url(url: str) -> str:
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))


def split_records(buffer: str, data: str) -> tuple[list[str], str]:
    """Complete records of ``buffer + data`` and what is left of an unfinished one."""
    parts = (buffer + data).split(RS)
    return [p for p in parts[:-1] if p.strip()], parts[-1]


async def wait_event(clock: Clock, event: asyncio.Event, timeout: float) -> bool:
    """Wait for ``event`` up to ``timeout`` seconds of ``clock``; False when time ran out.

    Not ``asyncio.wait_for``: on Python 3.11 it returns the inner result, swallowing the
    caller's cancellation, when both happen at once — and a task that ignores ``cancel()``
    makes ``close()`` hang.
    """
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        waiter.cancel()

    timer = clock.call_later(timeout, expire)
    try:
        await waiter
        return True
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if expired and (task is None or not task.cancelling()):
            return False
        raise
    finally:
        timer.cancel()
        waiter.cancel()


def abort(ws: ClientConnection) -> None:
    """Drop the TCP connection at once (its reader then ends with ``ConnectionClosed``)."""
    with contextlib.suppress(Exception):
        ws.transport.abort()


Connector = Callable[[str], Awaitable[ClientConnection]]
EventSink = Callable[[str, list[Any]], None]
StateSink = Callable[[ConnectionState, str], None]
OpenHook = Callable[["HubClient"], Awaitable[None]]


class HubClient:
    """One hub connection, kept alive across failures (see module docstring)."""

    def __init__(
        self,
        name: str,
        url: str,
        tokens: HubTokens,
        *,
        on_event: EventSink,
        on_state: StateSink,
        on_open: OpenHook,
        clock: Clock,
        options: HubOptions | None = None,
        rng: random.Random | None = None,
        http: HttpSeam | None = None,
        connector: Connector | None = None,
        redact: Callable[[str], str] = lambda text: text,
    ) -> None:
        self.name = name
        self.url = url.rstrip("/")
        self._tokens = tokens
        self._on_event = on_event
        self._on_state = on_state
        self._on_open = on_open
        self._clock = clock
        self.options = options or HubOptions()
        self._rng = rng or random.Random()
        self._http = http
        self._connector = connector or self._default_connect
        self._redact = redact
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._forced: str | None = None
        self._reported_once = False
        self._closing = False
        self._last_seen = 0.0
        self._silent = False
        self.stats: Counter[str] = Counter()

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"HubClient({self.name!r}, {_http_url(self.url)!r}, {state})"

    # -- public --------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    def start(self) -> None:
        """Start connecting (and keep reconnecting) in the background. Idempotent."""
        if self._task is None and not self._closing:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"signalr-{self.name}"
            )

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until connected and subscribed; False after ``timeout`` seconds."""
        return await wait_event(self._clock, self._ready, timeout)

    async def invoke(self, target: str, *arguments: Any) -> Any:
        """Call a hub method and wait for its completion (``HubError`` if it reports one)."""
        ws = self._ws
        if ws is None:
            raise HubError(f"{self.name} hub is not connected")
        invocation_id = str(next(self._ids))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[invocation_id] = future

        def expire() -> None:
            if not future.done():
                future.set_exception(HubError(f"{self.name} hub: no completion for {target}"))

        timer = self._clock.call_later(self.options.invoke_timeout, expire)
        message = {
            "type": INVOCATION,
            "invocationId": invocation_id,
            "target": target,
            "arguments": list(arguments),
        }
        try:
            await ws.send(json.dumps(message) + RS)
            return await future
        except ConnectionClosed:
            raise HubError(f"{self.name} hub closed during {target}") from None
        finally:
            timer.cancel()
            self._pending.pop(invocation_id, None)

    async def send(self, target: str, *arguments: Any) -> None:
        """Call a hub method without waiting for a result."""
        ws = self._ws
        if ws is None:
            raise HubError(f"{self.name} hub is not connected")
        message = {"type": INVOCATION, "target": target, "arguments": list(arguments)}
        try:
            await ws.send(json.dumps(message) + RS)
        except ConnectionClosed:
            raise HubError(f"{self.name} hub closed during {target}") from None

    def reconnect(self, reason: str) -> None:
        """Drop the current connection and connect again at once (e.g. with a new token)."""
        ws = self._ws
        if ws is None:
            return
        self._forced = reason
        self.stats["forced_reconnects"] += 1
        abort(ws)  # the session ends at once and the loop reconnects without backoff

    async def close(self) -> None:
        """Stop for good: cancel the loop, close the socket, fail pending invocations."""
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        ws, self._ws = self._ws, None
        if ws is not None:
            await self._close_ws(ws)
        self._fail_pending("hub closed")
        self._ready.clear()

    # -- the loop ----------------------------------------------------------------------------------
    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            token = ""
            try:
                token = await self._tokens.token()
                ws, leftover = await self._open(token)
            except asyncio.CancelledError:
                raise
            except HubAuthRejectedError:
                self.stats["auth_rejected"] += 1
                log.warning("%s hub refused the token; renewing it", self.name)
                with contextlib.suppress(Exception):
                    await self._tokens.after_rejection(token)
                await self._backoff(attempt)
                attempt += 1
                continue
            except Exception as exc:
                self.stats["connect_failures"] += 1
                log.warning("%s hub connect failed: %s", self.name, self._redact(_describe(exc)))
                await self._backoff(attempt)
                attempt += 1
                continue
            if self._closing:  # close() came while we were connecting
                await self._close_ws(ws)
                return
            healthy = await self._session(ws, leftover)
            if healthy:
                attempt = 0
            if self._forced is not None:
                self._forced = None
                continue  # reconnect at once: the server did nothing wrong
            if not self._closing:
                await self._backoff(attempt)
                attempt += 1

    async def _backoff(self, attempt: int) -> None:
        o = self.options
        await self._clock.sleep(
            backoff_delay(attempt, o.reconnect_initial_delay, o.reconnect_max_delay, self._rng)
        )

    async def _session(self, ws: ClientConnection, leftover: str) -> bool:
        """Run one connection until it ends; True if it got as far as being subscribed."""
        self._ws = ws
        self._last_seen = self._clock.monotonic()
        self._silent = False
        reader = asyncio.get_running_loop().create_task(self._read(ws, leftover))
        pinger = asyncio.get_running_loop().create_task(self._keepalive(ws))
        subscribed = False
        state, detail = ConnectionState.DISCONNECTED, "connection lost"
        try:
            try:
                await self._on_open(self)
            except Exception as exc:
                detail = f"re-subscribe failed: {self._redact(_describe(exc))}"
                log.warning("%s hub: %s", self.name, detail)
            else:
                subscribed = True
                self._ready.set()
                first = not self._reported_once
                self._reported_once = True
                if not first:
                    self.stats["reconnects"] += 1
                self._emit(ConnectionState.CONNECTED if first else ConnectionState.RECONNECTED, "")
                state, detail = await asyncio.shield(reader)
        finally:
            self._ready.clear()
            self._ws = None
            for task in (pinger, reader):
                task.cancel()
            await asyncio.gather(pinger, reader, return_exceptions=True)
            self._fail_pending("connection lost")
            await self._close_ws(ws)
        if self._closing:
            return subscribed
        if self._forced is not None:
            detail = self._forced
        elif self._silent:
            state = ConnectionState.SILENT
            detail = f"{self.name} hub: no message for {self.options.silence_timeout:g}s"
        if state is ConnectionState.SILENT:
            self.stats["silences"] += 1
        self._emit(state, detail)
        return subscribed

    async def _read(self, ws: ClientConnection, buffer: str) -> tuple[ConnectionState, str]:
        """Read until the link ends; returns how it ended."""
        try:
            records, buffer = split_records(buffer, "")
            for record in records:
                ended = self._dispatch(record)
                if ended is not None:
                    return ConnectionState.DISCONNECTED, ended
            while True:
                frame = await ws.recv()  # ends with ConnectionClosed (the watchdog aborts it)
                self._last_seen = self._clock.monotonic()
                text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
                records, buffer = split_records(buffer, text)
                for record in records:
                    ended = self._dispatch(record)
                    if ended is not None:
                        return ConnectionState.DISCONNECTED, ended
        except ConnectionClosed as exc:
            return ConnectionState.DISCONNECTED, f"{self.name} hub closed ({exc.rcvd or 'no'})"
        finally:
            # Invocations waiting for a completion will not get one on this link.
            self._fail_pending("connection lost")

    async def _keepalive(self, ws: ClientConnection) -> None:
        """Ping every ``keepalive_interval``; abort the link after ``silence_timeout`` without
        a message (a socket can stay open while nothing comes through it)."""
        o = self.options
        next_ping = self._clock.monotonic() + o.keepalive_interval
        with contextlib.suppress(ConnectionClosed):
            while True:
                now = self._clock.monotonic()
                deadline = self._last_seen + o.silence_timeout
                if now >= deadline:
                    self._silent = True
                    abort(ws)
                    return
                if now >= next_ping:
                    await ws.send(PING)
                    self.stats["pings_sent"] += 1
                    next_ping = now + o.keepalive_interval
                await self._clock.sleep(max(0.0, min(next_ping, deadline) - now))

    def _dispatch(self, record: str) -> str | None:
        """Handle one record; returns a reason when the server closed the connection."""
        self.stats["messages"] += 1
        try:
            message = loads(record)
        except ValueError:
            self.stats["malformed_frames"] += 1
            log.warning("%s hub sent a record that is not JSON (%d chars)", self.name, len(record))
            return None
        if not isinstance(message, dict):
            self.stats["malformed_frames"] += 1
            return None
        kind = message.get("type")
        if kind == INVOCATION:
            target, arguments = message.get("target"), message.get("arguments", [])
            if not isinstance(target, str) or not isinstance(arguments, list):
                self.stats["malformed_frames"] += 1
                return None
            try:
                self._on_event(target, arguments)
            except Exception:
                self.stats["event_sink_errors"] += 1
                log.exception("%s hub: handling %s failed", self.name, target)
        elif kind == COMPLETION:
            future = self._pending.get(str(message.get("invocationId")))
            if future is not None and not future.done():
                error = message.get("error")
                if error:
                    future.set_exception(HubError(f"{self.name} hub: {error}"))
                else:
                    future.set_result(message.get("result"))
        elif kind == CLOSE:
            return f"{self.name} hub closed by server: {message.get('error') or 'no reason'}"
        elif kind == PING_TYPE:
            self.stats["pings_received"] += 1
        return None

    def _emit(self, state: ConnectionState, detail: str) -> None:
        try:
            self._on_state(state, detail)
        except Exception:
            log.exception("%s hub: state listener failed", self.name)

    def _fail_pending(self, reason: str) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(HubError(f"{self.name} hub: {reason}"))

    # -- opening -----------------------------------------------------------------------------------
    async def _open(self, token: str) -> tuple[ClientConnection, str]:
        url, socket_token = self.url, token
        params: dict[str, str] = {}
        if not self.options.skip_negotiation:
            url, params, socket_token = await self._negotiate(token)
        params["access_token"] = socket_token
        target = ws_url(url, params)
        try:
            ws = await self._connector(target)  # bounded by the connector's own open timeout
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status == 401:
                raise HubAuthRejectedError(f"{self.name} hub: HTTP 401") from None
            raise HubError(f"{self.name} hub: HTTP {status} at the upgrade") from None
        timer = self._clock.call_later(self.options.handshake_timeout, lambda: abort(ws))
        try:
            leftover = await self._handshake(ws)
        except BaseException:
            await self._close_ws(ws)
            raise
        finally:
            timer.cancel()
        return ws, leftover

    async def _handshake(self, ws: ClientConnection) -> str:
        await ws.send(HANDSHAKE)
        buffer = ""
        while True:
            frame = await ws.recv()
            text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
            records, buffer = split_records(buffer, text)
            if records:
                first, rest = records[0], records[1:]
                answer = loads(first)
                if not isinstance(answer, dict):
                    raise HubError(f"{self.name} hub: bad handshake answer")
                if answer.get("error"):
                    raise HubError(f"{self.name} hub refused the handshake: {answer['error']}")
                # Records that came in the same frame as the handshake answer are kept.
                return "".join(r + RS for r in rest) + buffer

    async def _negotiate(self, token: str) -> tuple[str, dict[str, str], str]:
        if self._http is None:
            raise HubError("negotiation needs an HTTP client")
        url, socket_token = _http_url(self.url), token
        for _ in range(4):  # the negotiate answer may redirect (Azure SignalR style)
            try:
                answer = await self._http.post(
                    f"{url}/negotiate",
                    None,
                    token=socket_token,
                    params={"negotiateVersion": "1", "access_token": socket_token},
                )
            except (NotSentError, NoAnswerError) as exc:
                raise HubError(f"{self.name} negotiate: {exc}") from None
            if answer.status == 401:
                raise HubAuthRejectedError(f"{self.name} negotiate: HTTP 401")
            body = answer.body
            if answer.status != 200 or not isinstance(body, dict):
                raise HubError(f"{self.name} negotiate: HTTP {answer.status}")
            if body.get("error"):
                raise HubError(f"{self.name} negotiate refused: {body['error']}")
            if isinstance(body.get("url"), str):
                url = _http_url(body["url"]).rstrip("/")
                socket_token = str(body.get("accessToken") or socket_token)
                continue
            transports = body.get("availableTransports")
            if (
                isinstance(transports, list)
                and transports
                and not any(
                    isinstance(t, dict) and t.get("transport") == "WebSockets" for t in transports
                )
            ):
                raise HubError(f"{self.name} negotiate: the server offers no WebSockets")
            version = body.get("negotiateVersion", 0)
            key = "connectionToken" if isinstance(version, int) and version >= 1 else ""
            connection_id = body.get(key) if key else None
            connection_id = connection_id or body.get("connectionId")
            if not isinstance(connection_id, str):
                raise HubError(f"{self.name} negotiate: no connection id")
            return url, {"id": connection_id}, socket_token
        raise HubError(f"{self.name} negotiate: too many redirects")

    async def _default_connect(self, url: str) -> ClientConnection:
        return await connect(
            url,
            open_timeout=self.options.handshake_timeout,
            ping_interval=None,  # SignalR pings (type 6) and our silence timer do this job
            close_timeout=self.options.close_timeout,
            max_size=2**24,
            proxy=None,
            logger=logging.getLogger(WS_LOGGER_NAME),
        )

    async def _close_ws(self, ws: ClientConnection) -> None:
        """A polite close, cut short after ``close_timeout`` (asyncio.timeout, which unlike
        wait_for never swallows a cancellation)."""
        try:
            async with asyncio.timeout(self.options.close_timeout):
                await ws.close()
        except (TimeoutError, Exception):
            abort(ws)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = [
    "HubAuthRejectedError",
    "HubClient",
    "HubError",
    "HubOptions",
    "HubTokens",
    "backoff_delay",
    "split_records",
    "wait_event",
    "ws_url",
]
