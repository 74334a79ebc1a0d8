"""The two SignalR hubs, ``/hubs/user`` and ``/hubs/market``, over WebSockets.

A connection authenticates with ``access_token`` (query) or a bearer header, optionally after a
``negotiate`` (versions 0 and 1), does the JSON handshake and then invokes ``Subscribe*`` /
``Unsubscribe*`` methods (§6.2). Subscriptions belong to the connection: a reconnect starts with
none, as on the real server (§6.4). Events reach each subscribed connection through its own
outbox, written by one writer task, so a slow client never blocks the exchange or the others.

User events (§6.3) carry one argument, ``{"action": n, "data": {...}}`` by default (action 0 for
an entity seen for the first time, 1 for an update, 2 for a position that went flat —
UNCONFIRMED meanings) or the bare entity with ``user_event_shape=bare``. Market events carry
two, ``(contractId, payload)``; a new quote or depth subscriber first gets a snapshot (depth
opens with a Reset level).

Event faults (drop, duplicate, delay, reorder) act per hub in :meth:`HubServer._deliver`; a
silenced hub sends nothing (not even pings) while its sockets stay open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from orderguard.broker.base import AccountEvent, BrokerEvent, OrderEvent, PositionEvent, TradeEvent
from orderguard.broker.sim import SimExchange
from orderguard.clock import Clock

from . import signalr
from .auth import TokenClaims, TokenIssuer, bearer_token
from .config import GatewayConfig, UserEventShape
from .faults import EventFault, FaultBoard
from .market import MarketFeed, MarketUpdate
from .wire import account_json, order_json, position_json, trade_json

log = logging.getLogger("orderguard.gateway.hubs")

USER_METHODS = {
    "subscribeaccounts": ("accounts", None, True),
    "unsubscribeaccounts": ("accounts", None, False),
    "subscribeorders": ("orders", int, True),
    "unsubscribeorders": ("orders", int, False),
    "subscribepositions": ("positions", int, True),
    "unsubscribepositions": ("positions", int, False),
    "subscribetrades": ("trades", int, True),
    "unsubscribetrades": ("trades", int, False),
}
MARKET_METHODS = {
    "subscribecontractquotes": ("quotes", str, True),
    "unsubscribecontractquotes": ("quotes", str, False),
    "subscribecontracttrades": ("trades", str, True),
    "unsubscribecontracttrades": ("trades", str, False),
    "subscribecontractmarketdepth": ("depth", str, True),
    "unsubscribecontractmarketdepth": ("depth", str, False),
}
HANDSHAKE_TIMEOUT = 15.0


class Action:
    """The user-hub ``action`` wrapper values (UNCONFIRMED, from the Admin API's docs)."""

    CREATED = 0
    UPDATED = 1
    DELETED = 2


@dataclass(eq=False)
class HubConnection:
    """One accepted WebSocket of one hub."""

    hub: str
    websocket: WebSocket
    claims: TokenClaims
    connection_id: str
    subscriptions: dict[str, set[Any]] = field(default_factory=dict)
    outbox: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    last_received: float = field(default_factory=time.monotonic)
    closing: bool = False
    writer: asyncio.Task[None] | None = None

    def subscribed(self, kind: str, key: Any) -> bool:
        return key in self.subscriptions.get(kind, ())

    def send(self, text: str) -> None:
        if not self.closing:
            self.outbox.put_nowait(text)


@dataclass(slots=True)
class _Negotiation:
    connection_id: str
    expires: float


class HubServer:
    """Both hubs: connections, negotiation ids, event fan-out, and the hub-level faults."""

    def __init__(
        self,
        config: GatewayConfig,
        exchange: SimExchange,
        tokens: TokenIssuer,
        market: MarketFeed,
        faults: FaultBoard,
        clock: Clock,
    ) -> None:
        self._config = config
        self._clock = clock
        self._exchange = exchange
        self._tokens = tokens
        self._market = market
        self._faults = faults
        self.connections: dict[str, list[HubConnection]] = {"user": [], "market": []}
        self._negotiations: dict[str, _Negotiation] = {}
        self._silent_until: dict[str, float] = {"user": 0.0, "market": 0.0}
        self._held: dict[str, list[Callable[[], None]]] = {"user": [], "market": []}
        self._seen_orders: set[int] = set()
        self._seen_positions: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.events_sent = 0

    # -- negotiation ----------------------------------------------------------------------------
    def negotiate(self, version: int) -> dict[str, Any]:
        now = time.monotonic()
        for token, pending in list(self._negotiations.items()):
            if pending.expires < now:
                del self._negotiations[token]
        connection_id = secrets.token_urlsafe(16)
        connection_token = secrets.token_urlsafe(16) if version >= 1 else connection_id
        self._negotiations[connection_token] = _Negotiation(
            connection_id, now + self._config.negotiate_ttl
        )
        return signalr.negotiate_response(connection_id, connection_token, version)

    # -- one connection -------------------------------------------------------------------------
    async def serve(self, websocket: WebSocket, hub: str) -> None:
        token = websocket.query_params.get("access_token") or bearer_token(
            websocket.headers.get("authorization")
        )
        check = self._tokens.check(token)
        if not check.ok or check.claims is None:
            await _deny(websocket, 401)
            return
        connection_id = secrets.token_urlsafe(16)
        negotiated = websocket.query_params.get("id")
        if negotiated is not None:
            pending = self._negotiations.pop(negotiated, None)
            if pending is None:
                await _deny(websocket, 404)  # ASP.NET: "No Connection with that ID"
                return
            connection_id = pending.connection_id
        await websocket.accept()
        connection = HubConnection(hub, websocket, check.claims, connection_id)
        writer = asyncio.create_task(self._write(connection), name=f"hub-{hub}-writer")
        connection.writer = writer
        try:
            if not await self._handshake(connection):
                return
            self.connections[hub].append(connection)
            log.info("hub %s: connection %s opened", hub, connection_id[:6])
            keepalive = asyncio.create_task(self._keepalive(connection))
            try:
                await self._read(connection)
            finally:
                keepalive.cancel()
        finally:
            with contextlib.suppress(ValueError):
                self.connections[hub].remove(connection)
            connection.closing = True
            connection.outbox.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, 5)
            if websocket.client_state is WebSocketState.CONNECTED:
                with contextlib.suppress(Exception):
                    await websocket.close()
            log.info("hub %s: connection %s closed", hub, connection_id[:6])

    async def _handshake(self, connection: HubConnection) -> bool:
        try:
            text = await asyncio.wait_for(connection.websocket.receive_text(), HANDSHAKE_TIMEOUT)
            messages = list(signalr.split_records(text))
        except (TimeoutError, WebSocketDisconnect, signalr.ProtocolError, KeyError, RuntimeError):
            return False
        if not messages:
            return False
        error = signalr.check_handshake(messages[0])
        if error is not None:
            connection.outbox.put_nowait(signalr.handshake_error(error))
            return False
        connection.outbox.put_nowait(signalr.HANDSHAKE_OK)
        for message in messages[1:]:
            self._dispatch(connection, message)
        return True

    async def _read(self, connection: HubConnection) -> None:
        websocket = connection.websocket
        while True:
            try:
                received = await websocket.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if received["type"] == "websocket.disconnect":
                return
            text = received.get("text")
            if text is None and received.get("bytes") is not None:
                text = received["bytes"].decode("utf-8", "replace")
            connection.last_received = time.monotonic()
            try:
                messages = list(signalr.split_records(text or ""))
            except signalr.ProtocolError as exc:
                connection.send(signalr.close(str(exc), allow_reconnect=False))
                return
            for message in messages:
                if message.get("type") == signalr.MessageType.CLOSE:
                    return
                self._dispatch(connection, message)

    async def _write(self, connection: HubConnection) -> None:
        websocket = connection.websocket
        while True:
            text = await connection.outbox.get()
            if text is None:
                return
            if self._silent(connection.hub):
                continue
            try:
                await websocket.send_text(text)
            except Exception:  # the peer is gone; the reader sees the disconnect
                return

    async def _keepalive(self, connection: HubConnection) -> None:
        interval = self._config.keep_alive_interval
        while True:
            await asyncio.sleep(interval)
            connection.send(signalr.PING)
            idle = time.monotonic() - connection.last_received
            if idle > self._config.client_timeout:
                connection.send(
                    signalr.close("Server timeout elapsed without receiving a message.")
                )
                await self._abort(connection, flush=True)
                return
            expiring = self._config.hub_close_on_token_expiry
            if expiring and not self._tokens.still_valid(connection.claims):
                connection.send(signalr.close("Token expired.", allow_reconnect=True))
                await self._abort(connection, flush=True)
                return

    # -- invocations ----------------------------------------------------------------------------
    def _dispatch(self, connection: HubConnection, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == signalr.MessageType.PING:
            return
        invocation_id = message.get("invocationId")
        if kind in (signalr.MessageType.STREAM_INVOCATION, signalr.MessageType.STREAM_ITEM):
            if isinstance(invocation_id, str):
                connection.send(
                    signalr.completion(invocation_id, error="This hub has no streaming methods.")
                )
            return
        if kind != signalr.MessageType.INVOCATION:
            return
        target = message.get("target")
        arguments = message.get("arguments", [])
        error = self._invoke(connection, target, arguments)
        if isinstance(invocation_id, str):
            connection.send(signalr.completion(invocation_id, error=error))
        elif error is not None:
            log.info("hub %s: %s", connection.hub, error)

    def _invoke(self, connection: HubConnection, target: Any, arguments: Any) -> str | None:
        methods = USER_METHODS if connection.hub == "user" else MARKET_METHODS
        if not isinstance(target, str) or target.lower() not in methods:
            return f"Failed to invoke '{target}' because it does not exist."
        if not isinstance(arguments, list):
            return f"Failed to invoke '{target}': arguments must be an array."
        kind, arg_type, subscribe = methods[target.lower()]
        expected = 0 if arg_type is None else 1
        if len(arguments) != expected:
            return (
                f"Failed to invoke '{target}' due to an error on the server. "
                f"InvalidDataException: Invocation provides {len(arguments)} argument(s) but "
                f"target expects {expected}."
            )
        key: Any = None
        if arg_type is int:
            value = arguments[0]
            if isinstance(value, bool) or not isinstance(value, int):
                return _binding_error(target)
            key = value
        elif arg_type is str:
            if not isinstance(arguments[0], str):
                return _binding_error(target)
            key = arguments[0]
        bucket = connection.subscriptions.setdefault(kind, set())
        if subscribe:
            bucket.add(key)
            if connection.hub == "market":
                self._market_snapshot(connection, kind, key)
        else:
            bucket.discard(key)
        return None

    def _market_snapshot(self, connection: HubConnection, kind: str, contract_id: str) -> None:
        contract = self._exchange.contract(contract_id)
        if (
            contract is None
            or contract.id != contract_id
            or self._exchange.quote(contract_id) is None
        ):
            return
        now = self._clock.now()
        if kind == "quotes":
            payload = self._market.quote_payload(contract, now)
            connection.send(signalr.invocation("GatewayQuote", [contract_id, payload]))
        elif kind == "depth":
            levels = self._market.depth_payload(contract, now, reset=True)
            connection.send(signalr.invocation("GatewayDepth", [contract_id, levels]))

    # -- fan-out --------------------------------------------------------------------------------
    def on_event(self, event: BrokerEvent) -> None:
        """An exchange event (called synchronously by the exchange's listener)."""
        if isinstance(event, OrderEvent):
            order = event.order
            action = Action.UPDATED if order.id in self._seen_orders else Action.CREATED
            self._seen_orders.add(order.id)
            contract = self._exchange.contract(order.contract_id)
            symbol = contract.symbol_id if contract else ""
            data = order_json(order, symbol, extras=self._config.order_extras)
            self._user("GatewayUserOrder", "orders", order.account_id, action, data)
        elif isinstance(event, PositionEvent):
            position = event.position
            if position.size == 0:
                action = Action.DELETED
            elif position.id in self._seen_positions:
                action = Action.UPDATED
            else:
                action = Action.CREATED
            self._seen_positions.add(position.id)
            data = position_json(position)
            self._user("GatewayUserPosition", "positions", position.account_id, action, data)
        elif isinstance(event, TradeEvent):
            trade = event.trade
            self._user("GatewayUserTrade", "trades", trade.account_id, Action.CREATED,
                       trade_json(trade))  # fmt: skip
        elif isinstance(event, AccountEvent):
            account = event.account
            self._user("GatewayUserAccount", "accounts", None, Action.UPDATED,
                       account_json(account))  # fmt: skip

    def _user(self, target: str, kind: str, key: Any, action: int, data: dict[str, Any]) -> None:
        if not self.connections["user"]:
            return
        argument: Any = data
        if self._config.user_event_shape is UserEventShape.ACTION:
            argument = {"action": action, "data": data}
        text = signalr.invocation(target, [argument])
        receivers = [c for c in self.connections["user"] if c.subscribed(kind, key)]
        if receivers:
            self._deliver("user", text, receivers)

    def on_market(self, update: MarketUpdate) -> None:
        connections = self.connections["market"]
        if not connections:
            return
        cid = update.contract_id
        for kind, target, payload in (
            ("quotes", "GatewayQuote", update.quote),
            ("trades", "GatewayTrade", update.trades),
            ("depth", "GatewayDepth", update.depth),
        ):
            receivers = [c for c in connections if c.subscribed(kind, cid)]
            if receivers:
                self._deliver("market", signalr.invocation(target, [cid, payload]), receivers)

    def _deliver(self, hub: str, text: str, receivers: list[HubConnection]) -> None:
        fault = self._faults.take_event(hub)

        def send() -> None:
            for connection in receivers:
                connection.send(text)
            self.events_sent += 1

        kind = fault.kind if fault else None
        if kind is EventFault.DROP:
            log.info("fault: dropped a %s-hub event", hub)
        elif kind is EventFault.DUPLICATE:
            send()
            send()
        elif kind is EventFault.EVENT_DELAY and fault is not None:
            asyncio.get_running_loop().call_later(fault.seconds, send)
        elif kind is EventFault.REORDER:
            self._held[hub].append(send)  # goes out right after the next event
        else:
            send()
            held, self._held[hub] = self._held[hub], []
            for release in held:
                release()

    # -- hub-level control ----------------------------------------------------------------------
    def _silent(self, hub: str) -> bool:
        return time.monotonic() < self._silent_until[hub]

    def silence(self, hub: str, seconds: float) -> None:
        """Send nothing on ``hub`` (events, completions, pings) for ``seconds``; sockets stay."""
        self._silent_until[hub] = time.monotonic() + seconds

    async def disconnect(self, hub: str, *, graceful: bool = False) -> int:
        """Close every connection of ``hub`` now; ``graceful`` sends a Close message first."""
        connections = list(self.connections[hub])
        for connection in connections:
            if graceful:
                connection.send(signalr.close("Connection closed by the server."))
            await self._abort(connection, flush=graceful)
        return len(connections)

    async def end_session(self, session_id: str) -> int:
        """A logged-out or revoked session: GatewayLogout, then its sockets are closed."""
        closed = 0
        for hub in ("user", "market"):
            for connection in list(self.connections[hub]):
                if connection.claims.session_id == session_id:
                    connection.send(signalr.invocation("GatewayLogout", []))
                    connection.send(signalr.close("Session ended.", allow_reconnect=False))
                    await self._abort(connection, flush=True)
                    closed += 1
        return closed

    async def _abort(self, connection: HubConnection, *, flush: bool = False) -> None:
        writer = connection.writer
        if flush and writer is not None and not writer.done():
            # The writer sends what is queued (a Close message) and stops at the sentinel.
            connection.outbox.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(writer), 1.0)
        connection.closing = True
        with contextlib.suppress(ValueError):
            self.connections[connection.hub].remove(connection)
        with contextlib.suppress(Exception):
            await connection.websocket.close(code=1011 if not flush else 1000)

    def stats(self) -> dict[str, Any]:
        return {
            hub: {
                "connections": len(conns),
                "silent": self._silent(hub),
                "subscriptions": [
                    {k: sorted(map(str, v)) for k, v in c.subscriptions.items()} for c in conns
                ],
            }
            for hub, conns in self.connections.items()
        } | {"eventsSent": self.events_sent}


def _binding_error(target: str) -> str:
    return (
        f"Failed to invoke '{target}' due to an error on the server. InvalidDataException: "
        "Error binding arguments. Make sure that the types of the provided values match the "
        "types of the hub method being invoked."
    )


async def _deny(websocket: WebSocket, status: int) -> None:
    """Refuse the upgrade with an HTTP status when the server can, else close (403)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(Response(status_code=status))
    else:
        await websocket.close(code=1008)


__all__ = ["Action", "HubConnection", "HubServer"]
