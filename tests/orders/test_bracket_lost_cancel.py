"""A bracket going flat re-sends a lost exit cancel at once (chaos seed 5995).

The target's cancel never reached the exchange (an unknown outcome). The manager then polled the
order through the whole status-check schedule (about 5 s) before the saga could send the cancel
again, so the target worked on for seconds after the flatten had made the contract flat (I2).
The saga retries on its own backoff: the order is read once, and the cancel sent again.
"""

from __future__ import annotations

from orderguard.broker.base import Outcome, Unknown, UnknownOrigin
from orderguard.broker.sim import SimBroker
from orderguard.models import OrderType

from .bracket_helpers import BUY, MNQ, D, make_rig


class LosesFirstCancel:
    """The first cancel of an order never arrives (the fault plan's ``lost``)."""

    def __init__(self, inner: SimBroker) -> None:
        self._inner = inner
        self.cancels: list[int] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def cancel_order(self, account_id: int, order_id: int) -> Outcome:
        self.cancels.append(order_id)
        if self.cancels.count(order_id) == 1:
            return Unknown(UnknownOrigin.CONNECTION_LOST, "never arrived")
        return await self._inner.cancel_order(account_id, order_id)


async def test_a_lost_target_cancel_is_sent_again_promptly_after_the_flatten() -> None:
    rig = await make_rig(wrap=LosesFirstCancel)  # type: ignore[arg-type]
    broker = rig.broker
    assert isinstance(broker, LosesFirstCancel)
    r = await rig.run(
        rig.manager.place_bracket_order(
            MNQ, BUY, 2, None, D("20990"), D("21010"), entry_type="market", native=False
        )
    )
    assert rig.position() == 2 and len(rig.working()) == 2
    (target,) = rig.working(OrderType.LIMIT)
    await rig.run(rig.manager.close_bracket(r.operation_id))
    await rig.settle(1.5)  # the flatten, one lost cancel, one read, the cancel again
    assert rig.position() == 0
    assert rig.working() == [], rig.working()
    assert broker.cancels.count(target.id) == 2
    done = await rig.run(rig.manager.wait_for_completion(r.operation_id), 30.0)
    assert done.finished and done.owned_size == 0
    await rig.manager.cleanup()
