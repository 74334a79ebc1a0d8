"""orderguard for your own tests: a whole exchange in memory, faults, a virtual clock, crashes.

Everything here runs offline and deterministically::

    from orderguard import OrderManager, OrderSide
    from orderguard.testing import FaultPlan, FaultyBroker, SimBroker, VirtualClock, kill

    clock = VirtualClock()
    sim = SimBroker.create(clock, prices={"CON.F.US.MNQ.Z26": Decimal("21000.00")})
    broker = FaultyBroker(sim, clock, FaultPlan.none().script("place_order#1=ambiguous"), seed=1)
    manager = OrderManager(broker, clock=clock, journal=journal)
    ...
    kill(manager)                             # a crash: tasks and subscription die, journal stays
    survivor = OrderManager(broker, clock=clock, journal=journal)

* the simulated exchange (:class:`SimExchange`) behind the broker port (:class:`SimBroker`), with
  a seeded latency model and a market that moves (:class:`MarketDriver` over
  :class:`RandomWalkPrices` or :class:`ScriptedPrices`);
* seeded faults around any broker (:class:`FaultyBroker`, :class:`FaultPlan`, one
  :class:`FaultKind` per way a call can go wrong, :class:`StormKind` for outages);
* the :class:`VirtualClock`, which moves only when told to (``advance``, ``run``);
* :class:`MemoryJournal`, and :class:`CountingBroker` to count the calls that reach a broker;
* :func:`kill` for crash tests.

(The chaos runner's planted bugs live under the project's ``tests/chaos/planted.py``, not here.)
"""

from orderguard.broker.faults import FaultKind, FaultPlan, FaultyBroker, ScriptedFault, StormKind
from orderguard.broker.sim import (
    ExchangeRules,
    LatencyModel,
    MarketDriver,
    RandomWalkPrices,
    ScriptedPrices,
    SimBroker,
    SimExchange,
)
from orderguard.clock import VirtualClock
from orderguard.journal.memory import MemoryJournal
from orderguard.testing.counting import CountingBroker
from orderguard.testing.crash import kill

__all__ = [
    "CountingBroker",
    "ExchangeRules",
    "FaultKind",
    "FaultPlan",
    "FaultyBroker",
    "LatencyModel",
    "MarketDriver",
    "MemoryJournal",
    "RandomWalkPrices",
    "ScriptedFault",
    "ScriptedPrices",
    "SimBroker",
    "SimExchange",
    "StormKind",
    "VirtualClock",
    "kill",
]
