"""A trading process that SIGKILLs itself at a chosen point of a bracket's life.

Usage: crash_worker.py BASE_URL USER KEY JOURNAL ACCOUNT DIE_AT
DIE_AT: ``before_place_N`` / ``after_place_N`` (the N-th Order/place of the process: killed just
before it is sent, or just after its answer arrived but before the manager saw it), or
``protected`` (after place_bracket_order reported the bracket protected).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from decimal import Decimal

from orderguard.broker.base import Outcome
from orderguard.broker.projectx import ProjectXBroker, ProjectXSettings
from orderguard.config import OrderManagerConfig
from orderguard.journal.sqlite import SqliteJournal
from orderguard.models import OrderRequest
from orderguard.orders import OrderManager

MNQ = "CON.F.US.MNQ.Z26"


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class DyingBroker(ProjectXBroker):
    die_at = ""
    places = 0

    async def place_order(self, request: OrderRequest) -> Outcome:
        self.places += 1
        if self.die_at == f"before_place_{self.places}":
            die()
        outcome = await super().place_order(request)
        if self.die_at == f"after_place_{self.places}":
            die()
        return outcome


async def main(base: str, user: str, key: str, journal: str, account: int, die_at: str) -> None:
    settings = ProjectXSettings(api_key=key, username=user, api_url=base, first_connect_wait=5.0)
    broker = DyingBroker(settings)
    broker.die_at = die_at
    config = OrderManagerConfig(status_check_initial_delay=0.05, status_check_max_delay=0.5)
    om = OrderManager(broker, account_id=account, journal=SqliteJournal(journal), config=config)
    await om.start()
    r = await om.place_bracket_order(
        MNQ, 0, 1, None, Decimal("20990"), Decimal("21010"), entry_type="market"
    )
    print("bracket", r.outcome.value, flush=True)
    if die_at == "protected":
        die()
    await asyncio.sleep(60)  # not reached in the tests: every case dies before


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)  # read by the test on failure
    base, user, key, journal, account, die_at = sys.argv[1:7]
    asyncio.run(main(base, user, key, journal, int(account), die_at))
