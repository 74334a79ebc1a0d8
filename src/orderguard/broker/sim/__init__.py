"""The embedded simulated exchange and its Broker adapter.

:class:`SimExchange` is a synchronous, deterministic futures exchange with ProjectX semantics
(order types, statuses, ``fillVolume``, net positions, trades with realised P&L and fees,
``customTag`` uniqueness, tick alignment, native brackets with Suspended children).
:class:`SimBroker` implements the async :class:`~orderguard.broker.base.Broker` port over it
with a seeded :class:`LatencyModel`. :class:`MarketDriver` moves a market along a
:class:`RandomWalkPrices` or :class:`ScriptedPrices` path on the injected clock::

    clock = VirtualClock()
    exchange = SimExchange(clock)
    exchange.open_account(account_id=1, name="SIM-1", balance=Decimal("50000"))
    exchange.set_price("CON.F.US.MNQ.Z26", Decimal("21000.00"))
    broker = SimBroker(exchange, clock)
"""

from .broker import LatencyModel, SimBroker, SimSubscription
from .contracts import CME_ALIASES, ContractBook, default_contracts
from .driver import MarketDriver
from .exchange import ExchangeListener, SimExchange
from .matching import Quote
from .prices import RandomWalkPrices, ScriptedPrices
from .records import SimOrderResult, SimResult
from .rules import ExchangeRules

__all__ = [
    "CME_ALIASES",
    "ContractBook",
    "ExchangeListener",
    "ExchangeRules",
    "LatencyModel",
    "MarketDriver",
    "Quote",
    "RandomWalkPrices",
    "ScriptedPrices",
    "SimBroker",
    "SimExchange",
    "SimOrderResult",
    "SimResult",
    "SimSubscription",
    "default_contracts",
]
