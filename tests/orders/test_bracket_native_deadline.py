"""Native children unknown at the protection deadline are looked for, not flattened under.

Chaos seed 1442 (all faults): a native market bracket filled; the children's events were lost
and the REST look-ups for them were slow, so the protection deadline passed while the saga did
not know its children. It flattened the fill and left both children (stop and target, no tag)
working on a flat contract (I2) — while the server's children had protected the fill all along.
Now the deadline waits for the look-up (bounded by ``max_attempts`` failed look-ups).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from hypothesis import given
from hypothesis import strategies as st

from orderguard.broker.base import BrokerEvent, EventHandler, OrderEvent, Subscription
from orderguard.broker.sim import SimBroker
from orderguard.models import Order
from orderguard.orders.bracket.plan import BracketFacts, GoFlat, flat_reason, plan
from orderguard.orders.bracket.values import BracketOutcome

from .bracket_helpers import BUY, MNQ, D, make_rig
from .test_bracket_plan import facts_st

SLOW_SEARCH = 4.0  # seconds per order search: past the flatten point (2.5 s by default)


class _LostChildrenSlowSearch:
    """Wraps a SimBroker: the children's order events are lost and the first order searches
    are slow (the chaos run's event loss in a reconnect gap and delayed queries)."""

    def __init__(self, inner: SimBroker) -> None:
        self._inner = inner
        self.slow = 0  # how many of the next order searches are slow

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def subscribe(self, handler: EventHandler) -> Subscription:
        def without_children(event: BrokerEvent) -> None:
            if isinstance(event, OrderEvent) and event.order.parent_order_id is not None:
                return
            handler(event)

        return self._inner.subscribe(without_children)

    async def search_orders(
        self, account_id: int, start: datetime, end: datetime | None = None
    ) -> list[Order]:
        if self.slow > 0:
            self.slow -= 1
            await self._inner.clock.sleep(SLOW_SEARCH)
        return await self._inner.search_orders(account_id, start, end)


async def test_a_slow_children_lookup_does_not_flatten_a_protected_fill() -> None:
    rig = await make_rig(native=True, wrap=_LostChildrenSlowSearch)  # type: ignore[arg-type]
    assert isinstance(rig.broker, _LostChildrenSlowSearch)
    rig.broker.slow = 2
    r = await rig.run(
        rig.manager.place_bracket_order(
            MNQ, BUY, 2, None, D("20990"), D("21010"), entry_type="market"
        )
    )
    await rig.settle(15.0)
    flattens = [o for o in rig.ex.orders(1) if o.custom_tag and "-flatten" in o.custom_tag]
    assert flattens == []
    assert rig.position() == 2
    # Protected by the server's children only: no client-side leg beside them either.
    children = [o for o in rig.working() if o.parent_order_id == r.entry_order_id]
    assert len(children) == 2 and len(rig.working()) == 2
    status = rig.manager.get_bracket_status(r.operation_id)
    assert status is not None and status.outcome is BracketOutcome.PROTECTED
    await rig.manager.cleanup()


@given(facts_st, st.integers(min_value=0, max_value=6))
def test_the_deadline_waits_for_unknown_children_for_a_bounded_number_of_lookups(
    f: BracketFacts, failures: int
) -> None:
    """Past the deadline with the native children unknown, the deadline sends the saga flat
    only once ``max_attempts`` look-ups for them failed."""
    f = replace(f, children_search_failures=failures)
    decision = plan(f)
    reasons = (
        [a.reason for a in decision if isinstance(a, GoFlat)] if isinstance(decision, list) else []
    )
    if f.going_flat is None and f.owned > 0 and f.deadline_passed and f.children_unknown:
        deadline = [r for r in reasons if "deadline" in r]
        if failures < f.max_attempts:
            assert deadline == []
        elif flat_reason(replace(f, deadline_passed=False)) is None:
            assert deadline != []
