"""Start-up recovery of N unfinished operations, in-process (issue 5).

A "dead" process leaves N unfinished operations in a journal, in the shapes a crash really leaves
(see ``SHAPES``): brackets whose entry is only intended (sent or never sent), whose entry outcome is
unknown, whose entry filled with stop and target live, or which were rolling back; OCO pairs;
position closes; bulk cancels. The simulated exchange holds the matching truth: some orders
filled, some working, some never arrived. A fresh ``OrderManager`` on the same journal (for SQLite:
a new connection on the same file) then runs ``start()``, which loads the journal and runs
start-up recovery (``recover(manager)``) before it returns.

Reported per journal and size: the journal load alone (``OperationRecoveryManager.load()`` on a
fresh manager), and ``start()`` as a whole (accounts, capabilities, the same load and the
recovery) in wall time and in process CPU time (the machine is shared: CPU time is the steadier
figure; SQLite's wall time also holds its fsync waits, which are not CPU), the broker calls
recovery made, by method
(queries must not grow with N; cancels and flattens do, they are the work, and each is confirmed
by one ``get_order``), and whether every operation finished; every contract must end flat.

Time is virtual (``VirtualClock``): the in-flight grace (10 s) and the broker's zero latency cost
no wall time, so the figure is our own work plus the simulated exchange's matching. The gateway
request budget is lifted so that the limiter does not spread the recovery's cancels over virtual
minutes (that would still cost no wall time, but the virtual timeline would not be the point). Run::

    .venv/bin/python benchmarks/bench_recovery.py [--ops 10 100 1000] [--runs 3]
        [--journal memory sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from orderguard.broker.base import Confirmed, Unknown, UnknownOrigin
from orderguard.broker.sim import SimBroker, SimExchange
from orderguard.clock import VirtualClock
from orderguard.config import OrderManagerConfig
from orderguard.journal import MemoryJournal, SqliteJournal
from orderguard.journal.base import IntentKind, Journal
from orderguard.models import OrderRequest, OrderSide, OrderType
from orderguard.orders import OrderManager
from orderguard.recovery.manager import OperationRecoveryManager, OrderReference, RecoveryOperation
from orderguard.recovery.operations import OperationState, OperationType
from orderguard.testing.counting import CountingBroker

ACCOUNT = 1
PRICES = {
    "CON.F.US.MNQ.Z26": Decimal("21000.00"),
    "CON.F.US.ENQ.Z26": Decimal("21000.00"),
    "CON.F.US.MES.Z26": Decimal("6000.00"),
    "CON.F.US.EP.Z26": Decimal("6000.00"),
}
CONTRACTS = tuple(PRICES)
BUY, SELL = OrderSide.BUY, OrderSide.SELL
QUERIES = frozenset({"search_orders", "search_positions"})
# What start() asks before recovery, whatever the journal holds (reference data, not truth reads).
START_CALLS = frozenset({"get_accounts", "get_capabilities", "get_contract", "search_contracts"})


# ------------------------------------------------------------------------------------------------
# what the dead process left behind
# ------------------------------------------------------------------------------------------------
@dataclass
class Dead:
    """The dead process's recovery manager, and the exchange that outlives it."""

    rec: OperationRecoveryManager
    exchange: SimExchange
    n: int = 0

    def contract(self) -> str:
        return CONTRACTS[self.n % len(CONTRACTS)]

    def price(self, contract: str, ticks: int) -> Decimal:
        return PRICES[contract] + Decimal("0.25") * ticks

    def send(self, ref: OrderReference, kind: OrderType, price: Decimal | None = None) -> int:
        """The leg's order reaches the exchange (with its tag); returns its id."""
        request = OrderRequest(
            ACCOUNT, ref.contract_id, kind, OrderSide(ref.side), ref.size,
            limit_price=price if kind is OrderType.LIMIT else None,
            stop_price=price if kind is OrderType.STOP else None,
            custom_tag=ref.custom_tag,
        )  # fmt: skip
        result = self.exchange.place(request)
        assert result.order_id is not None, result
        return result.order_id

    async def ack(self, op: RecoveryOperation, ref: OrderReference, order_id: int) -> None:
        await self.rec.record_order_success(op, ref, Confirmed(order_id))
        order = self.exchange.order(ACCOUNT, order_id)
        assert order is not None
        await self.rec.record_order_state(op, ref, order)

    async def bracket(self, contract: str) -> RecoveryOperation:
        return await self.rec.start_operation(
            OperationType.BRACKET_ORDER, account_id=ACCOUNT, contract_id=contract
        )

    async def leg(
        self, op: RecoveryOperation, leg: str, side: OrderSide, kind: str, price: Decimal | None
    ) -> OrderReference:
        assert op.contract_id is not None
        return await self.rec.add_order_to_operation(
            op, op.contract_id, side, 1, kind, price, leg=leg, account_id=ACCOUNT
        )

    async def exits(
        self, op: RecoveryOperation, contract: str, send: bool
    ) -> tuple[OrderReference, OrderReference]:
        """Stop and target of a long entry: journaled, and (if ``send``) working and acked."""
        stop_px, target_px = self.price(contract, -40), self.price(contract, 40)
        stop = await self.leg(op, "stop", SELL, "stop", stop_px)
        target = await self.leg(op, "target", SELL, "limit", target_px)
        await self.rec.add_oco_pair(op, stop, target)
        await self.rec.add_position_tracking(op, contract, stop)
        if send:
            await self.ack(op, stop, self.send(stop, OrderType.STOP, stop_px))
            await self.ack(op, target, self.send(target, OrderType.LIMIT, target_px))
        return stop, target


Shape = Callable[[Dead], Awaitable[None]]


async def bracket_entry_never_sent(d: Dead) -> None:
    """Crash between the entry intent and its send: nothing at the broker."""
    op = await d.bracket(c := d.contract())
    await d.leg(op, "entry", BUY, "market", None)
    del c


async def bracket_entry_sent_unrecorded(d: Dead) -> None:
    """Crash after the entry's send, before its outcome: the broker filled it."""
    op = await d.bracket(d.contract())
    entry = await d.leg(op, "entry", BUY, "market", None)
    d.send(entry, OrderType.MARKET)


async def bracket_entry_unknown_working(d: Dead) -> None:
    """The entry's send timed out (Unknown); the limit order rests at the broker."""
    op = await d.bracket(c := d.contract())
    px = d.price(c, -20)
    entry = await d.leg(op, "entry", BUY, "limit", px)
    d.send(entry, OrderType.LIMIT, px)
    await d.rec.record_order_failure(op, entry, Unknown(UnknownOrigin.TIMEOUT_AFTER_SEND))


async def bracket_entry_unknown_absent(d: Dead) -> None:
    """The entry's send timed out (Unknown) and the request never executed."""
    op = await d.bracket(c := d.contract())
    entry = await d.leg(op, "entry", BUY, "limit", d.price(c, -20))
    await d.rec.record_order_failure(op, entry, Unknown(UnknownOrigin.CONNECTION_LOST))


async def bracket_protected(d: Dead) -> None:
    """Entry filled, stop and target working and OCO-linked: the pivot has passed."""
    op = await d.bracket(c := d.contract())
    entry = await d.leg(op, "entry", BUY, "market", None)
    await d.ack(op, entry, d.send(entry, OrderType.MARKET))
    await d.exits(op, c, send=True)


async def bracket_filled_legs_intended(d: Dead) -> None:
    """Entry filled; crash after the legs' intents, before they were sent: naked."""
    op = await d.bracket(c := d.contract())
    entry = await d.leg(op, "entry", BUY, "market", None)
    await d.ack(op, entry, d.send(entry, OrderType.MARKET))
    await d.exits(op, c, send=False)


async def bracket_rolling_back(d: Dead) -> None:
    """Rolling back: legs cancelled, the flatten journaled but not sent."""
    op = await d.bracket(c := d.contract())
    entry = await d.leg(op, "entry", BUY, "market", None)
    await d.ack(op, entry, d.send(entry, OrderType.MARKET))
    stop, target = await d.exits(op, c, send=True)
    await d.rec.transition_operation(op, OperationState.ROLLING_BACK, "protection failed")
    for ref in (stop, target):
        assert ref.order_id is not None
        d.exchange.cancel(ACCOUNT, ref.order_id)
        order = d.exchange.order(ACCOUNT, ref.order_id)
        assert order is not None
        await d.rec.record_order_state(op, ref, order)
    await d.leg(op, "flatten0", SELL, "market", None)


async def oco_pair_working(d: Dead) -> None:
    """An OCO pair, both legs working and acknowledged."""
    c = d.contract()
    op = await d.rec.start_operation(OperationType.OCO_PAIR, account_id=ACCOUNT, contract_id=c)
    lo, hi = d.price(c, -30), d.price(c, 30)
    a = await d.leg(op, "first", BUY, "limit", lo)
    b = await d.leg(op, "second", SELL, "limit", hi)
    await d.rec.add_oco_pair(op, a, b)
    await d.ack(op, a, d.send(a, OrderType.LIMIT, lo))
    await d.ack(op, b, d.send(b, OrderType.LIMIT, hi))


async def oco_pair_half_sent(d: Dead) -> None:
    """An OCO pair: the first leg sent and acked, the second only intended."""
    c = d.contract()
    op = await d.rec.start_operation(OperationType.OCO_PAIR, account_id=ACCOUNT, contract_id=c)
    lo, hi = d.price(c, -30), d.price(c, 30)
    a = await d.leg(op, "first", BUY, "limit", lo)
    b = await d.leg(op, "second", SELL, "limit", hi)
    await d.rec.add_oco_pair(op, a, b)
    await d.ack(op, a, d.send(a, OrderType.LIMIT, lo))


async def position_close(d: Dead) -> None:
    """A position close: its market order sent (filled), the outcome not recorded.

    The position it closes was opened by an operation that finished before the crash.
    """
    c = d.contract()
    opened = d.exchange.place(OrderRequest(ACCOUNT, c, OrderType.MARKET, BUY, 1))
    assert opened.order_id is not None
    op = await d.rec.start_operation(
        OperationType.POSITION_CLOSE, account_id=ACCOUNT, contract_id=c, extra={"owned": 1}
    )
    ref = await d.leg(op, "close", SELL, "market", None)
    d.send(ref, OrderType.MARKET)


async def bulk_cancel(d: Dead) -> None:
    """A bulk cancel: two cancel intents journaled, one of them executed."""
    c = d.contract()
    ids = []
    for ticks in (-50, -51):
        request = OrderRequest(
            ACCOUNT, c, OrderType.LIMIT, BUY, 1, limit_price=d.price(c, ticks),
            custom_tag=f"manual-{d.n}-{ticks}",
        )  # fmt: skip
        placed = d.exchange.place(request)
        assert placed.order_id is not None
        ids.append(placed.order_id)
    op = await d.rec.start_operation(
        OperationType.BULK_CANCEL, account_id=ACCOUNT, contract_id=c, extra={"order_ids": ids}
    )
    await d.rec.transition_operation(op, OperationState.IN_PROGRESS, "cancelling 2 orders")
    for oid in ids:
        await d.rec.record_intent(
            IntentKind.CANCEL, account_id=ACCOUNT, contract_id=c, custom_tag=f"cancel-{oid}",
            request={"order_id": oid}, operation=op, leg=f"cancel{oid}",
        )  # fmt: skip
    d.exchange.cancel(ACCOUNT, ids[0])


SHAPES: tuple[Shape, ...] = (
    bracket_entry_never_sent,
    bracket_entry_sent_unrecorded,
    bracket_entry_unknown_working,
    bracket_entry_unknown_absent,
    bracket_protected,
    bracket_filled_legs_intended,
    bracket_rolling_back,
    oco_pair_working,
    oco_pair_half_sent,
    position_close,
    bulk_cancel,
)


async def leave_behind(
    journal: Journal, exchange: SimExchange, clock: VirtualClock, n: int
) -> dict[str, str]:
    """Leave ``n`` unfinished operations (shapes in rotation); returns operation id -> shape."""
    rec = OperationRecoveryManager(journal, clock, rng=random.Random(n))
    dead = Dead(rec, exchange)
    shapes: dict[str, str] = {}
    for i in range(n):
        dead.n = i
        before = set(rec.active_operations)
        shape = SHAPES[i % len(SHAPES)]
        await shape(dead)
        for op_id in set(rec.active_operations) - before:
            shapes[op_id] = shape.__name__
        await clock.sleep(0.01)
    await journal.flush()
    return shapes


# ------------------------------------------------------------------------------------------------
# the restart
# ------------------------------------------------------------------------------------------------
@dataclass
class Result:
    journal: str
    ops: int
    load_s: float
    start_s: float
    recover_s: float
    recover_cpu_s: float
    calls: Counter[str] = field(default_factory=Counter)
    queries: int = 0
    unfinished: int = 0
    errors: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)


async def one_run(kind: str, n: int, folder: Path) -> Result:
    clock = VirtualClock()
    sim = SimBroker.create(clock, prices=PRICES, max_order_size=None)
    path = folder / f"journal-{kind}-{n}-{time.monotonic_ns()}.db"

    def fresh_journal() -> Journal:
        return SqliteJournal(path, clock) if kind == "sqlite" else shared

    shared: Journal = MemoryJournal(clock)

    async def scenario() -> Result:
        journal = fresh_journal()
        await journal.open()
        shapes = await leave_behind(journal, sim.exchange, clock, n)
        if kind == "sqlite":
            await journal.close()
        await clock.sleep(1.0)  # the restart: less than the in-flight grace (it is waited out)

        # The load alone, on a separate journal connection, as a restarted process does it.
        probe_journal = fresh_journal()
        await probe_journal.open()
        probe = OperationRecoveryManager(probe_journal, clock)
        gc.collect()
        t0 = time.perf_counter()
        unfinished = await probe.load()
        load_s = time.perf_counter() - t0
        assert len(unfinished) == n, (len(unfinished), n)
        if kind == "sqlite":
            await probe_journal.close()

        counting = CountingBroker(sim)
        config = OrderManagerConfig(rate_limit_requests=10**9)
        manager = OrderManager(
            counting,  # type: ignore[arg-type]
            clock=clock, config=config, journal=fresh_journal(), rng=random.Random(n),
            account_id=ACCOUNT,
        )  # fmt: skip
        gc.collect()
        # start() runs start-up recovery before it returns (accounts, capabilities, the journal
        # load, then recover()): the whole of it is what a restarting trader waits for.
        t0, c0 = time.perf_counter(), time.process_time()
        await manager.start()
        start_s = time.perf_counter() - t0
        recover_s, recover_cpu_s = start_s, time.process_time() - c0
        report = manager.last_recovery
        assert report is not None
        calls = Counter({k: v for k, v in counting.calls.items() if k not in START_CALLS})
        # Every bracket's fill was flattened and the close closed its position: all flat.
        held = {c: sim.exchange.position_size(ACCOUNT, c) for c in CONTRACTS}
        assert not any(held.values()), held
        await manager.cleanup()
        await manager.journal.close()
        return Result(
            kind, n, load_s, start_s, recover_s, recover_cpu_s, calls, report.queries,
            len(report.unfinished), sum(1 for o in report.operations if o.error),
            Counter(f"{shapes[o.operation_id]}->{o.state_after}" for o in report.operations),
        )  # fmt: skip

    return await clock.run(scenario())


def _row(results: list[Result]) -> str:
    r = results[0]
    med = statistics.median
    load = med(x.load_s for x in results) * 1000
    start = med(x.start_s for x in results) * 1000
    cpu = med(x.recover_cpu_s for x in results) * 1000
    queries = sum(r.calls[q] for q in QUERIES)
    mutations = {k: v for k, v in sorted(r.calls.items()) if k not in QUERIES}
    return (
        f"{r.journal:<7} {r.ops:>6} {load:>9.1f} {start:>9.1f} {cpu:>8.1f}"
        f"   {queries:>2} ({r.queries})   {mutations}  unfinished={r.unfinished} errors={r.errors}"
        f"  {dict(sorted(r.outcomes.items()))}"
    )


async def main(sizes: list[int], runs: int, journals: list[str]) -> None:
    print(f"start-up recovery, {len(SHAPES)} operation shapes in rotation; median of {runs} runs")
    print("journal    ops   load ms  start ms   cpu ms   queries (report)   other broker calls")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in journals:
            for n in sizes:
                results = [await one_run(kind, n, Path(tmp)) for _ in range(runs)]
                print(_row(results), flush=True)
    print("start ms: the whole start(), journal load and start-up recovery included")
    print("target: recover 1,000 operations in <= 1 s with a constant number of broker queries")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--ops", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--journal", nargs="+", default=["memory", "sqlite"])
    args = parser.parse_args()
    asyncio.run(main(args.ops, args.runs, args.journal))
