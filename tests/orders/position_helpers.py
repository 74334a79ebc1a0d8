"""Helpers for the position-order tests: open positions and read broker truth."""

from __future__ import annotations

from orderguard.models import Order, OrderSide, OrderType

from .conftest import MNQ, Harness


async def open_position(h: Harness, signed: int, contract: str = MNQ) -> None:
    """Trade ``signed`` contracts at market (outside any bracket) and deliver the events."""
    side = OrderSide.BUY if signed > 0 else OrderSide.SELL
    await h.manager.place_market_order(contract, side, abs(signed))
    await quiet(h)


async def quiet(h: Harness, seconds: float = 0.0) -> None:
    """Let every event and background reconcile run (virtual time moves only by ``seconds``)."""
    await h.clock.advance(seconds)
    await h.clock.advance(0)


def working(h: Harness, contract: str = MNQ) -> list[Order]:
    """Working orders at the exchange (Open and Suspended), the only truth the tests trust."""
    return [o for o in h.exchange.orders(1) if o.contract_id == contract and o.is_working]


def exits(h: Harness, contract: str = MNQ) -> list[Order]:
    """Working stop and limit orders on the contract."""
    return [o for o in working(h, contract) if o.type in (OrderType.STOP, OrderType.LIMIT)]


def position(h: Harness, contract: str = MNQ) -> int:
    return h.exchange.position_size(1, contract)


def placed(h: Harness) -> int:
    return sum(1 for kind, _ in h.broker.calls if kind == "place")
