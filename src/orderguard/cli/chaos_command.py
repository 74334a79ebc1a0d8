"""``orderguard chaos``: the deterministic chaos runner from the command line.

Exit status 0 when no invariant broke and no step failed unexpectedly, 1 otherwise. The same
arguments always give the same result; each violation prints the command that replays its seed.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import track

from orderguard.chaos.report import ChaosConfig
from orderguard.chaos.runner import run_chaos

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
) -> None:
    """Random workloads under seeded faults (and crashes): I1–I5 at every quiet point, the I6
    and over-coverage bounds continuously, I7 whenever an operation ends."""
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


__all__ = ["app", "chaos"]
