"""Running an operator command: its async body, its output (a rich rendering or ``--json``), and
errors as one line on stderr with the exit status of :mod:`orderguard.cli.exit_codes`.

No traceback reaches the operator: orderguard's errors, a bad path (``OSError``) and bad values
end the command with one ``error: ...`` line (and, with ``--json``, an :class:`ErrorReport` on
stdout); Ctrl-C ends it with 130.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console

from orderguard.cli import exit_codes
from orderguard.cli.schemas import ErrorReport
from orderguard.errors import OrderGuardError

M = TypeVar("M", bound=BaseModel)


def console() -> Console:
    # No highlighting or markup: tags and broker messages are printed exactly as they are.
    return Console(highlight=False)


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, OrderGuardError) else f"{type(exc).__name__}: {text}"


def closed_output() -> None:
    """The reader went away (``| head``): one line on stderr, status 141, no traceback (and
    no second error from Python's exit-time flush of the dead stdout)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (a test runner's buffer)
        pass
    sys.stderr.write("orderguard: output closed (broken pipe)\n")
    sys.stderr.flush()
    raise typer.Exit(exit_codes.BROKEN_PIPE)


def fail(exc: BaseException, json_output: bool) -> typer.Exit:
    code = exit_codes.exit_code_for(exc)
    typer.echo(f"error: {one_line(exc)}", err=True)
    if json_output:
        typer.echo(
            ErrorReport(
                error=type(exc).__name__, message=one_line(exc), exit_code=code
            ).model_dump_json()
        )
    return typer.Exit(code)


def run(
    body: Callable[[], Coroutine[Any, Any, tuple[M, int]]],
    *,
    json_output: bool,
    render: Callable[[M], None],
) -> None:
    """Run ``body``; print its model (JSON or rendered); exit with its status."""
    try:
        model, code = asyncio.run(body())
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(exit_codes.INTERRUPTED) from None
    except (OrderGuardError, OSError, ValueError) as exc:
        raise fail(exc, json_output) from None
    try:
        if json_output:
            typer.echo(model.model_dump_json())
        else:
            render(model)
        sys.stdout.flush()
    except BrokenPipeError:
        closed_output()
    if code:
        raise typer.Exit(code)


__all__ = ["closed_output", "console", "fail", "one_line", "run"]
