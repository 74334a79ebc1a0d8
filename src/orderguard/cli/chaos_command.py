"""``orderguard chaos``: the deterministic chaos runner from the command line, or (with
``--broker projectx``) the same workload in real time over the ProjectX wire protocol.

Exit status 0 when no invariant broke and no step failed unexpectedly, 1 otherwise. On the
simulated exchange the same arguments always give the same result; each violation prints the
command that replays its seed. Over the wire a seed draws the same workload and faults, but real
time and the server decide what happens.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import httpx2
import typer
from rich.console import Console
from rich.progress import track

from orderguard.chaos.report import ChaosConfig
from orderguard.chaos.runner import run_chaos
from orderguard.chaos.wire import WireChaosConfig, WireTarget, run_wire_chaos
from orderguard.gateway.control import is_loopback

app = typer.Typer()

EXIT_VIOLATION = 1


class Faults(StrEnum):
    NONE = "none"
    MILD = "mild"
    ALL = "all"


class Profile(StrEnum):
    WIDE = "wide"
    CLASSIC = "classic"


class JournalChoice(StrEnum):
    MIXED = "mixed"
    MEMORY = "memory"
    SQLITE = "sqlite"


class LatencyChoice(StrEnum):
    MIXED = "mixed"
    LOW = "low"
    HIGH = "high"


class BrokerChoice(StrEnum):
    SIM = "sim"
    PROJECTX = "projectx"


class Switch(StrEnum):
    MIXED = "mixed"
    ON = "on"
    OFF = "off"


@app.command()
def chaos(
    seeds: Annotated[int, typer.Option(min=1, help="How many seeds to run.")] = 100,
    seed_start: Annotated[int, typer.Option(min=0, help="The first seed.")] = 0,
    operations: Annotated[int, typer.Option(min=1, help="Workload steps per seed.")] = 20,
    faults: Annotated[Faults, typer.Option(help="Fault plan of the broker wrapper.")] = Faults.ALL,
    crash: Annotated[bool, typer.Option(help="Kill the manager at random steps.")] = False,
    profile: Annotated[
        Profile,
        typer.Option(help="wide: the whole workload (default); classic: the workload before."),
    ] = Profile.WIDE,
    journal: Annotated[
        JournalChoice, typer.Option(help="Journal of each seed (mixed: drawn per seed).")
    ] = JournalChoice.MIXED,
    latency: Annotated[
        LatencyChoice, typer.Option(help="low: 20 ms each way; high: 40 ms, 20 ms jitter.")
    ] = LatencyChoice.MIXED,
    outside_actor: Annotated[
        Switch, typer.Option(help="The trading platform acting on the same account.")
    ] = Switch.MIXED,
    storms: Annotated[
        Switch, typer.Option(help="30-120 s fault storms right after fills.")
    ] = Switch.MIXED,
    exchange_rules: Annotated[
        str,
        typer.Option(
            help="Exchange readings of unconfirmed rules: default, harsh, mixed:<n>, or mixed "
            "(drawn per seed: half default, a quarter harsh, a quarter a random mix)."
        ),
    ] = "mixed",
    brackets: Annotated[bool, typer.Option(help="Include bracket orders.")] = True,
    protection_window: Annotated[
        float | None,
        typer.Option(help="Quiet-point window for I1 (default: deadline + interval)."),
    ] = None,
    protection_deadline: Annotated[
        float, typer.Option(help="Bracket protection deadline of the I6 bound.")
    ] = 5.0,
    recovery_interval: Annotated[
        float, typer.Option(help="Reconcile interval of the I6 bound.")
    ] = 2.0,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of text.")
    ] = False,
    event_log: Annotated[
        Path | None, typer.Option(help="Write every seed's event log to this file.")
    ] = None,
    broker: Annotated[
        BrokerChoice,
        typer.Option(
            help="sim: the simulated exchange on a virtual clock (deterministic); projectx: "
            "our ProjectX adapter in real time against --api-url, or, without it, against an "
            "embedded gateway simulator started on 127.0.0.1 for each seed."
        ),
    ] = BrokerChoice.SIM,
    api_url: Annotated[
        str | None,
        typer.Option(
            help="--broker projectx: the server's REST base (its hubs on the same "
            "server unless given). Credentials: PROJECT_X_USERNAME, PROJECT_X_API_KEY."
        ),
    ] = None,
    user_hub_url: Annotated[str | None, typer.Option(help="--broker projectx: user hub.")] = None,
    market_hub_url: Annotated[
        str | None, typer.Option(help="--broker projectx: market hub.")
    ] = None,
    control_url: Annotated[
        str | None,
        typer.Option(
            help="--broker projectx: the server's control API (orderguard gateway): "
            "truth read continuously, faults and the outside actor. Without one: truth over "
            "REST at quiet points, no faults, no outside actor."
        ),
    ] = None,
    account_id: Annotated[
        int | None, typer.Option(help="--broker projectx: the account to trade (must be flat).")
    ] = None,
    allow_remote: Annotated[
        bool,
        typer.Option(
            help="--broker projectx: allow a server that is not on this machine. "
            "Chaos places real orders on that account."
        ),
    ] = False,
) -> None:
    """Random workloads under seeded faults (and crashes): I1–I5 at every quiet point, the I6
    and over-coverage bounds continuously, I7 whenever an operation ends (on the simulated
    exchange; over the wire see ``--broker projectx``)."""
    if broker is BrokerChoice.PROJECTX:
        _chaos_over_the_wire(
            range(seed_start, seed_start + seeds),
            WireTarget(api_url, user_hub_url, market_hub_url, control_url, account_id=account_id),
            operations=operations,
            faults=faults,
            crash=crash,
            journal=journal,
            outside_actor=outside_actor,
            protection_deadline=protection_deadline,
            recovery_interval=recovery_interval,
            protection_window=protection_window,
            allow_remote=allow_remote,
            json_output=json_output,
            event_log=event_log,
        )
        return
    try:
        config = ChaosConfig(
            operations=operations,
            faults=faults.value,
            crash=crash,
            profile=profile.value,
            journal=journal.value,
            latency=latency.value,
            outside_actor=outside_actor.value,
            storms=storms.value,
            exchange_rules=exchange_rules,
            brackets=None if brackets else False,
            protection_window=protection_window,
            protection_deadline=protection_deadline,
            recovery_interval=recovery_interval,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    seed_range = range(seed_start, seed_start + seeds)
    # On a terminal, a progress bar (on stderr, gone when done) advances as each seed is taken.
    tty = sys.stderr.isatty() and not json_output
    selected = (
        track(seed_range, description="chaos seeds", console=Console(stderr=True),
              transient=True)
        if tty
        else seed_range
    )  # fmt: skip
    if event_log is not None:
        with event_log.open("w", encoding="utf-8") as log:
            report = run_chaos(selected, config, event_log=log)
    else:
        report = run_chaos(selected, config)
    typer.echo(report.to_json() if json_output else report.to_text())
    if report.failed:
        raise typer.Exit(EXIT_VIOLATION)


def _chaos_over_the_wire(
    seeds: range,
    target: WireTarget,
    *,
    operations: int,
    faults: Faults,
    crash: bool,
    journal: JournalChoice,
    outside_actor: Switch,
    protection_deadline: float,
    recovery_interval: float,
    protection_window: float | None,
    allow_remote: bool,
    json_output: bool,
    event_log: Path | None,
) -> None:
    if crash:
        raise typer.BadParameter(
            "--crash is not available over the wire (tests/e2e_projectx kills real processes "
            "against the gateway instead)"
        )
    for url in (target.api_url, target.user_hub_url, target.market_hub_url, target.control_url):
        host = httpx2.URL(url).host if url else "127.0.0.1"
        if not is_loopback(host) and not allow_remote:
            raise typer.BadParameter(
                f"{url} is not on this machine: chaos places real orders on that account "
                "(--allow-remote to do it anyway)"
            )
    try:
        config = WireChaosConfig(
            chaos=ChaosConfig(
                operations=operations,
                faults=faults.value,
                outside_actor=outside_actor.value,
                protection_deadline=protection_deadline,
                recovery_interval=recovery_interval,
                protection_window=protection_window,
            ),
            journal="memory" if journal is JournalChoice.MEMORY else "sqlite",
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    logs: list[str] = []
    report = run_wire_chaos(
        seeds,
        config,
        target,
        on_seed=lambda r: logs.extend([f"# seed {r.seed}", *r.event_log]),
    )
    if event_log is not None:
        event_log.write_text("".join(line + "\n" for line in logs), encoding="utf-8")
    typer.echo(report.to_json() if json_output else report.to_text())
    if report.failed:
        raise typer.Exit(EXIT_VIOLATION)


__all__ = ["app", "chaos"]
