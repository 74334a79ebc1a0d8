"""Stateful property test: random orders, cancels, modifies, closes and price moves keep the
exchange's invariants (positions from fills, no overfill, terminal stays terminal, trades add up
to each order's fills, balance = start + realised P&L - fees, events agree with state), under the
default rules, the harsh ones and random mixes."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from orderguard.broker.base import BrokerEvent, OrderEvent, PositionEvent
from orderguard.broker.sim import ExchangeRules, SimExchange
from orderguard.broker.sim.rules import CloseFill
from orderguard.clock import VirtualClock
from orderguard.models import (
    BracketSpec,
    Order,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
)

D = Decimal
MNQ = "CON.F.US.MNQ.Z26"
TICK = D("0.25")
START_BALANCE = D("50000")
RARELY = st.integers(0, 9).map(lambda n: n == 0)  # a sprinkle of invalid input
KINDS = [
    OrderType.LIMIT,
    OrderType.MARKET,
    OrderType.STOP,
    OrderType.TRAILING_STOP,
    OrderType.JOIN_BID,
    OrderType.JOIN_ASK,
    OrderType.STOP_LIMIT,
]


class ExchangeMachine(RuleBasedStateMachine):
    """Drives one account on MNQ with arbitrary (also invalid) requests."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = VirtualClock()
        self.exchange = SimExchange(self.clock)
        self.events: list[BrokerEvent] = []
        self.terminal: dict[int, Order] = {}

    @initialize(
        liquidity=st.sampled_from([None, 1, 2, 3]),
        native=RARELY.map(lambda r: not r),
        rules=st.one_of(
            st.just(ExchangeRules.default()),
            st.just(ExchangeRules.harsh()),
            st.integers(0, 10_000).map(lambda seed: ExchangeRules.named(f"mixed:{seed}")),
        ),
    )
    def setup(self, liquidity: int | None, native: bool, rules: ExchangeRules) -> None:
        self.exchange = SimExchange(self.clock, liquidity=liquidity, rules=rules)
        self.exchange.open_account(
            1, "SIM", START_BALANCE, native_brackets=native, max_order_size=8
        )
        self.exchange.listen(self.events.append)
        self.exchange.set_price(MNQ, D("21000"))

    # -- rules ----------------------------------------------------------------------------------
    @rule(ticks=st.integers(-12, 12))
    def move(self, ticks: int) -> None:
        last = self.exchange.last_price(MNQ) or D("21000")
        self.exchange.set_price(MNQ, max(TICK, last + TICK * ticks))

    @rule(
        kind=st.sampled_from(KINDS),
        buy=st.booleans(),
        size=st.integers(1, 5) | st.integers(-1, 9),
        offset=st.integers(-10, 10),
        off_grid=RARELY,
        tag=st.none() | st.sampled_from(["a", "b", "c"]),
        stop_loss=st.none() | st.integers(1, 12),
        take_profit=st.none() | st.integers(1, 12),
        wrong_signs=RARELY,
        trailing_leg=st.booleans(),
    )
    def place(
        self,
        kind: OrderType,
        buy: bool,
        size: int,
        offset: int,
        off_grid: bool,
        tag: str | None,
        stop_loss: int | None,
        take_profit: int | None,
        wrong_signs: bool,
        trailing_leg: bool,
    ) -> None:
        # Bracket ticks are drawn as distances and signed like the gateway wants (mostly).
        sign = (1 if buy else -1) * (-1 if wrong_signs else 1)
        stop_loss = None if stop_loss is None else -sign * stop_loss
        take_profit = None if take_profit is None else sign * take_profit
        last = self.exchange.last_price(MNQ) or D("21000")
        price = last + TICK * offset + (D("0.1") if off_grid else 0)
        distance = TICK * (abs(offset) or 1) + (D("0.1") if off_grid else 0)
        leg_type = OrderType.TRAILING_STOP if trailing_leg else OrderType.STOP
        request = OrderRequest(
            account_id=1,
            contract_id=MNQ,
            type=kind,
            side=OrderSide.BUY if buy else OrderSide.SELL,
            size=size,
            limit_price=price if kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None,
            stop_price=price if kind in (OrderType.STOP, OrderType.STOP_LIMIT) else None,
            trail_price=distance if kind is OrderType.TRAILING_STOP else None,
            custom_tag=tag,
            stop_loss_bracket=None if stop_loss is None else BracketSpec(stop_loss, leg_type),
            take_profit_bracket=(
                None if take_profit is None else BracketSpec(take_profit, OrderType.LIMIT)
            ),
        )
        before = len(self.exchange.orders(1))
        result = self.exchange.place(request)
        if not result.success:
            # A rejection leaves no record, or (rules.size_rejection) one Rejected order.
            after = self.exchange.orders(1)
            if result.order_id is None:
                assert len(after) == before
            else:
                assert [o.id for o in after[before:]] == [result.order_id]
                assert after[-1].status is OrderStatus.REJECTED

    @precondition(lambda self: bool(self.exchange.orders(1)))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        order = data.draw(st.sampled_from(self.exchange.orders(1)))
        result = self.exchange.cancel(1, order.id)
        assert result.success == order.is_working

    @precondition(lambda self: bool(self.exchange.orders(1)))
    @rule(data=st.data(), size=st.none() | st.integers(1, 9), ticks=st.integers(-6, 6))
    def modify(self, data: st.DataObject, size: int | None, ticks: int) -> None:
        order = data.draw(st.sampled_from(self.exchange.orders(1)))
        last = self.exchange.last_price(MNQ) or D("21000")
        price = max(TICK, last + TICK * ticks)
        if order.type in (OrderType.LIMIT, OrderType.JOIN_BID, OrderType.JOIN_ASK):
            self.exchange.modify(1, order.id, size=size, limit_price=price)
        elif order.type is OrderType.STOP:
            self.exchange.modify(1, order.id, size=size, stop_price=price)
        elif order.type is OrderType.TRAILING_STOP:
            self.exchange.modify(1, order.id, size=size, trail_price=TICK * (abs(ticks) or 1))
        else:
            self.exchange.modify(1, order.id, size=size)

    @rule()
    def close(self) -> None:
        result = self.exchange.close_position(1, MNQ)
        assert result.success or result.error_code == 2
        if result.success and self.exchange.rules.close_fill is CloseFill.IMMEDIATE:
            assert self.exchange.position_size(1, MNQ) == 0

    @rule(size=st.integers(0, 9))
    def partial_close(self, size: int) -> None:
        held = abs(self.exchange.position_size(1, MNQ))
        result = self.exchange.partial_close(1, MNQ, size)
        assert result.success == (held > 0 and 0 < size <= held)

    # -- invariants -----------------------------------------------------------------------------
    @invariant()
    def position_is_the_signed_sum_of_fills(self) -> None:
        fills = sum(t.side.sign * t.size for t in self.exchange.trades(1))
        assert self.exchange.position_size(1, MNQ) == fills

    @invariant()
    def every_fill_has_a_trade_and_nothing_overfills(self) -> None:
        traded: dict[int, int] = {}
        for trade in self.exchange.trades(1):
            traded[trade.order_id] = traded.get(trade.order_id, 0) + trade.size
            assert self.exchange.contract(MNQ) is not None
            assert trade.price % TICK == 0
        for order in self.exchange.orders(1):
            assert 0 <= order.fill_volume <= order.size
            assert traded.get(order.id, 0) == order.fill_volume
            assert (order.status is OrderStatus.FILLED) == (order.fill_volume == order.size)
            if order.status is OrderStatus.SUSPENDED:
                assert order.fill_volume == 0

    @invariant()
    def terminal_states_stay_terminal(self) -> None:
        for order in self.exchange.orders(1):
            earlier = self.terminal.get(order.id)
            if earlier is not None:
                assert order == earlier
            elif order.is_terminal:
                self.terminal[order.id] = order

    @invariant()
    def balance_is_start_plus_realised_pnl_minus_fees(self) -> None:
        trades = self.exchange.trades(1)
        pnl = sum((t.profit_and_loss or D(0) for t in trades), D(0))
        fees = sum((t.fees for t in trades), D(0))
        assert self.exchange.account(1).balance == START_BALANCE + pnl - fees

    @invariant()
    def bracket_legs_work_only_behind_a_filled_entry(self) -> None:
        orders = {o.id: o for o in self.exchange.orders(1)}
        for leg in orders.values():
            if leg.parent_order_id is None:
                continue
            entry = orders[leg.parent_order_id]
            if leg.status is OrderStatus.SUSPENDED:
                assert entry.fill_volume == 0 and entry.is_working
            elif leg.status is OrderStatus.OPEN:
                assert entry.fill_volume > 0

    @invariant()
    def open_orders_exclude_suspended_legs(self) -> None:
        assert all(o.status is OrderStatus.OPEN for o in self.exchange.open_orders(1))

    @invariant()
    def events_agree_with_state(self) -> None:
        last_order: dict[int, Order] = {}
        last_size = 0
        for event in self.events:
            if isinstance(event, OrderEvent):
                last_order[event.order.id] = event.order
            elif isinstance(event, PositionEvent):
                last_size = event.position.signed_size
        assert last_order == {o.id: o for o in self.exchange.orders(1)}
        assert last_size == self.exchange.position_size(1, MNQ)


ExchangeMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestExchangeInvariants = ExchangeMachine.TestCase
