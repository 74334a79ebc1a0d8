"""The ``orderguard`` command line (console script ``orderguard = orderguard.cli.app:main``).

One module per command, each with its own ``typer.Typer()``; this root only assembles them:

* a single command (``demo``): ``app.add_typer(demo_command.app)`` with no name merges the
  module's ``@app.command()`` into the root, so it is ``orderguard demo``;
* a group of commands (``journal show``, ``journal replay``): the module's Typer added with a
  name, ``app.add_typer(journal_command.app, name="journal")``.

To add a command, write ``cli/<name>_command.py`` and add one line to ``_assemble``.

The root takes the options every command shares: ``--version``, ``-h``/``--help`` and the
logging switches (``--log-json``, ``--log-level``; see :mod:`orderguard.cli.logs`). :func:`main`
turns a closed output (``orderguard ops | head``) into one line on stderr and status 141.
"""

from __future__ import annotations

import platform
import sys
from typing import Annotated

import typer

from orderguard import __version__
from orderguard.cli import (
    chaos_command,
    dashboard_command,
    demo_command,
    gateway_command,
    journal_command,
    logs,
    ops_command,
    output,
    recover_command,
    schema_command,
    status_command,
    trade_commands,
)

app = typer.Typer(
    name="orderguard",
    help="Futures orders on the ProjectX Gateway with transactional error recovery.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"orderguard {__version__} (Python {platform.python_version()})")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version."
        ),
    ] = False,
    log_json: Annotated[
        bool,
        typer.Option(
            "--log-json",
            envvar="ORDERGUARD_LOG_JSON",
            help="Log to stderr as one JSON object a line (operation ids, secrets masked).",
        ),
    ] = False,
    log_level: Annotated[
        logs.LogLevel, typer.Option("--log-level", envvar="ORDERGUARD_LOG_LEVEL")
    ] = logs.LogLevel.WARNING,
) -> None:
    """Futures orders on the ProjectX Gateway with transactional error recovery."""
    logs.configure(json_lines=log_json, level=log_level)


@app.command()
def version() -> None:
    """Print the orderguard version."""
    typer.echo(f"orderguard {__version__} (Python {platform.python_version()})")


def _assemble(root: typer.Typer) -> None:
    root.add_typer(demo_command.app)
    root.add_typer(chaos_command.app)  # orderguard chaos ...
    root.add_typer(journal_command.app, name="journal")  # orderguard journal ...
    root.add_typer(gateway_command.app)  # orderguard gateway
    root.add_typer(status_command.app)  # orderguard status
    root.add_typer(trade_commands.app)  # orderguard bracket | close | cancel-all
    root.add_typer(ops_command.app)  # orderguard ops
    root.add_typer(recover_command.app)  # orderguard rollback | recover
    root.add_typer(schema_command.app)  # orderguard schema
    root.add_typer(dashboard_command.app)  # orderguard dashboard


_assemble(app)


def main() -> None:
    """Entry point of the console script."""
    try:
        app()
    except BrokenPipeError:  # commands catch their own; this is the last line of defence
        try:
            output.closed_output()
        except typer.Exit as done:
            sys.exit(done.exit_code)


__all__ = ["app", "main"]
