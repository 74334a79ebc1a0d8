"""Faults the gateway can be told to inject, as data: which request or event, and what happens.

The kinds are the fault wrapper's (:class:`~orderguard.broker.faults.FaultKind`, same names and
meanings) translated to what a client on the wire can see, plus a few only a server can do:

=========================== ========== ==================================================
kind                        executes?  what the client sees
=========================== ========== ==================================================
reject                      no         200, success false, the endpoint's rejection code
fail_before_send, lost      no         the connection closes with no response at all
rate_limited                no         429
http_500, query_error       no         500
ambiguous                   yes        the connection closes with no response (answer lost)
server_error                yes        500
pending                     yes        200, success false, the endpoint's Pending code
unknown_code                yes        200, success false, an errorCode outside the table
rate_limited_after_send     yes        429
late                        later      the connection closes now; executes ``seconds`` later
delay                       yes        the request waits ``seconds`` before executing
hold, query_timeout         yes        the answer is held ``seconds`` (past a client timeout)
=========================== ========== ==================================================

(A server cannot make a request "provably never leave" the client: ``fail_before_send`` is the
closest it gets — nothing executed and nothing answered.)

Event faults act on one hub's outgoing events: ``drop``, ``duplicate``, ``event_delay``,
``reorder`` (held until the next event has gone), and on its connections: ``disconnect`` (sockets
closed now) and ``go_silent`` (nothing sent, not even pings, for ``seconds``; sockets stay open).

Faults are armed through the control API and fire on the next matching requests or events,
``count`` times. Pure data and bookkeeping; the ASGI layer and the hubs act on the decisions.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from orderguard.broker.projectx.codes import (
    CancelCode,
    CloseCode,
    ModifyCode,
    PartialCloseCode,
    PlaceCode,
)


class WireFault(StrEnum):
    REJECT = "reject"
    FAIL_BEFORE_SEND = "fail_before_send"
    LOST = "lost"
    RATE_LIMITED = "rate_limited"
    HTTP_500 = "http_500"
    QUERY_ERROR = "query_error"
    AMBIGUOUS = "ambiguous"
    SERVER_ERROR = "server_error"
    PENDING = "pending"
    UNKNOWN_CODE = "unknown_code"
    RATE_LIMITED_AFTER_SEND = "rate_limited_after_send"
    LATE = "late"
    DELAY = "delay"
    HOLD = "hold"
    QUERY_TIMEOUT = "query_timeout"


class EventFault(StrEnum):
    DROP = "drop"
    DUPLICATE = "duplicate"
    EVENT_DELAY = "event_delay"
    REORDER = "reorder"
    DISCONNECT = "disconnect"
    GO_SILENT = "go_silent"


NOT_EXECUTED: Final = frozenset(
    {
        WireFault.REJECT,
        WireFault.FAIL_BEFORE_SEND,
        WireFault.LOST,
        WireFault.RATE_LIMITED,
        WireFault.HTTP_500,
        WireFault.QUERY_ERROR,
    }
)
CLOSES_CONNECTION: Final = frozenset(
    {WireFault.FAIL_BEFORE_SEND, WireFault.LOST, WireFault.AMBIGUOUS, WireFault.LATE}
)
DEFAULT_SECONDS: Final = {
    WireFault.LATE: 1.0,
    WireFault.DELAY: 1.0,
    WireFault.HOLD: 60.0,  # past any sane client timeout
    WireFault.QUERY_TIMEOUT: 60.0,
}
UNKNOWN_ERROR_CODE: Final = 99  # in no endpoint's table

# Per endpoint (lower-case path below /api/): the plain rejection and the Pending code.
REJECT_CODES: Final = {
    "order/place": PlaceCode.ORDER_REJECTED,
    "order/cancel": CancelCode.REJECTED,
    "order/modify": ModifyCode.REJECTED,
    "position/closecontract": CloseCode.ORDER_REJECTED,
    "position/partialclosecontract": PartialCloseCode.ORDER_REJECTED,
}
PENDING_CODES: Final = {
    "order/place": PlaceCode.ORDER_PENDING,
    "order/cancel": CancelCode.PENDING,
    "order/modify": ModifyCode.PENDING,
    "position/closecontract": CloseCode.ORDER_PENDING,
    "position/partialclosecontract": PartialCloseCode.ORDER_PENDING,
}
HUBS: Final = ("user", "market")


def reject_code(endpoint: str) -> int:
    """The endpoint's plain rejection; queries (code 1 = not found is all they have) use 1."""
    return REJECT_CODES.get(endpoint, 1)


def pending_code(endpoint: str) -> int:
    """The Pending code of a mutation; a query has none, so it gets an unknown code."""
    return PENDING_CODES.get(endpoint, UNKNOWN_ERROR_CODE)


@dataclass(slots=True)
class ArmedFault:
    """A fault waiting for its next ``count`` requests to ``target`` (``*`` = any endpoint)."""

    target: str
    kind: WireFault
    count: int = 1
    seconds: float | None = None
    code: int | None = None
    message: str | None = None

    def duration(self) -> float:
        if self.seconds is not None:
            return self.seconds
        return DEFAULT_SECONDS.get(self.kind, 0.0)


@dataclass(slots=True)
class ArmedEventFault:
    hub: str
    kind: EventFault
    count: int = 1
    seconds: float = 1.0


class FaultBoard:
    """Armed faults, consumed in the order they were armed; every firing is counted."""

    def __init__(self) -> None:
        self._requests: deque[ArmedFault] = deque()
        self._events: deque[ArmedEventFault] = deque()
        self.fired: dict[str, int] = {}

    def arm(self, fault: ArmedFault) -> None:
        if fault.count < 1:
            raise ValueError("count must be at least 1")
        if fault.seconds is not None and fault.seconds < 0:
            raise ValueError("seconds must be >= 0")
        self._requests.append(fault)

    def arm_event(self, fault: ArmedEventFault) -> None:
        if fault.hub not in HUBS:
            raise ValueError(f"hub must be one of {HUBS}")
        if fault.count < 1 or fault.seconds < 0:
            raise ValueError("count must be >= 1 and seconds >= 0")
        self._events.append(fault)

    def clear(self) -> None:
        self._requests.clear()
        self._events.clear()

    def take(self, endpoint: str) -> ArmedFault | None:
        """The fault for this request to ``endpoint`` (lower-case, below /api/), consumed."""
        for fault in self._requests:
            if fault.target in (endpoint, "*"):
                fault.count -= 1
                if fault.count == 0:
                    self._requests.remove(fault)
                self.fired[fault.kind.value] = self.fired.get(fault.kind.value, 0) + 1
                return fault
        return None

    def take_event(self, hub: str) -> ArmedEventFault | None:
        """The per-event fault (drop, duplicate, delay, reorder) for the next event of ``hub``."""
        for fault in self._events:
            if fault.hub == hub:
                fault.count -= 1
                if fault.count == 0:
                    self._events.remove(fault)
                self.fired[fault.kind.value] = self.fired.get(fault.kind.value, 0) + 1
                return fault
        return None

    def armed(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = [
            {"target": f.target, "kind": f.kind.value, "count": f.count, "seconds": f.seconds}
            for f in self._requests
        ]
        out += [
            {"target": f"hub:{f.hub}", "kind": f.kind.value, "count": f.count,
             "seconds": f.seconds}
            for f in self._events
        ]  # fmt: skip
        return out


__all__ = [
    "CLOSES_CONNECTION",
    "HUBS",
    "NOT_EXECUTED",
    "UNKNOWN_ERROR_CODE",
    "ArmedEventFault",
    "ArmedFault",
    "EventFault",
    "FaultBoard",
    "WireFault",
    "pending_code",
    "reject_code",
]
