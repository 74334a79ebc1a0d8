"""orderguard's ProjectX adapter on the gateway simulator, with a fixed added network latency.

Measured per bracket lifecycle (market entry, +/-10 points, then the target trades):

* **time to protection**: from calling ``place_bracket_order`` until it returns PROTECTED
  (p50, p99, and in round trips of the added latency), checked against the simulator's truth;
* **unprotected seconds**, judged from the simulator's truth: the entry's fill time (its trade)
  to the creation of the working stop that covers it (0 for native brackets: the server holds
  the stop, Suspended, before the entry fills);
* **REST requests** the adapter sent per lifecycle (place to flat);
* **reaction time**: a client-side bracket's limit entry rests; the market trades through it;
  from the fill event reaching our SignalR client to the protective stop's request being handed
  to the HTTP transport (target: p99 <= 2 ms).

The latency is added on the client side of the wire: an httpx2 transport that waits half the
round trip before sending and half after the answer (hub events get no added latency). The
gateway runs in this process (uvicorn, loopback, rate limits off, prices moved by the control
API), so both sides share one core: figures are an upper bound of the client's own overhead.

project-x-py's bracket is not measured here (see RESULTS.md).

Run: ``.venv/bin/python benchmarks/bench_projectx.py [--brackets N] [--latency-ms L]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2

from orderguard.broker.projectx import ProjectXBroker, ProjectXSettings
from orderguard.config import OrderManagerConfig
from orderguard.gateway import Gateway, GatewayConfig
from orderguard.gateway.config import AccountSpec
from orderguard.journal.memory import MemoryJournal
from orderguard.journal.sqlite import SqliteJournal
from orderguard.orders import OrderManager
from orderguard.orders.bracket.values import BracketOutcome

MNQ = "CON.F.US.MNQ.Z26"
START = Decimal("21000.00")
# The gateway's limits are off, and so is the manager's own limiter (200 per 60 s by default):
# with it, a run of 50 back-to-back brackets waits for slots and measures the limiter.
UNLIMITED = OrderManagerConfig(rate_limit_requests=1_000_000)


class LatencyTransport(httpx2.AsyncBaseTransport):
    """Adds a fixed round trip to every request; notes when each place request leaves."""

    def __init__(self, latency: float) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.half = latency / 2
        self.sent: list[tuple[float, dict[str, Any]]] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path.lower().endswith("/order/place"):
            self.sent.append((time.perf_counter(), json.loads(request.content or b"{}")))
        if self.half:
            await asyncio.sleep(self.half)
        response = await self.inner.handle_async_request(request)
        await response.aread()
        if self.half:
            await asyncio.sleep(self.half)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def set_price(ctl: httpx2.AsyncClient, broker: ProjectXBroker, price: Decimal) -> None:
    """Move the market and wait until our quote cache has seen it (so brackets validate)."""
    await control(ctl, "price", {"contractId": MNQ, "price": str(price)})
    if broker.quotes.last_price(MNQ) is None:
        await broker.get_last_price(MNQ)  # subscribes
    deadline = time.monotonic() + 5
    while broker.quotes.last_price(MNQ) != price and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.001)  # polling the quote cache with a deadline


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def control(client: httpx2.AsyncClient, name: str, body: dict[str, Any]) -> Any:
    r = await client.post(f"/control/{name}", json=body)
    r.raise_for_status()
    return r.json()


async def truth(client: httpx2.AsyncClient, account: int) -> dict[str, Any]:
    r = await client.get("/control/truth")
    return next(a for a in r.json()["accounts"] if a["account"]["id"] == account)


async def lifecycle_runs(
    gw: Gateway, ctl: httpx2.AsyncClient, account: int, native: bool, n: int, latency: float
) -> dict[str, Any]:
    user, key = gw.credentials
    transport = LatencyTransport(latency)
    settings = ProjectXSettings(
        api_key=key, username=user, api_url=gw.urls.base, native_brackets=native
    )
    broker = ProjectXBroker(settings, transport=transport)
    journal = SqliteJournal(Path(tempfile.mkdtemp()) / f"bench-{account}.db")
    om = OrderManager(broker, account_id=account, journal=journal, config=UNLIMITED)
    await om.start()
    to_protection: list[float] = []
    unprotected: list[float] = []
    requests: list[int] = []
    unfinished: list[dict[str, Any]] = []
    for _ in range(n):
        await set_price(ctl, broker, START)
        before = broker._http.stats["requests"]
        t0 = time.perf_counter()
        r = await om.place_bracket_order(
            MNQ, 0, 1, None, START - 10, START + 10, entry_type="market"
        )
        to_protection.append(time.perf_counter() - t0)
        assert r.outcome is BracketOutcome.PROTECTED, r
        state = await truth(ctl, account)
        fill = max(
            datetime.fromisoformat(t["creationTimestamp"])
            for t in state["trades"]
            if t["orderId"] == r.entry_order_id
        )
        stop = next(o for o in state["orders"] if o["id"] == r.stop_order_id)
        created = datetime.fromisoformat(stop["creationTimestamp"])
        unprotected.append(max(0.0, (created - fill).total_seconds()))
        await control(ctl, "price", {"contractId": MNQ, "price": str(START + 11)})
        done = await om.wait_for_completion(r.operation_id, 30)
        if not done.finished:  # recorded, not hidden: see RESULTS.md
            legs = [o for o in (await truth(ctl, account))["orders"] if o["id"] in (
                r.entry_order_id, r.stop_order_id, r.target_order_id)]  # fmt: skip
            unfinished.append({"result": repr(done), "truth": legs})
            continue
        requests.append(broker._http.stats["requests"] - before)
    await om.cleanup()
    await journal.close()
    await broker.aclose()
    return {
        "mode": "native" if native else "client-side",
        "to_protection_p50_ms": round(pct(to_protection, 0.5) * 1000, 1),
        "to_protection_p99_ms": round(pct(to_protection, 0.99) * 1000, 1),
        "to_protection_p50_rtt": round(pct(to_protection, 0.5) / latency, 2) if latency else None,
        "to_protection_p99_rtt": round(pct(to_protection, 0.99) / latency, 2) if latency else None,
        "unprotected_p50_ms": round(pct(unprotected, 0.5) * 1000, 1),
        "unprotected_max_ms": round(max(unprotected) * 1000, 1),
        "rest_requests_per_lifecycle_median": statistics.median(requests),
        "unfinished_after_30s": unfinished,
    }


async def reaction_runs(
    gw: Gateway, ctl: httpx2.AsyncClient, n: int, latency: float, *, durable: bool = True
) -> dict[str, Any]:
    """Client-side bracket with a resting limit entry: fill event in → stop request out."""
    user, key = gw.credentials
    transport = LatencyTransport(latency)
    settings = ProjectXSettings(
        api_key=key, username=user, api_url=gw.urls.base, native_brackets=False
    )
    broker = ProjectXBroker(settings, transport=transport)
    journal: Any = (
        SqliteJournal(Path(tempfile.mkdtemp()) / "bench-react.db") if durable else MemoryJournal()
    )
    # The memory journal isolates the send path from the durable intent write (an fsync).
    om = OrderManager(
        broker, account_id=2, journal=journal, config=UNLIMITED, allow_memory_journal=not durable
    )
    await om.start()
    arrivals: list[tuple[float, Any]] = []
    hub = broker.user_hub
    original = hub._on_event

    def timed(target: str, arguments: list[Any]) -> None:
        arrivals.append((time.perf_counter(), (target, arguments)))
        original(target, arguments)

    hub._on_event = timed
    reactions: list[float] = []
    for _ in range(n):
        await set_price(ctl, broker, START)
        r = await om.place_bracket_order(MNQ, 0, 1, START - 5, START - 15, START + 5)
        entry_id = r.entry_order_id
        arrivals.clear()
        transport.sent.clear()
        await control(ctl, "price", {"contractId": MNQ, "price": str(START - 5 - Decimal("0.25"))})
        r = await om.wait_for_protection(r.operation_id, 30)
        assert r.outcome is BracketOutcome.PROTECTED, r
        fill_at = next(
            t
            for t, (target, args) in arrivals
            if target == "GatewayUserOrder" and _is_fill(args, entry_id)
        )
        stop_at = next(t for t, body in transport.sent if body.get("type") == 4)
        reactions.append(stop_at - fill_at)
        await control(ctl, "price", {"contractId": MNQ, "price": str(START + 6)})
        await om.wait_for_completion(r.operation_id, 30)
    await om.cleanup()
    await journal.close()
    await broker.aclose()
    return {
        "journal": "sqlite (synchronous=FULL)" if durable else "memory",
        "reaction_p50_ms": round(pct(reactions, 0.5) * 1000, 3),
        "reaction_p99_ms": round(pct(reactions, 0.99) * 1000, 3),
        "reaction_max_ms": round(max(reactions) * 1000, 3),
    }


def _is_fill(arguments: list[Any], order_id: int | None) -> bool:
    for arg in arguments:
        data = arg.get("data", arg) if isinstance(arg, dict) else None
        if isinstance(data, dict) and data.get("id") == order_id and data.get("status") == 2:
            return True
    return False


async def main(brackets: int, latency_ms: float) -> None:
    latency = latency_ms / 1000
    config = GatewayConfig(
        accounts=(AccountSpec(1, "SIM-1"), AccountSpec(2, "PA-2", native_brackets=False)),
        rate_limits=False,
        start_prices={MNQ: START},
    )
    async with Gateway(config).running(port=0) as gw:
        ctl = httpx2.AsyncClient(base_url=gw.urls.base, trust_env=False)
        for contract in (
            "CON.F.US.MNQ.Z26",
            "CON.F.US.MES.Z26",
            "CON.F.US.ENQ.Z26",
            "CON.F.US.EP.Z26",
        ):
            await control(ctl, "market", {"contractId": contract, "running": False})
        results = {
            "latency_ms": latency_ms,
            "brackets": brackets,
            "python": sys.version.split()[0],
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "runs": [
                await lifecycle_runs(gw, ctl, 1, True, brackets, latency),
                await lifecycle_runs(gw, ctl, 2, False, brackets, latency),
            ],
            "reaction": [
                await reaction_runs(gw, ctl, brackets, latency),
                await reaction_runs(gw, ctl, brackets, latency, durable=False),
            ],
        }
        await ctl.aclose()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brackets", type=int, default=30)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args()
    asyncio.run(main(args.brackets, args.latency_ms))
