"""A seeded fault-injecting wrapper usable around any :class:`~orderguard.broker.base.Broker`.

::

    plan = FaultPlan.mild().script("place_order#3=ambiguous", "event#10=disconnect:5")
    broker = FaultyBroker(inner, clock, plan, seed=7)
    ...
    broker.enabled = False          # a quiet point: let the system settle
    broker.fault_log, broker.fault_counts

Same seed and same call sequence give the identical fault log (see ``broker.py``).
"""

from orderguard.broker.faults.broker import FaultRecord, FaultyBroker, Storm
from orderguard.broker.faults.events import describe_event
from orderguard.broker.faults.plan import (
    MUTATION_OPS,
    QUERY_OPS,
    EventFaults,
    FaultKind,
    FaultPlan,
    MutationFaults,
    QueryFaults,
    ScriptedFault,
    StormKind,
)

__all__ = [
    "MUTATION_OPS",
    "QUERY_OPS",
    "EventFaults",
    "FaultKind",
    "FaultPlan",
    "FaultRecord",
    "FaultyBroker",
    "MutationFaults",
    "QueryFaults",
    "ScriptedFault",
    "Storm",
    "StormKind",
    "describe_event",
]
