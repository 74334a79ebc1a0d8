"""Concurrent reads of one key share one request; a read already in flight is never joined."""

from __future__ import annotations

import asyncio

import pytest

from orderguard.clock import VirtualClock
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
    for _ in range(20):
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


async def test_a_slow_read_is_joined_by_the_next_and_the_first_answer_wins() -> None:
    clock = VirtualClock()
    src = Source()
    reads = Coalescer(src.fetch, min, clock=clock, hedge_after=0.5)
    first = asyncio.ensure_future(reads.read("acct", 1))
    await _settle()
    late = asyncio.ensure_future(reads.read("acct", 1))
    await _settle()
    assert len(src.calls) == 1  # the first read is young: the late caller waits for the next
    await clock.advance(0.5)
    await _settle()
    assert len(src.calls) == 2 and reads.hedged == 1  # slow: the next starts beside it
    src.gates[1].set_result(7)  # the second answers first: it serves the first's callers too
    assert await late == 7 and await first == 7
    await _settle()
    assert src.gates[0].cancelled()  # the slow read is no longer waited for


async def test_a_lone_slow_read_is_asked_again_and_fails_only_when_both_copies_fail() -> None:
    clock = VirtualClock()
    src = Source()
    reads = Coalescer(src.fetch, min, clock=clock, hedge_after=0.5)
    lone = asyncio.ensure_future(reads.read("acct", 1))
    await _settle()
    await clock.advance(0.5)
    await _settle()
    assert src.calls == [("acct", 1), ("acct", 1)]  # the same read, asked again
    src.gates[0].set_exception(ReadTimeoutError("slow"))
    await _settle()
    assert not lone.done()  # one copy failing is no answer while the other may still give one
    src.gates[1].set_result(5)
    assert await lone == 5


async def test_no_hedge_for_keys_it_is_not_asked_for() -> None:
    clock = VirtualClock()
    src = Source()
    reads = Coalescer(src.fetch, min, clock=clock, hedge_after=0.5, hedged=lambda k: k == "urgent")
    slow = asyncio.ensure_future(reads.read("queued", 1))
    await _settle()
    await clock.advance(5.0)
    await _settle()
    assert len(src.calls) == 1
    src.gates[0].set_result(1)
    assert await slow == 1


async def test_the_hedge_never_serves_a_caller_a_read_older_than_its_question() -> None:
    clock = VirtualClock()
    src = Source()
    reads = Coalescer(src.fetch, min, clock=clock, hedge_after=0.5)
    first = asyncio.ensure_future(reads.read("acct", 1))
    await _settle()
    await clock.advance(0.6)  # the first read is asked again at 0.5
    late = asyncio.ensure_future(reads.read("acct", 1))
    await _settle()
    assert len(src.calls) == 2
    src.gates[0].set_result(3)  # the old read answers: only its own callers take it
    assert await first == 3
    await _settle()
    assert src.gates[1].cancelled() and not late.done()
    assert len(src.calls) == 3  # the late caller's own read, started after it asked
    src.gates[2].set_result(4)
    assert await late == 4


async def test_a_hedge_serves_older_callers_only_when_it_covers_what_they_want() -> None:
    clock = VirtualClock()
    src = Source()
    reads = Coalescer(src.fetch, min, clock=clock, hedge_after=0.5)
    first = asyncio.ensure_future(reads.read("acct", 1))  # wants more (an earlier start)
    await _settle()
    await clock.advance(0.4)
    late = asyncio.ensure_future(reads.read("acct", 5))
    await _settle()
    await clock.advance(0.1)
    await _settle()
    assert src.calls == [("acct", 1), ("acct", 5)]
    src.gates[1].set_result(9)
    assert await late == 9
    await _settle()
    assert not first.done()  # the narrower answer does not stand in for the wider read
    src.gates[0].set_result(1)
    assert await first == 1


async def test_at_most_two_reads_in_flight_per_key() -> None:
    clock = VirtualClock()
    src = Source()
    reads = Coalescer(src.fetch, min, clock=clock, hedge_after=0.5)
    callers = [asyncio.ensure_future(reads.read("acct", 1))]
    for _ in range(4):
        await _settle()
        await clock.advance(1.0)
        callers.append(asyncio.ensure_future(reads.read("acct", 1)))
    await _settle()
    assert len(src.calls) == 2  # the first read and its copy; the others wait
    src.gates[0].set_result(1)
    await _settle()
    assert len(src.calls) == 3  # the waiting batch starts once a slot frees
    src.gates[2].set_result(2)
    await _settle()
    assert [c.result() for c in callers] == [1, 2, 2, 2, 2]


async def test_a_read_is_asked_again_once_not_for_ever() -> None:
    clock = VirtualClock()
    src = Source()
    reads = Coalescer(src.fetch, min, clock=clock, hedge_after=0.5)
    lone = asyncio.ensure_future(reads.read("acct", 1))
    await _settle()
    await clock.advance(0.5)
    await _settle()
    src.gates[0].set_exception(ReadTimeoutError("slow"))
    await _settle()
    await clock.advance(5.0)
    await _settle()
    assert len(src.calls) == 2  # the copy still in flight is not copied again
    src.gates[1].set_exception(ReadTimeoutError("slow too"))
    with pytest.raises(ReadTimeoutError, match="slow too"):
        await lone


class _Crash(BaseException):
    """What a simulated process crash raises inside whatever task hits it."""


async def test_a_crash_inside_a_read_reaches_every_waiter() -> None:
    clock = VirtualClock()
    src = Source()
    reads = Coalescer(src.fetch, min, clock=clock, hedge_after=0.5)
    first = asyncio.ensure_future(reads.read("acct", 1))
    await _settle()
    await clock.advance(0.5)
    await _settle()
    src.gates[0].set_exception(_Crash())
    await _settle()
    # Never left waiting on a read that can no longer answer (the crash is no copy's error).
    assert first.done() and isinstance(first.exception(), _Crash)
    src.gates[1].set_result(1)
