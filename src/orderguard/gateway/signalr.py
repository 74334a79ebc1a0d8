"""The ASP.NET Core SignalR JSON hub protocol, as far as the gateway needs it. Pure: no I/O.

Learned from the protocol's public description (HubProtocol.md, TransportProtocols.md): every
message is a JSON object terminated by the record separator 0x1E, and one WebSocket frame may
carry several. The client opens with a handshake ``{"protocol":"json","version":1}``, answered
``{}`` (or ``{"error": ...}``). Message types used here: 1 Invocation (``invocationId`` present
when the caller wants a 3 Completion), 3 Completion (``result`` or ``error``), 6 Ping, 7 Close
(``error``, ``allowReconnect``). Stream messages (2, 4, 5) are answered with an error completion:
ProjectX hubs have no streaming methods.

Negotiation (``POST <hub>/negotiate``): version 0 answers a ``connectionId`` that the client then
passes as ``?id=``; version 1 adds a separate ``connectionToken`` (that is what ``id`` carries)
and echoes ``negotiateVersion``. Both list the transports; we serve WebSockets only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from enum import IntEnum
from typing import Any

from .wire import dumps

RECORD_SEPARATOR = "\x1e"


class MessageType(IntEnum):
    INVOCATION = 1
    STREAM_ITEM = 2
    COMPLETION = 3
    STREAM_INVOCATION = 4
    CANCEL_INVOCATION = 5
    PING = 6
    CLOSE = 7
    ACK = 8
    SEQUENCE = 9


class ProtocolError(ValueError):
    """The peer sent something that is not this protocol; the connection is closed."""


def frame(message: Any) -> str:
    """One message as wire text (our JSON encoder, so decimals stay exact)."""
    return dumps(message) + RECORD_SEPARATOR


def split_records(text: str) -> Iterator[dict[str, Any]]:
    """The messages of one WebSocket frame. Raises :class:`ProtocolError` on garbage."""
    if not text.endswith(RECORD_SEPARATOR):
        raise ProtocolError("a message must end with the record separator 0x1E")
    for part in text.split(RECORD_SEPARATOR)[:-1]:
        try:
            message = json.loads(part)
        except ValueError:
            raise ProtocolError("a message is not valid JSON") from None
        if not isinstance(message, dict):
            raise ProtocolError("a message must be a JSON object")
        yield message


def check_handshake(message: dict[str, Any]) -> str | None:
    """None when the handshake is acceptable, else the error to answer with."""
    protocol = message.get("protocol")
    version = message.get("version")
    if protocol != "json":
        return f"The protocol '{protocol}' is not supported."
    if version != 1:
        return f"The server does not support version {version} of the '{protocol}' protocol."
    return None


HANDSHAKE_OK = frame({})
PING = frame({"type": MessageType.PING})


def handshake_error(error: str) -> str:
    return frame({"error": error})


def invocation(target: str, arguments: list[Any]) -> str:
    return frame({"type": MessageType.INVOCATION, "target": target, "arguments": arguments})


def completion(invocation_id: str, *, error: str | None = None, result: Any = None) -> str:
    message: dict[str, Any] = {"type": MessageType.COMPLETION, "invocationId": invocation_id}
    if error is not None:
        message["error"] = error
    elif result is not None:
        message["result"] = result
    return frame(message)


def close(error: str | None = None, *, allow_reconnect: bool = True) -> str:
    message: dict[str, Any] = {"type": MessageType.CLOSE}
    if error is not None:
        message["error"] = error
    message["allowReconnect"] = allow_reconnect
    return frame(message)


def negotiate_response(connection_id: str, connection_token: str, version: int) -> dict[str, Any]:
    transports = [{"transport": "WebSockets", "transferFormats": ["Text", "Binary"]}]
    if version >= 1:
        return {
            "connectionId": connection_id,
            "connectionToken": connection_token,
            "negotiateVersion": 1,
            "availableTransports": transports,
        }
    return {
        "connectionId": connection_id,
        "negotiateVersion": 0,
        "availableTransports": transports,
    }


__all__ = [
    "HANDSHAKE_OK",
    "PING",
    "RECORD_SEPARATOR",
    "MessageType",
    "ProtocolError",
    "check_handshake",
    "close",
    "completion",
    "frame",
    "handshake_error",
    "invocation",
    "negotiate_response",
    "split_records",
]
