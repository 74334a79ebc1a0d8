"""A Hypothesis state machine: random brackets, OCO pairs, fills, price paths and faults.

At every quiet point (faults off, time advanced until every saga settled) the invariants hold
from the exchange's truth:

* I1 a non-zero position is covered by working reduce-side stops of exactly its size;
* I2 no working exit remains on a flat contract;
* I3 no customTag appears twice;
* I4 an OCO pair with a filled leg has no working sibling;
* I6 every unprotected episode was shorter than the protection deadline.

Brackets of one run share a direction: the broker nets one position per contract, so a long and a
short bracket on one contract cannot both be "exactly covered" (see the report).
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from orderguard.broker.faults import EventFaults, FaultPlan, MutationFaults, QueryFaults
from orderguard.config import OrderManagerConfig
from orderguard.errors import OrderGuardError
from orderguard.models import OrderSide, OrderStatus, OrderType
from orderguard.orders.bracket.values import BracketSettings
from orderguard.orders.oco.engine import OcoLeg

from .bracket_helpers import MNQ, Rig, make_rig

ES = "CON.F.US.EP.Z26"
DEADLINE = 10.0
RATE_WINDOW = 60.0  # OrderManagerConfig.rate_limit_window
TICK = Decimal("0.25")
PLAN = FaultPlan(
    query=QueryFaults(query_error=0.03, delay=0.1, delay_range=(0.05, 0.5)),
    events=EventFaults(drop=0.05, duplicate=0.05, event_delay=0.05, reorder=0.05),
).with_mutations(
    MutationFaults(
        reject=0.02,
        fail_before_send=0.03,
        lost=0.02,
        ambiguous=0.04,
        pending=0.02,
        delay=0.1,
        delay_range=(0.05, 0.5),
    )
)
CONFIG = OrderManagerConfig(status_check_initial_delay=0.2, status_check_max_delay=1.0)


class BracketMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.rig: Rig | None = None
        self.side = OrderSide.BUY
        self.oco_ops: list[str] = []

    def run(self, coro: object) -> object:
        return self.loop.run_until_complete(coro)  # type: ignore[arg-type]

    def attempt(self, coro: object) -> object:
        """Run a placement; a refusal (bad luck with injected query faults) is allowed."""
        try:
            return self.run(self.r.clock.run(coro, max_seconds=60))  # type: ignore[arg-type]
        except OrderGuardError:
            return None

    @property
    def r(self) -> Rig:
        assert self.rig is not None
        return self.rig

    @initialize(
        side=st.sampled_from([OrderSide.BUY, OrderSide.SELL]),
        native=st.booleans()
        if os.environ.get("BRACKET_MACHINE_NATIVE", "1") == "1"
        else st.just(False),
        liquidity=st.sampled_from([None, 1, 2]),
        seed=st.integers(0, 10_000),
    )
    def setup(self, side: OrderSide, native: bool, liquidity: int | None, seed: int) -> None:
        self.side = side
        self.rig = self.run(
            make_rig(
                native=native,
                liquidity=liquidity,
                plan=PLAN,
                seed=seed,
                config=CONFIG,
                settings=BracketSettings(protection_deadline=DEADLINE, flatten_fraction=0.3),
            )
        )
        self.r.ex.set_price(ES, Decimal("6000"))

    def teardown(self) -> None:
        try:
            if self.rig is not None:
                self.quiet_point()  # every run ends at a quiet point too
        finally:
            if self.rig is not None:
                self.run(self.rig.manager.cleanup())
            self.loop.close()

    # -- actions -------------------------------------------------------------------------------
    def _prices(self, distance: int) -> tuple[Decimal, Decimal, Decimal]:
        last = self.r.ex.last_price(MNQ)
        assert last is not None
        d = TICK * distance
        if self.side is OrderSide.BUY:
            return last, last - d, last + d
        return last, last + d, last - d

    @rule(size=st.integers(1, 3), distance=st.integers(4, 20))
    def market_bracket(self, size: int, distance: int) -> None:
        _, stop, target = self._prices(distance)
        self.attempt(
            self.r.manager.place_bracket_order(
                MNQ, self.side, size, None, stop, target, entry_type="market"
            )
        )

    @rule(size=st.integers(1, 3), offset=st.integers(-4, 4), distance=st.integers(4, 20))
    def limit_bracket(self, size: int, offset: int, distance: int) -> None:
        last, stop, target = self._prices(distance)
        entry = last + TICK * offset * (-1 if self.side is OrderSide.BUY else 1)
        d = TICK * distance
        stop, target = (
            (entry - d, entry + d) if self.side is OrderSide.BUY else (entry + d, entry - d)
        )
        self.attempt(
            self.r.manager.place_bracket_order(
                MNQ, self.side, size, entry, stop, target, entry_timeout=30.0
            )
        )

    @rule(distance=st.integers(2, 8))
    def oco_pair(self, distance: int) -> None:
        last = self.r.ex.last_price(ES)
        assert last is not None
        d = TICK * distance
        first = OcoLeg(OrderSide.BUY, 1, last - d, "limit")
        second = OcoLeg(OrderSide.SELL, 1, last + d, "limit")
        result = self.attempt(self.r.manager.place_oco_order(ES, first, second))
        if result is not None:
            self.oco_ops.append(result.operation_id)  # type: ignore[attr-defined]

    @rule(ticks=st.integers(-16, 16), contract=st.sampled_from([MNQ, MNQ, ES]))
    def move(self, ticks: int, contract: str) -> None:
        last = self.r.ex.last_price(contract)
        assert last is not None
        self.r.ex.set_price(contract, max(TICK, last + TICK * ticks))

    @rule(seconds=st.floats(0.01, 3.0))
    def wait(self, seconds: float) -> None:
        self.run(self.r.clock.advance(seconds))

    @rule(on=st.booleans())
    def faults(self, on: bool) -> None:
        self.r.faulty.enabled = on

    @precondition(lambda self: self.rig is not None)
    @rule()
    def quiet_point(self) -> None:
        """Faults off, time passes, then every invariant holds from exchange truth.

        A burst of brackets can spend the gateway's whole budget (200 requests / 60 s, the
        priority lane's reserve included); then no request goes out until the window rolls
        over, and nothing can be settled sooner. The quiet point waits for that (at most one
        window) before it judges coverage. I6 is not relaxed: an unprotected episode longer
        than the deadline fails however it came about.
        """
        self.r.faulty.enabled = False
        self.run(self.r.clock.advance(DEADLINE * 2))
        limiter = self.r.manager.gateway.limiter
        waited = 0.0
        while limiter.waiting and waited < RATE_WINDOW:
            self.run(self.r.clock.advance(5.0))
            waited += 5.0
        if waited:
            self.run(self.r.clock.advance(DEADLINE * 2))  # then settle as after any burst
        self.check_truth()
        self.r.faulty.enabled = True

    # -- invariants ----------------------------------------------------------------------------
    def check_truth(self) -> None:
        ex = self.r.ex
        orders = ex.orders(1)
        position = ex.position_size(1, MNQ)
        exits = [
            o
            for o in orders
            if o.contract_id == MNQ
            and o.status is OrderStatus.OPEN
            and (o.parent_order_id is not None or "-stop" in (o.custom_tag or "")
                 or "-target" in (o.custom_tag or ""))
        ]  # fmt: skip
        reducing = OrderSide.SELL if position > 0 else OrderSide.BUY
        stops = sum(
            o.size - o.fill_volume for o in exits if o.type is OrderType.STOP and o.side is reducing
        )
        if position != 0:
            assert stops == abs(position), f"I1: position {position}, stops cover {stops}"
        else:
            assert exits == [], f"I2: exits on a flat contract: {exits}"
        tags = Counter(o.custom_tag for o in orders if o.custom_tag)
        assert all(n == 1 for n in tags.values()), "I3: a customTag was used twice"
        for op_id in self.oco_ops:
            status = self.r.manager.recovery.get_operation_status(op_id)
            if status is None:
                continue
            legs = [ex.order(1, r["order_id"]) for r in status["orders"].values() if r["order_id"]]
            legs = [
                o
                for o in legs
                if o is not None and o.custom_tag and o.custom_tag.endswith(("-a-0", "-b-0"))
            ]
            if any(o.status is OrderStatus.FILLED for o in legs):
                assert not any(o.status is OrderStatus.OPEN for o in legs), "I4: sibling working"
        stats = self.r.manager.get_recovery_statistics()
        assert stats["max_unprotected_seconds"] < DEADLINE, (
            f"I6: {stats['max_unprotected_seconds']}"
        )

    @invariant()
    def episodes_bounded(self) -> None:
        if self.rig is not None:
            longest = self.r.manager.get_recovery_statistics()["max_unprotected_seconds"]
            assert longest < DEADLINE


BracketMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("BRACKET_MACHINE_EXAMPLES", "40")),
    stateful_step_count=int(os.environ.get("BRACKET_MACHINE_STEPS", "25")),
    deadline=None,
    # The same examples on every CI run, so a result is reproducible; BRACKET_MACHINE_RANDOM=1
    # explores new ones locally.
    derandomize=os.environ.get("BRACKET_MACHINE_RANDOM", "0") != "1",
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    # Shrinking a long virtual-time run is slow; the failing run is printed unshrunk.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
# Virtual time: the default run takes a few seconds of real time; the cap catches a livelock.
TestBracketMachine = pytest.mark.timeout(120)(BracketMachine.TestCase)
