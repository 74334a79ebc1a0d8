"""orderguard against project-x-py, side by side on the gateway simulator, judged from its truth.

One gateway (in this process) serves three accounts: orderguard with native brackets (account 1,
Auto OCO), orderguard with client-side brackets (account 2, Position Brackets) and project-x-py
4.4.1 (account 3; its ``place_bracket_order`` with a market entry is client-side whatever the
account). Each client runs in a process of its own (``benchmarks/vs_drivers/``), one after the
other, so none shares a CPU with the server's event loop or with the other. The gateway adds the
same fixed round trip to every REST request (half before it runs, half before its answer
leaves); hub events get none. Prices are moved by the control API: the same path for everyone
(market entry at 21000, stop -10 / target +10 points, then the market trades at +11).

Measured per bracket lifecycle, from the gateway's truth unless said:

* **time to protection** (client-side clock): calling ``place_bracket_order`` until it returns
  protected, p50 / p99, in round trips of the added latency;
* **unprotected seconds**: the entry's fill (its trade) to the creation of the stop that covers
  it (0 when the stop existed before the fill: a native bracket's Suspended child);
* **REST requests** the gateway received from the start of the bracket until a second after
  the position was flat (the client's background reads included);
* **left working**: orders of the client still working a second after the position was flat;
* **reaction time** (orderguard only, client-side clock): a resting limit entry fills, from the
  fill event reaching our SignalR client to the stop's request leaving for the transport;
* **faults**: the same fault armed before each client's bracket; what the account holds once
  the client has had ``--settle`` seconds on its own.

Run: ``.venv-test/bin/python benchmarks/bench_vs_project_x_py.py [--brackets N] [--latency-ms L]``
with project-x-py's Python found as ``$ORDERGUARD_PXP_PYTHON`` or ``.venv-pxp/bin/python`` (the
venv ``tests/gateway/test_project_x_py.py`` creates).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from orderguard.gateway import Gateway, GatewayConfig
from orderguard.gateway.config import AccountSpec
from orderguard.gateway.control import truth as read_truth

ROOT = Path(__file__).resolve().parents[1]
DRIVERS = Path(__file__).with_name("vs_drivers")
MNQ = "CON.F.US.MNQ.Z26"
MUTATIONS = ("order/place", "order/cancel", "order/modify", "position/close", "position/partial")
SCENARIOS = (
    "entry_answer_lost",
    "entry_500",
    "entry_429_after_send",
    "entry_answer_held_30s",
    "user_hub_drops_3_events",
)
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


class WireLatency:
    """ASGI middleware: every ``/api`` request waits half the round trip before it runs and half
    before its answer leaves; each is logged (wall time, path) for the per-lifecycle counts."""

    def __init__(self, app: ASGIApp, latency: float) -> None:
        self.app = app
        self.half = latency / 2
        self.log: list[tuple[float, str]] = []

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.lower().startswith("/api/"):
            await self.app(scope, receive, send)
            return
        self.log.append((time.time(), path))
        if self.half:
            await asyncio.sleep(self.half)

        async def delayed(message: Message) -> None:
            if message["type"] == "http.response.start" and self.half:
                await asyncio.sleep(self.half)
            await send(message)

        await self.app(scope, receive, delayed)

    def count(self, start: float, end: float) -> int:
        return sum(1 for at, _ in self.log if start <= at <= end)

    def paths(self, start: float, end: float) -> list[str]:
        return [path.removeprefix("/api/") for at, path in self.log if start <= at <= end]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def stamp(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


async def truth(gw: Gateway, account: int) -> dict[str, Any]:
    payload = json.loads(json.dumps(read_truth(gw.core), default=str))
    return next(a for a in payload["accounts"] if a["account"]["id"] == account)


def unprotected(state: dict[str, Any], lifecycle: dict[str, Any]) -> float | None:
    """Fill of the entry to creation of the covering stop (None: no stop ever covered it)."""
    entry = lifecycle.get("entry")
    fills = [stamp(t["creationTimestamp"]) for t in state["trades"] if t["orderId"] == entry]
    if not fills:
        return None
    filled = max(fills)
    stops = [
        o for o in state["orders"]
        if o["type"] in (4, 5) and o["side"] == 1
        and lifecycle["t0"] <= stamp(o["creationTimestamp"]) <= lifecycle["end"]
    ]  # fmt: skip
    if not stops:
        return None
    created = min(stamp(o["creationTimestamp"]) for o in stops)
    return max(0.0, created - filled)


def judge_fault(record: dict[str, Any]) -> dict[str, Any]:
    """What the account holds after the fault (the driver's snapshot of the gateway's truth)."""
    state, t0 = record["truth"], record["t0"]
    mine = [o for o in state["orders"] if stamp(o["creationTimestamp"]) >= t0 - 0.5]
    entries = [o for o in mine if o["side"] == 0 and o["type"] == 2]
    filled = [o for o in entries if o["fillVolume"]]
    position = sum(
        (p["size"] if p["type"] == 1 else -p["size"])
        for p in state["positions"] if p["contractId"] == MNQ
    )  # fmt: skip
    stops = sum(
        o["size"] for o in mine if o["type"] in (4, 5) and o["side"] == 1 and o["status"] == 1
    )
    if position and stops >= abs(position):
        verdict = "protected"
    elif position:
        verdict = f"NAKED: position {position:+d}, stops {stops}"
    else:
        verdict = "flat"
    if len(filled) > 1:
        verdict += f", DUPLICATE ENTRY ({len(filled)} filled)"
    return {
        "scenario": record["scenario"],
        "client_saw": record["result"],
        "entries_filled": len(filled),
        "position": position,
        "working_stops": stops,
        "verdict": verdict,
    }


def pxp_python() -> str:
    found = (os.environ.get("ORDERGUARD_PXP_PYTHON", ""), str(ROOT / ".venv-pxp/bin/python"))
    for candidate in found:
        if candidate and Path(candidate).exists():
            return candidate
    raise SystemExit(
        "project-x-py's Python not found: set ORDERGUARD_PXP_PYTHON or create .venv-pxp "
        "(pytest tests/gateway/test_project_x_py.py does)"
    )


async def run_driver(
    name: str, command: list[str], env: dict[str, str], timeout: float
) -> list[dict[str, Any]]:
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    records = []
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    failed = [r for r in records if r["kind"] == "failed"]
    if process.returncode or failed:
        tail = err.decode(errors="replace")[-2000:]
        raise SystemExit(f"{name} driver failed: {failed} {tail}")
    return records


async def measure(
    gw: Gateway, wire: WireLatency, name: str, account: int, records: list[dict[str, Any]],
    latency: float,
) -> dict[str, Any]:  # fmt: skip
    state = await truth(gw, account)
    lives = [r for r in records if r["kind"] == "lifecycle"]
    ok = [r for r in lives if r["ok"]]
    ttp = [r["ttp"] for r in ok]
    gaps = [unprotected(state, r) for r in ok]
    covered = [g for g in gaps if g is not None]
    requests = [wire.count(r["t0"], r["end"]) for r in lives]
    mutations = [
        sum(1 for p in wire.paths(r["t0"], r["end"]) if p.lower().startswith(MUTATIONS))
        for r in lives
    ]
    result: dict[str, Any] = {
        "client": name,
        "account": account,
        "brackets": len(lives),
        "protected_on_return": len(ok),
        "errors": sorted({r["error"] for r in lives if r["error"]}),
        "ttp_p50_ms": round(pct(ttp, 0.5) * 1000, 1) if ttp else None,
        "ttp_p99_ms": round(pct(ttp, 0.99) * 1000, 1) if ttp else None,
        "ttp_p50_rt": round(pct(ttp, 0.5) / latency, 2) if ttp and latency else None,
        "ttp_p99_rt": round(pct(ttp, 0.99) / latency, 2) if ttp and latency else None,
        "unprotected_p50_ms": round(pct(covered, 0.5) * 1000, 1) if covered else None,
        "unprotected_max_ms": round(max(covered) * 1000, 1) if covered else None,
        "never_protected": len(gaps) - len(covered),
        "requests_per_lifecycle_median": statistics.median(requests) if requests else None,
        "requests_per_lifecycle_max": max(requests) if requests else None,
        "mutations_per_lifecycle_median": statistics.median(mutations) if mutations else None,
        "requests_by_endpoint_per_lifecycle": {
            path: round(n / len(lives), 2)
            for path, n in sorted(
                Counter(p for r in lives for p in wire.paths(r["t0"], r["end"])).items()
            )
        },
        "lifecycles_with_orders_left_working": sum(1 for r in lives if r["left_working"]),
        "outliers_over_10_rt": [
            {"i": r["i"], "ttp_s": round(r["ttp"], 3), "unprotected_s": gap}
            for r, gap in zip(ok, gaps, strict=True)
            if latency and r["ttp"] > 10 * latency
        ],
        "faults": [judge_fault(r) for r in records if r["kind"] == "fault"],
    }
    for r in records:
        if r["kind"] == "reactions":
            result[f"reaction_{r['journal']}"] = reaction_figures(r)
    return result


def reaction_figures(record: dict[str, Any]) -> dict[str, Any]:
    """p50 / p90 / p99 / max in ms of the reaction and of each of its stages."""

    def spread(values: list[float]) -> dict[str, float]:
        return {
            f"{name}_ms": round(pct(values, q) * 1000, 3)
            for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
        }

    seconds = record["seconds"]
    figures: dict[str, Any] = {"n": len(seconds), **spread(seconds)}
    stages = record.get("stages") or []
    if stages:
        figures["stages"] = {name: spread([s[name] for s in stages]) for name in stages[0]}
    return figures


async def main(args: argparse.Namespace) -> dict[str, Any]:
    # The server's own log lines (tracebacks of the answers the faults withhold) are not results.
    logging.disable(logging.CRITICAL)
    latency = args.latency_ms / 1000
    reactions = args.reactions if args.reactions is not None else args.brackets
    config = GatewayConfig(
        accounts=(
            AccountSpec(1, "SIM-1"),
            AccountSpec(2, "PA-2", native_brackets=False),
            AccountSpec(3, "PXP-3"),
        ),
        rate_limits=False,
        start_prices={MNQ: Decimal("21000.00")},
        api_key="bench-simulator-key-0123456789",
    )
    gateway = Gateway(config)
    wire = WireLatency(gateway.app, latency)
    gateway.app = wire  # the same ASGI app, latency in front
    urls = await gateway.start()
    user, key = gateway.credentials
    base_env = {
        **os.environ,
        "PROJECTX_API_URL": urls.api,
        "PROJECTX_USER_HUB_URL": urls.user_hub,
        "PROJECTX_MARKET_HUB_URL": urls.market_hub,
        "PROJECTX_REALTIME_URL": urls.base,
        "PROJECT_X_USERNAME": user,
        "PROJECT_X_API_KEY": key,
        "ORDERGUARD_CONTROL_URL": urls.control,
        "BENCH_BRACKETS": str(args.brackets),
        "BENCH_SCENARIOS": ",".join(SCENARIOS) if args.faults else "",
        "BENCH_SETTLE": str(args.settle),
    }
    ours = [sys.executable, str(DRIVERS / "orderguard_driver.py")]
    theirs = [pxp_python(), str(DRIVERS / "pxp_driver.py")]
    runs = (
        ("orderguard native", 1, ours, {"BENCH_NATIVE": "1"}),
        ("orderguard client-side", 2, ours,
         {"BENCH_NATIVE": "0", "BENCH_REACTIONS": str(reactions)}),
        # Its own limiter (60 requests per minute by default) raised out of the way like ours:
        # at 60 it makes every tenth back-to-back bracket wait ~49 s with the position naked.
        ("project-x-py 4.4.1", 3, theirs,
         {"PROJECT_X_ACCOUNT_NAME": "PXP-3", "PROJECTX_REQUESTS_PER_MINUTE": "1000000"}),
    )  # fmt: skip
    results = []
    try:
        for name, account, command, extra in runs:
            env = {**base_env, "BENCH_ACCOUNT_ID": str(account), **extra}
            records = await run_driver(name, command, env, args.timeout)
            results.append(await measure(gateway, wire, name, account, records, latency))
        # The reaction time without the durable journal's write, to see what that write costs.
        env = {**base_env, "BENCH_ACCOUNT_ID": "2", "BENCH_NATIVE": "0", "BENCH_BRACKETS": "0",
               "BENCH_REACTIONS": str(reactions), "BENCH_JOURNAL": "memory",
               "BENCH_SCENARIOS": ""}  # fmt: skip
        records = await run_driver("orderguard memory journal", ours, env, args.timeout)
        memory = reaction_figures(next(r for r in records if r["kind"] == "reactions"))
    finally:
        await gateway.stop()
    return {
        "date": datetime.now().astimezone().isoformat(timespec="minutes"),
        "machine": f"{platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs",
        "python": sys.version.split()[0],
        "latency_ms": args.latency_ms,
        "brackets": args.brackets,
        "results": results,
        "reaction_memory_journal": memory,
        "load_average": os.getloadavg(),
    }


def table(report: dict[str, Any]) -> str:
    rows = report["results"]
    head = "| | " + " | ".join(r["client"] for r in rows) + " |"
    lines = [head, "|---" * (len(rows) + 1) + "|"]

    def row(label: str, cell: Callable[[dict[str, Any]], str]) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(r) for r in rows) + " |")

    row("protected when the call returned", lambda r: f"{r['protected_on_return']}/{r['brackets']}")
    row(
        "time to protection p50 / p99",
        lambda r: (
            f"{r['ttp_p50_ms']} / {r['ttp_p99_ms']} ms ({r['ttp_p50_rt']} / {r['ttp_p99_rt']} RT)"
        ),
    )
    row(
        "unprotected (fill → stop created) p50 / max",
        lambda r: (
            f"{r['unprotected_p50_ms']} / {r['unprotected_max_ms']} ms"
            + (f", {r['never_protected']} never" if r["never_protected"] else "")
        ),
    )
    row(
        "REST requests per lifecycle, median (max)",
        lambda r: f"{r['requests_per_lifecycle_median']} ({r['requests_per_lifecycle_max']})",
    )
    row(
        "of which mutations (place, cancel, modify, close), median",
        lambda r: str(r["mutations_per_lifecycle_median"]),
    )
    row(
        "requests by endpoint, mean per lifecycle",
        lambda r: ", ".join(
            f"{k} {v:g}" for k, v in r["requests_by_endpoint_per_lifecycle"].items()
        ),
    )
    row(
        "lifecycles with orders left working when flat",
        lambda r: str(r["lifecycles_with_orders_left_working"]),
    )

    def fault_cell(scenario: str) -> Callable[[dict[str, Any]], str]:
        def cell(r: dict[str, Any]) -> str:
            found = [f for f in r["faults"] if f["scenario"] == scenario]
            return f"{found[0]['verdict']} ({found[0]['client_saw']})" if found else "-"

        return cell

    for scenario in SCENARIOS:
        row(f"fault: {scenario}", fault_cell(scenario))
    return "\n".join(lines)  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brackets", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--settle", type=float, default=6.0, help="seconds after a fault")
    parser.add_argument("--no-faults", dest="faults", action="store_false")
    parser.add_argument("--timeout", type=float, default=900.0, help="per client")
    parser.add_argument("--reactions", type=int, default=None, help="default: --brackets")
    args = parser.parse_args()
    report = asyncio.run(main(args))
    print(json.dumps(report, indent=2))
    print()
    print(table(report))
