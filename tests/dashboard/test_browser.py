"""The dashboard in a real browser: Debian's chromium driven by playwright (never
``playwright install``). Skipped, with the reason, when chromium is not installed.

Real time on loopback: the demo's exchange and strategy run on the wall clock, every wait is
bounded.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from orderguard.dashboard import DashboardServer, ManagerSource
from orderguard.dashboard.demo import demo_session
from orderguard.orders.bracket.values import BracketOutcome

CHROMIUM = Path(os.environ.get("ORDERGUARD_CHROMIUM", "/usr/bin/chromium"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no chromium at {CHROMIUM} (apt-get install -y chromium)",
    ),
]
async_api = pytest.importorskip("playwright.async_api", reason="playwright is a dev extra")

ROWS = "document.querySelectorAll('#operations tbody tr').length"
WAIT_MS = 20_000


async def test_dashboard_is_live_and_rollback_needs_the_token(tmp_path: Path) -> None:
    """Rows appear and grow as brackets run; a rollback without the token is refused (401)
    and the bracket stays; with it the bracket ends flat; the screenshot has content."""
    async with demo_session(every=0.3, tick_every=0.1, distance=400, max_open=4) as session:
        m = session.manager
        server = DashboardServer(ManagerSource(m, m.alerts), port=0, interval=0.2)
        async with server, async_api.async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
            )
            try:
                page = await browser.new_page(viewport={"width": 1400, "height": 1100})
                await page.goto(server.url + "/")  # no token in the URL
                await page.wait_for_function(f"{ROWS} >= 2", timeout=WAIT_MS)
                seen = await page.evaluate(ROWS)
                await page.wait_for_function(f"{ROWS} > {seen}", timeout=WAIT_MS)
                await page.wait_for_selector("#chart-ttp rect.ttp-bar", timeout=WAIT_MS)
                assert await page.locator("#conn").inner_text() == "● live"

                # The strategy stops placing, so the bracket picked stays open until rolled back.
                assert session.task is not None
                session.task.cancel()
                await asyncio.gather(session.task, return_exceptions=True)
                await page.wait_for_selector("#operations button.rollback", timeout=WAIT_MS)
                op_id = await page.locator("#operations button.rollback").first.evaluate(
                    "b => b.closest('tr').dataset.op"
                )
                row_button = page.locator(f'#operations tr[data-op="{op_id}"] button.rollback')

                await row_button.click()
                assert "Force a rollback of operation" in await page.inner_text("#confirm-text")
                await page.click("#confirm-yes")
                await page.wait_for_function(
                    "document.getElementById('rollback-result').dataset.status === '401'",
                    timeout=WAIT_MS,
                )
                assert op_id in m.brackets.active()

                await page.fill("#token", server.token)
                await row_button.click()
                await page.click("#confirm-yes")
                await page.wait_for_function(
                    "document.getElementById('rollback-result').dataset.status === '200'",
                    timeout=WAIT_MS,
                )
                assert "safe" in await page.inner_text("#rollback-result")
                status = m.get_bracket_status(op_id)
                assert status is not None and status.outcome is BracketOutcome.FLAT
                await page.wait_for_function(
                    f"document.querySelector('#operations tr[data-op=\"{op_id}\"] .outcome')"
                    ".textContent === 'flat'",
                    timeout=WAIT_MS,
                )

                shot = tmp_path / "dashboard.png"
                await page.screenshot(path=str(shot), full_page=True)
                data = shot.read_bytes()
                assert data[:8] == b"\x89PNG\r\n\x1a\n"
                assert len(data) > 40_000  # a blank page of this size compresses to a few KB
                text = (await page.inner_text("body")).lower()
                assert "positions and protection" in text and "protected" in text
            finally:
                await browser.close()
