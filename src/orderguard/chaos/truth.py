"""Where the chaos checks read broker truth, and how the outside actor reaches the platform.

The invariant checks (:mod:`orderguard.chaos.invariants`, :mod:`orderguard.chaos.bounds`) are pure
functions of a :class:`~orderguard.chaos.invariants.BrokerTruth`. A :class:`TruthSource` says where
that truth comes from:

* :class:`ExchangeTruth` — the simulated exchange in this process (the deterministic runner);
* :class:`GatewayTruth` — ``GET /control/truth`` of ``orderguard gateway`` (chaos over the wire:
  the server's own book, read without a ProjectX token and outside its rate limits);
* :class:`RestTruth` — any ProjectX-compatible server without a control API: ``Order/search``
  and ``Position/searchOpen`` through a session of its own (slower, rate-limited: quiet points
  only).

A :class:`Platform` is the trading platform acting on the same account (the outside actor of the
workload): the exchange's own methods in process, the gateway's ``/control`` actions over the wire.
Both implementations in process run without suspending, so the deterministic runner replays as
before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import httpx2

from orderguard.broker.projectx import wire
from orderguard.broker.sim import SimExchange
from orderguard.chaos.invariants import BrokerTruth
from orderguard.errors import BrokerError
from orderguard.models import Order, OrderRequest, Position


class TruthSource(Protocol):
    async def read(self, account_id: int) -> BrokerTruth:
        """Every order of the account (any status) and its open positions, from the broker."""
        ...


class ExchangeTruth:
    """The simulated exchange of this process."""

    def __init__(self, exchange: SimExchange) -> None:
        self.exchange = exchange

    async def read(self, account_id: int) -> BrokerTruth:
        return self.snapshot(account_id)

    def snapshot(self, account_id: int) -> BrokerTruth:
        return BrokerTruth(
            tuple(self.exchange.orders(account_id)), tuple(self.exchange.positions(account_id))
        )


class ControlClient:
    """The gateway simulator's loopback control API (``/control/...``). A refusal, or no
    answer, raises :class:`~orderguard.errors.BrokerError`."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx2.AsyncClient(base_url=self.base_url, timeout=timeout, trust_env=False)

    async def get(self, name: str) -> dict[str, Any]:
        try:
            answer = await self._http.get(f"/control/{name}")
        except httpx2.HTTPError as exc:
            raise BrokerError(f"control API {name}: {type(exc).__name__}") from None
        return self._checked(name, answer)

    async def post(self, name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            answer = await self._http.post(
                f"/control/{name}",
                content=wire.dumps(body or {}),  # Decimal prices as JSON numbers
                headers={"Content-Type": "application/json"},
            )
        except httpx2.HTTPError as exc:
            raise BrokerError(f"control API {name}: {type(exc).__name__}") from None
        return self._checked(name, answer)

    @staticmethod
    def _checked(name: str, answer: httpx2.Response) -> dict[str, Any]:
        if answer.status_code != 200:
            raise BrokerError(f"control API {name}: HTTP {answer.status_code} {answer.text}")
        data = answer.json()
        if not isinstance(data, dict):
            raise BrokerError(f"control API {name}: not an object")
        return data

    async def aclose(self) -> None:
        await self._http.aclose()


def decode_truth(payload: dict[str, Any], account_id: int) -> BrokerTruth:
    """One account's orders and positions out of a ``/control/truth`` answer."""
    for account in payload.get("accounts", ()):
        if account.get("account", {}).get("id") == account_id:
            orders = tuple(wire.decode_order(o) for o in account.get("orders", ()))
            positions = tuple(
                p for p in (wire.decode_position(p) for p in account.get("positions", ())) if p.size
            )
            return BrokerTruth(orders, positions)
    raise BrokerError(f"the gateway has no account {account_id}")


class GatewayTruth:
    """``orderguard gateway``'s own book, through its control API."""

    def __init__(self, control: ControlClient) -> None:
        self.control = control

    async def read(self, account_id: int) -> BrokerTruth:
        return decode_truth(await self.control.get("truth"), account_id)


class _RestReader(Protocol):
    async def search_orders(
        self, account_id: int, start: datetime, end: datetime | None = None
    ) -> list[Order]: ...

    async def search_positions(self, account_id: int) -> list[Position]: ...


class RestTruth:
    """Any ProjectX server: its REST answers, through a session that is not the client's."""

    def __init__(self, reader: _RestReader, since: datetime) -> None:
        self.reader = reader
        self.since = since

    async def read(self, account_id: int) -> BrokerTruth:
        orders = await self.reader.search_orders(account_id, self.since)
        positions = await self.reader.search_positions(account_id)
        return BrokerTruth(tuple(orders), tuple(positions))


# -- the outside actor's way in ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PlatformResult:
    success: bool
    order_id: int | None = None


class Platform(Protocol):
    """The trading platform on the same account (the web UI), not through orderguard."""

    async def positions(self, account_id: int) -> list[Position]: ...

    async def open_orders(self, account_id: int) -> list[Order]: ...

    async def close(self, account_id: int, contract_id: str) -> PlatformResult: ...

    async def partial_close(
        self, account_id: int, contract_id: str, size: int
    ) -> PlatformResult: ...

    async def cancel(self, account_id: int, order_id: int) -> PlatformResult: ...

    async def place(self, request: OrderRequest) -> PlatformResult: ...


class ExchangePlatform:
    """The simulated exchange's own methods (no suspension: the runner stays replayable)."""

    def __init__(self, exchange: SimExchange) -> None:
        self.exchange = exchange

    async def positions(self, account_id: int) -> list[Position]:
        return list(self.exchange.positions(account_id))

    async def open_orders(self, account_id: int) -> list[Order]:
        return list(self.exchange.open_orders(account_id))

    async def close(self, account_id: int, contract_id: str) -> PlatformResult:
        r = self.exchange.close_position(account_id, contract_id)
        return PlatformResult(r.success, r.order_id)

    async def partial_close(self, account_id: int, contract_id: str, size: int) -> PlatformResult:
        r = self.exchange.partial_close(account_id, contract_id, size)
        return PlatformResult(r.success, r.order_id)

    async def cancel(self, account_id: int, order_id: int) -> PlatformResult:
        r = self.exchange.cancel(account_id, order_id)
        return PlatformResult(r.success, order_id)

    async def place(self, request: OrderRequest) -> PlatformResult:
        r = self.exchange.place(request)
        return PlatformResult(r.success, r.order_id)


class GatewayPlatform:
    """The gateway simulator's platform actions (``/control/orders/...``, ``positions/close``)."""

    def __init__(self, control: ControlClient) -> None:
        self.control = control
        self.truth = GatewayTruth(control)

    async def positions(self, account_id: int) -> list[Position]:
        return list((await self.truth.read(account_id)).positions)

    async def open_orders(self, account_id: int) -> list[Order]:
        return [o for o in (await self.truth.read(account_id)).orders if o.is_working]

    async def close(self, account_id: int, contract_id: str) -> PlatformResult:
        body = {"accountId": account_id, "contractId": contract_id}
        return _result(await self.control.post("positions/close", body))

    async def partial_close(self, account_id: int, contract_id: str, size: int) -> PlatformResult:
        body = {"accountId": account_id, "contractId": contract_id, "size": size}
        return _result(await self.control.post("positions/close", body))

    async def cancel(self, account_id: int, order_id: int) -> PlatformResult:
        body = {"accountId": account_id, "orderId": order_id}
        return _result(await self.control.post("orders/cancel", body))

    async def place(self, request: OrderRequest) -> PlatformResult:
        return _result(await self.control.post("orders/place", wire.encode_place(request)))


def _result(payload: dict[str, Any]) -> PlatformResult:
    order_id = payload.get("orderId")
    return PlatformResult(payload.get("errorCode") == 0, order_id if order_id else None)


__all__ = [
    "ControlClient",
    "ExchangePlatform",
    "ExchangeTruth",
    "GatewayPlatform",
    "GatewayTruth",
    "Platform",
    "PlatformResult",
    "RestTruth",
    "TruthSource",
    "decode_truth",
]
