"""orderguard's ``place_bracket_order`` on its ProjectX adapter against the gateway.

Environment: PROJECTX_API_URL, PROJECT_X_USERNAME, PROJECT_X_API_KEY and the bench's (common.py);
BENCH_NATIVE=1 trusts the account's Auto OCO brackets, 0 trades client-side brackets;
BENCH_REACTIONS=N also measures N reaction times (client-side: a resting limit entry fills, from
the fill event reaching our SignalR client to the stop's request leaving for the transport).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2

sys.path.insert(0, str(Path(__file__).parent))

from common import (
    ACCOUNT_ID,
    BRACKETS,
    CONTRACT,
    SCENARIOS,
    SETTLE,
    START,
    STOP_POINTS,
    TARGET_TRADES,
    arm,
    control,
    emit,
    fail,
    flatten,
    price,
    truth,
    wall,
)

from orderguard.broker.projectx import ProjectXBroker, ProjectXSettings
from orderguard.config import OrderManagerConfig
from orderguard.journal.memory import MemoryJournal
from orderguard.journal.sqlite import SqliteJournal
from orderguard.orders import OrderManager
from orderguard.orders.bracket.values import BracketOutcome

D = Decimal
NATIVE = os.environ.get("BENCH_NATIVE") == "1"
REACTIONS = int(os.environ.get("BENCH_REACTIONS", "0") or 0)
JOURNAL = os.environ.get("BENCH_JOURNAL", "sqlite")
# The manager's own limiter (200 / 60 s) would make back-to-back brackets wait for slots.
UNLIMITED = OrderManagerConfig(rate_limit_requests=1_000_000)


class RecordingTransport(httpx2.AsyncBaseTransport):
    """Notes when each place request is handed to the transport (no added latency: the
    gateway adds it, for every client alike)."""

    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.sent: list[tuple[float, dict[str, Any]]] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path.lower().endswith("/order/place"):
            self.sent.append((time.perf_counter(), json.loads(request.content or b"{}")))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def seen(broker: ProjectXBroker, value: float) -> None:
    """Wait until our quote cache has the price (a bracket validates against the market)."""
    if broker.quotes.last_price(CONTRACT) is None:
        await broker.get_last_price(CONTRACT)
    deadline = time.monotonic() + 5
    while broker.quotes.last_price(CONTRACT) != D(str(value)) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.001)


async def bracket(om: OrderManager) -> Any:
    return await om.place_bracket_order(
        CONTRACT, 0, 1, None, D(str(START - STOP_POINTS)), D(str(START + STOP_POINTS)),
        entry_type="market",
    )  # fmt: skip


async def lifecycles(om: OrderManager, broker: ProjectXBroker) -> None:
    for i in range(BRACKETS):
        price(START)
        await seen(broker, START)
        t0w, t0 = wall(), time.perf_counter()
        error = None
        r: Any = None
        try:
            r = await bracket(om)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        ttp = time.perf_counter() - t0
        ok = r is not None and r.outcome is BracketOutcome.PROTECTED
        price(TARGET_TRADES)
        done = await om.wait_for_completion(r.operation_id, 15) if r is not None else None
        await asyncio.sleep(1.0)  # the same second after the exit as project-x-py gets
        end = wall()
        left = flatten()
        emit(
            "lifecycle", i=i, t0=t0w, end=end, ttp=ttp, ok=ok,
            entry=getattr(r, "entry_order_id", None), stop=getattr(r, "stop_order_id", None),
            target=getattr(r, "target_order_id", None),
            flat=bool(done is not None and done.finished), left_working=left, error=error,
        )  # fmt: skip


async def reactions(
    om: OrderManager, broker: ProjectXBroker, transport: RecordingTransport, journal: Any
) -> None:
    """Fill event in -> stop request out, and where that time goes: until the stop's intent is
    handed to the journal, the durable write (to the writer thread, its INSERT + COMMIT with the
    fsync, back to the event loop), and from there to the transport."""
    arrivals: list[tuple[float, str, list[Any]]] = []
    hub = broker.user_hub
    original = hub._on_event

    def timed(target: str, arguments: list[Any]) -> None:
        arrivals.append((time.perf_counter(), target, arguments))
        original(target, arguments)

    hub._on_event = timed
    writes: list[tuple[float, float]] = []  # a durable intent write, awaited by the caller
    commits: list[tuple[float, float]] = []  # a transaction on the writer thread
    for name in ("record_intent", "record_intents"):
        setattr(journal, name, _timed_async(getattr(journal, name), writes))
    writer = getattr(journal, "_thread", None)
    if writer is not None:
        writer.commit = _timed_sync(writer.commit, commits)
    out: list[float] = []
    stages: list[dict[str, float]] = []
    for _ in range(REACTIONS):
        price(START)
        await seen(broker, START)
        r = await om.place_bracket_order(
            CONTRACT, 0, 1, D(str(START - 5)), D(str(START - 15)), D(str(START + 5))
        )
        entry_id = r.entry_order_id
        arrivals.clear()
        transport.sent.clear()
        writes.clear()
        commits.clear()
        price(START - 5.25)  # the limit entry fills
        r = await om.wait_for_protection(r.operation_id, 30)
        assert r.outcome is BracketOutcome.PROTECTED, r
        fill_at = next(
            t for t, target, args in arrivals
            if target == "GatewayUserOrder" and _is_fill(args, entry_id)
        )  # fmt: skip
        stop_at = next(t for t, body in transport.sent if body.get("type") == 4)
        out.append(stop_at - fill_at)
        mine = [w for w in writes if w[0] >= fill_at and w[1] <= stop_at]
        if mine:
            start, done = mine[-1]
            txn = [c for c in commits if c[0] >= start and c[1] <= done]
            c0, c1 = txn[-1] if txn else (start, start)
            stages.append({
                "until_journal": start - fill_at,
                "journal": done - start,
                "to_writer": c0 - start if txn else 0.0,
                "commit": c1 - c0,
                "back_to_loop": done - c1 if txn else 0.0,
                "journal_to_send": stop_at - done,
            })  # fmt: skip
        price(START + 6)
        await om.wait_for_completion(r.operation_id, 30)
        flatten()
    emit("reactions", seconds=out, journal=JOURNAL, stages=stages)


def _timed_async(call: Any, into: list[tuple[float, float]]) -> Any:
    async def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        result = await call(*args, **kwargs)
        into.append((start, time.perf_counter()))
        return result

    return timed


def _timed_sync(call: Any, into: list[tuple[float, float]]) -> Any:
    def timed(*args: Any, **kwargs: Any) -> Any:  # on the writer thread: list.append is atomic
        start = time.perf_counter()
        result = call(*args, **kwargs)
        into.append((start, time.perf_counter()))
        return result

    return timed


def _is_fill(arguments: list[Any], order_id: int | None) -> bool:
    for arg in arguments:
        data = arg.get("data", arg) if isinstance(arg, dict) else None
        if isinstance(data, dict) and data.get("id") == order_id and data.get("status") == 2:
            return True
    return False


async def faults(om: OrderManager, broker: ProjectXBroker) -> None:
    for scenario in SCENARIOS:
        price(START)
        await seen(broker, START)
        control("faults/clear")
        arm(scenario)
        t0w = wall()
        try:
            r = await asyncio.wait_for(bracket(om), 90)
            result = f"returned {r.outcome.name}"
        except Exception as exc:
            result = f"raised {type(exc).__name__}: {str(exc)[:160]}"
        await asyncio.sleep(SETTLE)  # what the client does on its own meanwhile
        control("faults/clear")
        emit("fault", scenario=scenario, t0=t0w, result=result, truth=truth())
        flatten()
        await asyncio.sleep(0.5)


async def main() -> None:
    control("market", {"contractId": CONTRACT, "running": False})
    transport = RecordingTransport()
    settings = ProjectXSettings(
        api_key=os.environ["PROJECT_X_API_KEY"],  # type: ignore[arg-type]  # a SecretStr
        username=os.environ["PROJECT_X_USERNAME"],
        api_url=os.environ["PROJECTX_API_URL"],
        account_id=ACCOUNT_ID,
        native_brackets=NATIVE,
    )
    broker = ProjectXBroker(settings, transport=transport)
    journal: Any = (
        MemoryJournal()
        if JOURNAL == "memory"
        else SqliteJournal(Path(tempfile.mkdtemp()) / f"bench-{ACCOUNT_ID}.db")
    )
    om = OrderManager(
        broker, account_id=ACCOUNT_ID, journal=journal, config=UNLIMITED,
        allow_memory_journal=JOURNAL == "memory",
    )  # fmt: skip
    await om.start()
    try:
        emit("ready", account=ACCOUNT_ID)
        await lifecycles(om, broker)
        if REACTIONS:
            await reactions(om, broker, transport, journal)
        await faults(om, broker)
    finally:
        await om.cleanup()
        await journal.close()
        await broker.aclose()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as exc:
        fail(exc)
