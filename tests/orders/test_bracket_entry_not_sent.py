"""A bracket whose entry is never sent leaves no entry leg "intended" in a finished operation.

Chaos seeds 390 and 1969 (all faults): a native market bracket journaled its entry intent, then
read the last price for the children's tick offsets; the read failed (connection refused, 429),
the operation ended ``failed`` and its entry leg stayed ``intended`` forever (I5: every order of
a finished operation has a final known state). The read now comes before the intent.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from orderguard.broker.sim import SimBroker
from orderguard.errors import ConnectionFailedError, OrderGuardError
from orderguard.recovery.manager import RefStatus

from .bracket_helpers import BUY, MNQ, D, make_rig


class _PriceReadsFailAfter:
    """Wraps a SimBroker: after ``allowed`` more last-price reads, every read is refused."""

    def __init__(self, inner: SimBroker) -> None:
        self._inner = inner
        self.allowed: int | None = None

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def get_last_price(self, contract_id: str) -> Decimal | None:
        if self.allowed is not None:
            if self.allowed <= 0:
                raise ConnectionFailedError("connection refused on get_last_price")
            self.allowed -= 1
        return await self._inner.get_last_price(contract_id)


async def test_a_failed_price_read_for_native_legs_leaves_no_intended_entry() -> None:
    rig = await make_rig(native=True, wrap=_PriceReadsFailAfter)  # type: ignore[arg-type]
    assert isinstance(rig.broker, _PriceReadsFailAfter)
    rig.broker.allowed = 1  # the validation's read passes; the children's offsets read fails
    with pytest.raises(OrderGuardError):
        await rig.run(
            rig.manager.place_bracket_order(
                MNQ, BUY, 2, None, D("20990"), D("21010"), entry_type="market"
            )
        )
    assert rig.ex.orders(1) == []  # nothing was sent
    finished = [op for op in rig.manager.recovery.operation_history if op.state.is_terminal]
    assert len(finished) == 1
    assert all(
        ref.status not in (RefStatus.INTENDED, RefStatus.UNKNOWN)
        for ref in finished[0].orders.values()
    )
    await rig.manager.cleanup()
