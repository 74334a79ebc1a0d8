"""``orderguard demo``: options, real-time pacing and the exit code around the scenario.

The scenario runs on a :class:`~orderguard.clock.VirtualClock`, so it is deterministic and,
with ``--fast``, instant. Without ``--fast`` each price step is followed by a short *real* sleep
so a person can watch; that sleep lives here, in the CLI, never in library code.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from orderguard.cli.demo import (
    DEFAULT_INTERVAL,
    DEFAULT_STEPS,
    MIN_STEPS,
    DemoOptions,
    FaultLevel,
    Pace,
    run_demo,
)
from orderguard.cli.render import DemoRenderer

app = typer.Typer()

EXIT_INVARIANT_BROKEN = 1
EXIT_INTERRUPTED = 130


@contextmanager
def _library_logs(verbose: bool) -> Iterator[None]:
    """The demo reports what the library does in its own lines; library logs only on request.

    With no handler anywhere, Python prints WARNING records bare on stderr, untimestamped and in
    the middle of the demo's output; a NullHandler stops that. ``--verbose`` shows them instead,
    stamped by rich. The handler is removed afterwards (the command may run inside a test).
    """
    logger = logging.getLogger("orderguard")
    handler: logging.Handler = (
        RichHandler(console=Console(stderr=True), show_path=False)
        if verbose
        else logging.NullHandler()
    )
    level = logger.level
    logger.addHandler(handler)
    if verbose:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _pacer(seconds: float) -> Pace:
    async def pace() -> None:
        # Called between virtual steps, while no timer is due: real time passes, virtual does not.
        await asyncio.sleep(seconds)

    return pace


@app.command()
def demo(
    seed: Annotated[int, typer.Option(help="Seed of the price walk, latency and faults.")] = 1,
    speed: Annotated[
        float, typer.Option(min=0.01, help="Playback speed (2 = twice as fast).")
    ] = 1.0,
    fast: Annotated[bool, typer.Option("--fast", help="No pacing: run instantly.")] = False,
    faults: Annotated[
        FaultLevel, typer.Option(case_sensitive=False, help="Inject seeded broker faults.")
    ] = FaultLevel.NONE,
    steps: Annotated[
        int, typer.Option(min=MIN_STEPS, help="Price steps of the trading part.")
    ] = DEFAULT_STEPS,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also show the library's own log records.")
    ] = False,
    skip_close: Annotated[
        bool,
        typer.Option("--skip-close", hidden=True, help="Leave position and orders open."),
    ] = False,
) -> None:
    """Watch orderguard trade MNQ on the embedded simulated exchange (no network, no account).

    Orders are placed as a seeded random-walk market moves: a market entry, a protective stop, a
    resting limit, a join-bid, a trailing stop; then cancel-all and a flat close, and an audit of
    the exchange's truth. Exits non-zero if an invariant is broken at the end.
    """
    console = Console(highlight=False)
    renderer = DemoRenderer(console)
    options = DemoOptions(seed=seed, steps=steps, faults=faults, close_at_end=not skip_close)
    pace = None if fast else _pacer(DEFAULT_INTERVAL / speed)
    renderer.header(options)
    try:
        with _library_logs(verbose):
            summary = run_demo(options, sink=renderer.line, pace=pace)
    except KeyboardInterrupt:
        console.print("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    renderer.summary(summary)
    if not summary.ok:
        Console(stderr=True, highlight=False).print(
            f"orderguard demo: {len(summary.violations)} invariant(s) broken at the end: "
            + "; ".join(summary.violations),
            style="bold red",
        )
        raise typer.Exit(EXIT_INVARIANT_BROKEN)


__all__ = ["app", "demo"]
