"""``orderguard chaos``: the deterministic chaos runner from the command line.

Exit status 0 when no invariant broke and no step failed unexpectedly, 1 otherwise. The same
arguments always give the same result; each violation prints the command that replays its seed.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from orderguard.chaos.report import ChaosConfig
from orderguard.chaos.runner import run_chaos

app = typer.Typer()

EXIT_VIOLATION = 1


class Faults(StrEnum):
    NONE = "none"
    MILD = "mild"
    ALL = "all"


@app.command()
def chaos(
    seeds: Annotated[int, typer.Option(min=1, help="How many seeds to run.")] = 100,
    seed_start: Annotated[int, typer.Option(min=0, help="The first seed.")] = 0,
    operations: Annotated[int, typer.Option(min=1, help="Workload steps per seed.")] = 20,
    faults: Annotated[Faults, typer.Option(help="Fault plan of the broker wrapper.")] = Faults.ALL,
    crash: Annotated[bool, typer.Option(help="Kill the manager at random steps.")] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of text.")
    ] = False,
    event_log: Annotated[
        Path | None, typer.Option(help="Write every seed's event log to this file.")
    ] = None,
) -> None:
    """Random workloads under seeded faults (and crashes); check I1–I6 at every quiet point."""
    config = ChaosConfig(operations=operations, faults=faults.value, crash=crash)
    selected = range(seed_start, seed_start + seeds)
    if event_log is not None:
        with event_log.open("w", encoding="utf-8") as log:
            report = run_chaos(selected, config, event_log=log)
    else:
        report = run_chaos(selected, config)
    typer.echo(report.to_json() if json_output else report.to_text())
    if report.failed:
        raise typer.Exit(EXIT_VIOLATION)


__all__ = ["app", "chaos"]
