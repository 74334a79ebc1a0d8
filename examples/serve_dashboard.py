"""Serve the dashboard from inside a strategy, with a recovery hook and alerts.

    python examples/serve_dashboard.py                         # open the printed URL; Ctrl-C stops
    python examples/serve_dashboard.py --screenshot out.png    # headless chromium takes a picture

A small strategy on the embedded exchange places a market-entry bracket every second (at most
three open; the oldest is closed to make room). It registers a ``before_flatten`` recovery hook
and an alert callback, and after a few seconds buys one MES contract outside any bracket, with
no stop, so that an incident shows (the picture in docs/operators.md is taken this way).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from decimal import Decimal
from pathlib import Path

from orderguard import (
    Alert,
    AlertPolicy,
    HookContext,
    HookPoint,
    MarketDriver,
    OrderGuardError,
    OrderManager,
    OrderSide,
    Proceed,
    RandomWalkPrices,
    SimBroker,
    TightenStop,
    serve_dashboard,
)

MNQ = "CON.F.US.MNQ.Z26"
MES = "CON.F.US.MES.Z26"
TICK = Decimal("0.25")


async def strategy(orders: OrderManager, sim: SimBroker) -> None:
    side = OrderSide.SELL
    while True:
        active = orders.brackets.active()
        for operation_id in active[: max(0, len(active) - 2)]:
            with contextlib.suppress(OrderGuardError):
                await orders.close_bracket(operation_id)
        if not orders.brackets.active():
            side = side.opposite  # brackets net on one contract: turn only when none is open
        price = sim.exchange.last_price(MNQ)
        assert price is not None
        away = TICK * 12 * (1 if side is OrderSide.BUY else -1)
        with contextlib.suppress(OrderGuardError):
            await orders.place_bracket_order(
                MNQ, int(side), 1, None, price - away, price + away, entry_type="market",
                native=False,
            )  # fmt: skip
        await asyncio.sleep(1.0)


async def main(screenshot: Path | None) -> None:
    sim = SimBroker.create(prices={MNQ: Decimal("21000.00"), MES: Decimal("6000.00")})
    driver = MarketDriver(sim.exchange, sim.clock, MNQ, RandomWalkPrices(seed=1), interval=0.2)
    async with OrderManager(sim, account_id=1) as orders:

        @orders.hooks.on(HookPoint.BEFORE_FLATTEN)
        async def one_more_try(ctx: HookContext) -> TightenStop | Proceed:
            # Late protection: try the stop two ticks tighter before flattening.
            if ctx.stop_price is None:
                return Proceed()
            step = 2 * TICK if ctx.owned > 0 else -2 * TICK
            return TightenStop(ctx.stop_price + step)

        def tell(alert: Alert) -> None:
            print(f"ALERT {alert.kind}: {alert.message}")

        orders.enable_alerts(callback=tell, policy=AlertPolicy(unprotected_after=2.0))
        await driver.start()
        trading = asyncio.create_task(strategy(orders, sim))
        server = await serve_dashboard(orders, port=0 if screenshot else 8765)
        print(f"dashboard: {server.url_with_token}")
        try:
            await asyncio.sleep(4)
            # An incident for the page: one MES bought outside any bracket, with no stop.
            await orders.place_market_order(MES, int(OrderSide.BUY), 1)
            if screenshot is None:
                await asyncio.Event().wait()
            await asyncio.sleep(5)
            await picture(server.url, screenshot)
            print(f"screenshot: {screenshot}")
        finally:
            trading.cancel()
            await server.stop()
            await driver.stop()


async def picture(url: str, path: Path) -> None:
    from playwright.async_api import async_playwright  # noqa: PLC0415  (dev extra)

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
        )
        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        await page.goto(url + "/")
        await page.wait_for_selector("#chart-ttp rect.ttp-bar")
        await asyncio.sleep(1.5)
        await page.screenshot(path=str(path), full_page=True)
        await browser.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screenshot", type=Path, help="save a picture of the page and exit")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.screenshot))
