"""Fixtures for the simulated exchange: a virtual clock, an exchange with one account, a market."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from orderguard.broker.base import BrokerEvent
from orderguard.broker.sim import ExchangeRules, SimExchange
from orderguard.clock import VirtualClock
from orderguard.models import OrderRequest, OrderSide, OrderType

MNQ = "CON.F.US.MNQ.Z26"
START = Decimal("21000.00")

RequestFactory = Callable[..., OrderRequest]
MarketFactory = Callable[..., SimExchange]


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def exchange(clock: VirtualClock) -> SimExchange:
    """An exchange with account 1 (native brackets on, max 50 contracts) and no price yet."""
    ex = SimExchange(clock)
    ex.open_account(account_id=1, name="SIM-1", balance=Decimal("50000"))
    return ex


@pytest.fixture
def market(exchange: SimExchange) -> SimExchange:
    """The same exchange with MNQ priced at 21000.00 (bid 21000.00, ask 21000.25)."""
    exchange.set_price(MNQ, START)
    return exchange


@pytest.fixture
def make_market(clock: VirtualClock) -> MarketFactory:
    """``make_market(rules, liquidity=None)``: a fresh exchange like ``market`` under ``rules``."""

    def build(rules: ExchangeRules | None = None, *, liquidity: int | None = None) -> SimExchange:
        ex = SimExchange(clock, liquidity=liquidity, rules=rules)
        ex.open_account(account_id=1, name="SIM-1", balance=Decimal("50000"))
        ex.set_price(MNQ, START)
        return ex

    return build


@pytest.fixture
def events(exchange: SimExchange) -> list[BrokerEvent]:
    """Every event the exchange emits from now on."""
    seen: list[BrokerEvent] = []
    exchange.listen(seen.append)
    return seen


@pytest.fixture
def req() -> RequestFactory:
    """Build a request for account 1 on MNQ: ``req(OrderType.LIMIT, "buy", 2, limit_price=p)``."""

    def build(kind: OrderType, side: str | OrderSide, size: int = 1, **fields: Any) -> OrderRequest:
        if isinstance(side, str):
            side = OrderSide.BUY if side == "buy" else OrderSide.SELL
        fields.setdefault("account_id", 1)
        fields.setdefault("contract_id", MNQ)
        return OrderRequest(type=kind, side=side, size=size, **fields)

    return build
