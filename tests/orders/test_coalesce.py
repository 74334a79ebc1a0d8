"""Concurrent reads of one key share one request; a read already in flight is never joined."""

from __future__ import annotations

import asyncio

import pytest

from orderguard.errors import ReadTimeoutError
from orderguard.orders.coalesce import Coalescer


class Source:
    """A read whose answers the test releases one at a time."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.gates: list[asyncio.Future[int]] = []

    async def fetch(self, key: str, want: int) -> int:
        self.calls.append((key, want))
        gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.gates.append(gate)
        return await gate


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_callers_in_one_tick_share_one_read_over_the_widest_want() -> None:
    src = Source()
    reads = Coalescer(src.fetch, min)
    a = asyncio.ensure_future(reads.read("acct", 5))
    b = asyncio.ensure_future(reads.read("acct", 3))
    await _settle()
    assert src.calls == [("acct", 3)]
    src.gates[0].set_result(42)
    assert await a == 42 and await b == 42
    assert reads.shared == 1


async def test_a_caller_arriving_mid_read_waits_for_the_next_read() -> None:
    src = Source()
    reads = Coalescer(src.fetch, min)
    first = asyncio.ensure_future(reads.read("acct", 1))
    await _settle()
    late = [asyncio.ensure_future(reads.read("acct", n)) for n in (7, 9)]
    await _settle()
    assert len(src.calls) == 1  # the late callers do not start reads of their own ...
    src.gates[0].set_result(1)
    assert await first == 1
    await _settle()
    assert src.calls[1] == ("acct", 7)  # ... they share the next one, started after
    src.gates[1].set_result(2)
    assert [await t for t in late] == [2, 2]


async def test_keys_do_not_share() -> None:
    src = Source()
    reads = Coalescer(src.fetch, min)
    tasks = [asyncio.ensure_future(reads.read(k, 0)) for k in ("a", "b")]
    await _settle()
    assert sorted(k for k, _ in src.calls) == ["a", "b"]
    for gate in src.gates:
        gate.set_result(0)
    await asyncio.gather(*tasks)


async def test_every_waiter_gets_the_reads_error_and_the_next_read_starts_afresh() -> None:
    src = Source()
    reads = Coalescer(src.fetch, min)
    tasks = [asyncio.ensure_future(reads.read("acct", n)) for n in (1, 2)]
    await _settle()
    src.gates[0].set_exception(ReadTimeoutError("no answer"))
    for task in tasks:
        with pytest.raises(ReadTimeoutError):
            await task
    again = asyncio.ensure_future(reads.read("acct", 1))
    await _settle()
    src.gates[1].set_result(5)
    assert await again == 5


async def test_a_caller_giving_up_does_not_cancel_the_read_of_the_others() -> None:
    src = Source()
    reads = Coalescer(src.fetch, min)
    quitter = asyncio.ensure_future(reads.read("acct", 1))
    stayer = asyncio.ensure_future(reads.read("acct", 1))
    await _settle()
    quitter.cancel()
    await _settle()
    src.gates[0].set_result(3)
    assert await stayer == 3


async def test_a_cancelled_read_is_a_read_without_answer_to_its_waiters() -> None:
    src = Source()
    reads = Coalescer(src.fetch, min)
    waiter = asyncio.ensure_future(reads.read("acct", 1))
    await _settle()
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task() and task is not waiter:
            task.cancel()  # the shared read's own task is torn down
    with pytest.raises(ReadTimeoutError):
        await waiter
