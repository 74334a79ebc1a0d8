"""Gateway simulator benchmarks on loopback: REST round trips per second, event fan-out latency.

1. REST round trips per second: ``Order/searchOpen`` (a read) and ``Order/place`` + ``cancel``
   of a resting limit (mutations), one keep-alive connection, ``concurrency`` requests in flight,
   rate limits off. Median of ``--runs`` runs.
2. Event fan-out latency: from sending ``Order/place`` to the ``GatewayUserOrder`` event arriving
   at a subscribed SignalR client (our own test client over ``websockets``), per order, with
   ``--subscribers`` user-hub connections subscribed; median and p99 of ``--orders`` orders.

The gateway runs in this process on a free port of 127.0.0.1 (uvicorn, system clock, market
paused so prices do not move under the orders); the clients share its event loop, so figures are
for one core doing both sides — a floor for what a separate client process would see.

Run: ``.venv/bin/python benchmarks/bench_gateway.py [--requests N] [--orders N]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
from decimal import Decimal

import httpx2 as httpx
import websockets

from orderguard.clock import SystemClock
from orderguard.gateway import Gateway, GatewayConfig

MNQ = "CON.F.US.MNQ.Z26"
RS = "\x1e"


async def _login(client: httpx.AsyncClient, gateway: Gateway) -> dict[str, str]:
    user, key = gateway.credentials
    r = await client.post("/api/Auth/loginKey", json={"userName": user, "apiKey": key})
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def rest_rate(
    client: httpx.AsyncClient, headers: dict[str, str], n: int, concurrency: int, mutation: bool
) -> float:
    """Requests per second (a place+cancel pair counts as two)."""
    limit = {"accountId": 1, "contractId": MNQ, "type": 1, "side": 0, "size": 1,
             "limitPrice": 20000}  # fmt: skip
    per_worker = n // concurrency

    async def worker() -> None:
        for _ in range(per_worker if not mutation else per_worker // 2):
            if mutation:
                r = await client.post("/api/Order/place", json=limit, headers=headers)
                order_id = r.json()["orderId"]
                await client.post("/api/Order/cancel", json={"accountId": 1, "orderId": order_id},
                                  headers=headers)  # fmt: skip
            else:
                await client.post("/api/Order/searchOpen", json={"accountId": 1}, headers=headers)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    done = per_worker * concurrency if not mutation else (per_worker // 2) * 2 * concurrency
    return done / (time.perf_counter() - start)


async def _hub(base: str, token: str) -> websockets.ClientConnection:
    ws = await websockets.connect(f"{base.replace('http', 'ws', 1)}/hubs/user?access_token={token}")
    await ws.send(json.dumps({"protocol": "json", "version": 1}) + RS)
    await ws.recv()
    message = {"type": 1, "invocationId": "1", "target": "SubscribeOrders", "arguments": [1]}
    await ws.send(json.dumps(message) + RS)
    await ws.recv()
    return ws


async def fan_out(
    client: httpx.AsyncClient, gateway: Gateway, headers: dict[str, str], orders: int, subs: int
) -> list[float]:
    """Seconds from sending Order/place to the last subscriber receiving its order event."""
    assert gateway.urls is not None
    token = headers["Authorization"].split()[1]
    hubs = [await _hub(gateway.urls.base, token) for _ in range(subs)]
    latencies: list[float] = []
    limit = {"accountId": 1, "contractId": MNQ, "type": 1, "side": 0, "size": 1,
             "limitPrice": 20000}  # fmt: skip

    async def first_event(ws: websockets.ClientConnection, tag: str) -> None:
        while True:
            text = await ws.recv()
            if "GatewayUserOrder" in text and f'"customTag":"{tag}"' in text:
                return

    for index in range(orders):
        tag = f"bench-{subs}-{index}"  # customTag is unique per account: never reuse one
        waiting = [asyncio.create_task(first_event(ws, tag)) for ws in hubs]
        start = time.perf_counter()
        await client.post("/api/Order/place", json={**limit, "customTag": tag}, headers=headers)
        await asyncio.gather(*waiting)
        latencies.append(time.perf_counter() - start)
    for ws in hubs:
        await ws.close()
    return latencies


async def main(args: argparse.Namespace) -> None:
    # Our bench client sends no SignalR pings: keep the server from timing it out.
    config = GatewayConfig(rate_limits=False, history_days=0, seed=1, client_timeout=3600)
    gateway = Gateway(config, clock=SystemClock())
    urls = await gateway.start()
    await gateway.core.market.stop()  # a still market: resting orders stay resting
    gateway.exchange.set_price(MNQ, Decimal("21000"))
    try:
        async with httpx.AsyncClient(base_url=urls.base, verify=False, timeout=30) as client:
            headers = await _login(client, gateway)
            await rest_rate(client, headers, 200, 1, False)  # warm-up
            for mutation in (False, True):
                for concurrency in (1, 8):
                    rates = [
                        await rest_rate(client, headers, args.requests, concurrency, mutation)
                        for _ in range(args.runs)
                    ]
                    what = "place+cancel" if mutation else "searchOpen"
                    print(f"REST {what:>12} concurrency {concurrency}: median "
                          f"{statistics.median(rates):,.0f} req/s  (runs: "
                          f"{', '.join(f'{r:,.0f}' for r in rates)})")  # fmt: skip
            for subs in (1, 10):
                lat = sorted(await fan_out(client, gateway, headers, args.orders, subs))
                p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
                print(f"fan-out place -> GatewayUserOrder, {subs:>2} subscriber(s): median "
                      f"{statistics.median(lat) * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms "
                      f"(n={len(lat)})")  # fmt: skip
    finally:
        await gateway.stop()
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
