"""Memory after N operations through one OrderManager (issue 5: <= 20 MB growth for 100,000).

One ``OrderManager`` on the simulated exchange (VirtualClock, zero latency, the gateway request
budget lifted) runs a mix of operations one after another, in rotation:

* a market bracket placed -> protected -> closed (alternately by its target, and by
  ``close_bracket``);
* a limit order placed and cancelled;
* an OCO pair placed, one leg filled by a price move (the sibling is cancelled), alternately the
  buy and the sell leg so the position returns to flat;
* a limit order placed, modified (price) and cancelled.

After a warm-up it measures, at checkpoints, the process RSS and the **retained size** of three
parts separately (a walk of the object graph from each part's roots that does not enter the
others, modules, classes or functions):

* **manager** – the OrderManager and its engines (tracker, recovery manager, bracket/OCO engines,
  latch, limiter, breakers, callbacks, listeners, tasks);
* **journal** – the journal keeps every record by design (it is a journal); for SQLite the records
  are on disk and this is its in-process state only;
* **exchange** – the simulated exchange keeps every order and trade (it is the broker's history).

The target applies to the manager. RSS includes all three and the allocator's slack. It also
prints the sizes of the structures that could leak (tracker entries, operations in memory, saga
and OCO maps, background tasks, listeners, callbacks). Run::

    .venv/bin/python benchmarks/bench_memory.py [--ops 100000] [--warmup 2000]
        [--journal memory|sqlite] [--checkpoints 10] [--max-finished 10000|none]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import random
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path

from orderguard.broker.sim import SimBroker
from orderguard.clock import VirtualClock
from orderguard.config import OrderManagerConfig
from orderguard.journal import MemoryJournal, SqliteJournal
from orderguard.journal.base import Journal
from orderguard.models import OrderSide
from orderguard.orders import OrderManager
from orderguard.orders.feed.tracking import DEFAULT_MAX_FINISHED
from orderguard.orders.oco.engine import OcoLeg

MNQ = "CON.F.US.MNQ.Z26"
D = Decimal
MID = D("21000.00")
BUY, SELL = OrderSide.BUY, OrderSide.SELL
MB = 1024 * 1024


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ------------------------------------------------------------------------------------------------
# retained size: a walk of the object graph from some roots, not entering ``stop``
# ------------------------------------------------------------------------------------------------
_OPAQUE = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.CodeType)


def retained(roots: Iterable[object], stop: Iterable[object]) -> tuple[int, int]:
    """Bytes and objects reachable from ``roots`` without passing through ``stop``, modules,
    classes, functions (their globals would reach everything) or module dicts."""
    blocked = {id(o) for o in stop}
    blocked.update(id(vars(m)) for m in list(sys.modules.values()) if m is not None)
    seen: set[int] = set()
    todo = list(roots)
    size = count = 0
    while todo:
        obj = todo.pop()
        key = id(obj)
        if key in seen or key in blocked or isinstance(obj, _OPAQUE):
            continue
        seen.add(key)
        size += sys.getsizeof(obj)
        count += 1
        if isinstance(obj, types.FrameType):
            todo.extend(obj.f_locals.values())  # not f_globals / f_builtins
            continue
        todo.extend(gc.get_referents(obj))
    return size, count


class Parts:
    """The three parts whose retained sizes are reported."""

    def __init__(self, manager: OrderManager, journal: Journal, sim: SimBroker) -> None:
        self.manager = manager
        self.journal = journal
        self.sim = sim

    def sizes(self, everything: bool) -> dict[str, tuple[int, int]]:
        """Retained (bytes, objects) of the manager; of the journal and exchange too if
        ``everything`` (their walks take seconds once they hold 100,000 operations)."""
        m = self.manager
        loop = asyncio.get_running_loop()
        exchange = (self.sim, self.sim.exchange)
        clock = m.clock
        manager_roots = [m, m.brackets, m.oco, m.position_orders]
        sizes = {"manager": retained(manager_roots, [self.journal, *exchange, clock, loop])}
        if everything:
            sizes["journal"] = retained([self.journal], [m, *exchange, clock, loop])
            sizes["exchange"] = retained(exchange, [m, self.journal, clock, loop])
        return sizes


def structures(manager: OrderManager) -> dict[str, int]:
    """Sizes of everything that grows with activity in the manager and its engines."""
    m = manager
    rec = m.recovery
    brackets = m.brackets
    oco = m.oco
    return {
        "tracker_orders": len(m.tracker),
        "tracker_records": len(m.tracker._records),
        "tracker_tags": len(m.tracker._by_tag),
        "active_operations": len(rec.active_operations),
        "operation_history": len(rec.operation_history),
        "recovery_tag_index": len(rec._tag_index),
        "recovery_leg_intents": len(rec._leg_intents),
        "recovery_last_kind": len(rec._last_kind),
        "bracket_sagas": len(brackets._sagas),
        "bracket_finished": len(brackets._finished),
        "bracket_maps": len(brackets._by_order) + len(brackets._by_tag) + len(brackets._by_parent),
        "oco_pairs": len(oco._pairs),
        "oco_maps": len(oco._by_order) + len(oco._by_tag),
        "latch": len(m.latch),
        "unresolved": len(m._placement._unresolved) + len(m._placement._unresolved_intents),
        "background_tasks": m.background_tasks,
        "event_listeners": len(m.feed._listeners),
        "callbacks": sum(len(v) for v in m._callbacks._callbacks.values()),
        "asyncio_tasks": len(asyncio.all_tasks()),
        "exchange_orders": len(m.raw_broker.exchange.orders(1)),  # type: ignore[attr-defined]
    }


# ------------------------------------------------------------------------------------------------
# the workload
# ------------------------------------------------------------------------------------------------
class Workload:
    def __init__(self, manager: OrderManager, sim: SimBroker, clock: VirtualClock) -> None:
        self.m = manager
        self.sim = sim
        self.clock = clock
        self.done = 0
        self.kinds = (self.bracket, self.limit, self.oco, self.modify)

    def price(self, p: Decimal) -> None:
        self.sim.exchange.set_price(MNQ, p)

    async def until(self, predicate: Callable[[], bool], what: str) -> None:
        for _ in range(200):
            if predicate():
                return
            await self.clock.sleep(0.05)
        raise RuntimeError(f"operation {self.done}: {what} did not happen")

    async def bracket(self, i: int) -> None:
        r = await self.m.place_bracket_order(
            MNQ, BUY, 1, None, D("20990"), D("21010"), entry_type="market"
        )
        assert r.success, r
        await self.m.wait_for_protection(r.operation_id)
        if i % 2 == 0:
            self.price(D("21012"))  # the target fills; the stop is cancelled
            done = await self.m.wait_for_completion(r.operation_id)
            self.price(MID)
        else:
            await self.m.close_bracket(r.operation_id)
            done = await self.m.wait_for_completion(r.operation_id)
        assert done.operation_id == r.operation_id

    async def limit(self, i: int) -> None:
        placed = await self.m.place_limit_order(MNQ, BUY, 1, D("20900"))
        cancelled = await self.m.cancel_order(placed.order_id)
        assert cancelled.cancelled, cancelled

    async def oco(self, i: int) -> None:
        r = await self.m.place_oco_order(MNQ, OcoLeg(BUY, 1, "20990"), OcoLeg(SELL, 1, "21010"))
        assert r.success, r
        op_id = r.operation_id
        # Alternate the leg that fills, so the position goes +1, 0, +1, 0...
        self.price(D("20989.75") if (i // 4) % 2 == 0 else D("21010.25"))
        await self.until(lambda: op_id not in self.m.recovery.active_operations, "OCO finish")
        self.price(MID)

    async def modify(self, i: int) -> None:
        placed = await self.m.place_limit_order(MNQ, SELL, 1, D("21100"))
        changed = await self.m.modify_order(placed.order_id, limit_price=D("21100.25"))
        assert changed.success, changed
        cancelled = await self.m.cancel_order(placed.order_id)
        assert cancelled.cancelled, cancelled

    async def run(self, n: int) -> None:
        for _ in range(n):
            await self.kinds[self.done % len(self.kinds)](self.done)
            self.done += 1


# ------------------------------------------------------------------------------------------------
async def scenario(args: argparse.Namespace, clock: VirtualClock, folder: Path) -> None:
    sim = SimBroker.create(clock, prices={MNQ: MID}, max_order_size=None)
    journal: Journal = (
        SqliteJournal(folder / "memory.db", clock)
        if args.journal == "sqlite"
        else MemoryJournal(clock)
    )
    config = OrderManagerConfig(rate_limit_requests=10**9)
    manager = OrderManager(sim, clock=clock, config=config, journal=journal, rng=random.Random(5))
    manager.tracker.max_finished = args.max_finished
    await manager.start()
    work = Workload(manager, sim, clock)
    parts = Parts(manager, journal, sim)
    t0 = time.perf_counter()
    await work.run(args.warmup)
    await clock.sleep(0.01)  # let pending events land (settle() cannot nest in run())
    gc.collect()
    base_rss = rss_bytes()
    base = parts.sizes(everything=True)
    print(f"after warm-up ({args.warmup} ops): rss {base_rss / MB:.1f} MB; {structures(manager)}")
    print(
        f"{'ops':>8} {'rss +MB':>8} {'manager +MB':>12} {'wall s':>7} {'virtual s':>10}  structures"
    )
    step = max(1, (args.ops - args.warmup) // args.checkpoints)
    while work.done < args.ops:
        await work.run(min(step, args.ops - work.done))
        await clock.sleep(0.01)  # let pending events land (settle() cannot nest in run())
        gc.collect()
        manager_now = parts.sizes(everything=False)["manager"][0]
        print(
            f"{work.done:>8} {(rss_bytes() - base_rss) / MB:>8.1f}"
            f" {(manager_now - base['manager'][0]) / MB:>12.2f}"
            f" {time.perf_counter() - t0:>7.0f} {clock.monotonic():>10.0f}  {structures(manager)}",
            flush=True,
        )
    final = parts.sizes(everything=True)
    for k in final:
        print(
            f"{k:<8} retained {base[k][0] / MB:7.1f} MB -> {final[k][0] / MB:7.1f} MB"
            f" ({(final[k][0] - base[k][0]) / MB:+.1f} MB),"
            f" objects {base[k][1]:,} -> {final[k][1]:,}"
        )
    print(
        f"manager growth after {args.ops - args.warmup:,} ops past the warm-up: "
        f"{(final['manager'][0] - base['manager'][0]) / MB:.2f} MB (target <= 20 MB for 100,000)"
    )
    await manager.cleanup()
    await journal.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--ops", type=int, default=100_000)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--checkpoints", type=int, default=10)
    parser.add_argument("--journal", choices=("memory", "sqlite"), default="memory")
    parser.add_argument(
        "--max-finished",
        type=lambda v: None if v == "none" else int(v),
        default=DEFAULT_MAX_FINISHED,
        help="the tracker's bound on finished orders ('none': unbounded, as before issue 5)",
    )
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    clock = VirtualClock()
    print(
        f"{args.ops:,} operations through one OrderManager, {args.journal} journal,"
        f" tracker bound {args.max_finished}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(clock.run(scenario(args, clock, Path(tmp))))


if __name__ == "__main__":
    main()
