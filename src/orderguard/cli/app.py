"""The ``orderguard`` command line (console script ``orderguard = orderguard.cli.app:main``).

One module per command, each with its own ``typer.Typer()``; this root only assembles them:

* a single command (``demo``): ``app.add_typer(demo_command.app)`` with no name merges the
  module's ``@app.command()`` into the root, so it is ``orderguard demo``;
* a group of commands (``journal show``, ``journal replay``): the module's Typer added with a
  name, ``app.add_typer(journal_command.app, name="journal")``.

To add a command, write ``cli/<name>_command.py`` and add one line to ``_assemble``.
"""

from __future__ import annotations

import platform

import typer

from orderguard import __version__
from orderguard.cli import chaos_command, demo_command, gateway_command, journal_command

app = typer.Typer(
    name="orderguard",
    help="Futures orders on the ProjectX Gateway with transactional error recovery.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def version() -> None:
    """Print the orderguard version."""
    typer.echo(f"orderguard {__version__} (Python {platform.python_version()})")


def _assemble(root: typer.Typer) -> None:
    root.add_typer(demo_command.app)
    root.add_typer(chaos_command.app)  # orderguard chaos ...
    root.add_typer(journal_command.app, name="journal")  # orderguard journal ...
    root.add_typer(gateway_command.app)  # orderguard gateway


_assemble(app)


def main() -> None:
    """Entry point of the console script."""
    app()


__all__ = ["app", "main"]
