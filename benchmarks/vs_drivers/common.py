"""What both bracket drivers share (stdlib only: it runs under project-x-py's Python too).

A driver is a client process: it reads the gateway's URLs, its credentials and what to run from
the environment, trades through its own client library, and prints one JSON object per line.
The parent (``bench_vs_project_x_py.py``) owns the gateway and judges everything from its truth.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from typing import Any

CONTRACT = "CON.F.US.MNQ.Z26"
START = 21000.0
TARGET_TRADES = START + 11  # the market trades through the +10 target
STOP_POINTS = 10.0
CONTROL = os.environ.get("ORDERGUARD_CONTROL_URL", "")
ACCOUNT_ID = int(os.environ.get("BENCH_ACCOUNT_ID", "0") or 0)
BRACKETS = int(os.environ.get("BENCH_BRACKETS", "0") or 0)
SCENARIOS = [s for s in os.environ.get("BENCH_SCENARIOS", "").split(",") if s]
SETTLE = float(os.environ.get("BENCH_SETTLE", "6"))


def control(name: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        f"{CONTROL}/{name}",
        data=json.dumps(body or {}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def truth() -> dict[str, Any]:
    with urllib.request.urlopen(f"{CONTROL}/truth", timeout=30) as answer:
        payload = json.loads(answer.read())
    return next(a for a in payload["accounts"] if a["account"]["id"] == ACCOUNT_ID)


def emit(kind: str, **fields: Any) -> None:
    print(json.dumps({"kind": kind, **fields}, default=str), flush=True)


def price(value: float) -> None:
    control("price", {"contractId": CONTRACT, "price": value})


def flatten() -> list[int]:
    """Back to flat through the platform (not the client): working orders cancelled, the
    position closed. Returns the ids of the orders that were still working (left-overs)."""
    state = truth()
    left = [o["id"] for o in state["orders"] if o["status"] in (1, 6)]
    for order_id in left:
        control("orders/cancel", {"accountId": ACCOUNT_ID, "orderId": order_id})
    if any(p["size"] for p in state["positions"]):
        control("positions/close", {"accountId": ACCOUNT_ID, "contractId": CONTRACT})
    return left


def wall() -> float:
    return time.time()


def fail(exc: BaseException) -> None:
    emit("failed", error=f"{type(exc).__name__}: {exc}")
    sys.exit(1)


# Faults each scenario arms (the gateway's control API) just before the bracket is placed.
FAULTS: dict[str, list[dict[str, Any]]] = {
    "entry_answer_lost": [{"target": "Order/place", "kind": "ambiguous"}],
    "entry_500": [{"target": "Order/place", "kind": "server_error"}],
    "entry_429_after_send": [{"target": "Order/place", "kind": "rate_limited_after_send"}],
    "entry_answer_held_30s": [{"target": "Order/place", "kind": "hold", "seconds": 30}],
    "user_hub_drops_3_events": [{"target": "hub:user", "kind": "drop", "count": 3}],
}


def arm(scenario: str) -> None:
    for fault in FAULTS[scenario]:
        control("faults", fault)
