"""``orderguard schema [COMMAND]``: the JSON Schema of what a command prints with ``--json``."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from orderguard.cli.schemas import SCHEMAS

app = typer.Typer()


@app.command()
def schema(
    command: Annotated[
        str | None,
        typer.Argument(help=f"One of: {', '.join(SCHEMAS)} (default: all of them)."),
    ] = None,
) -> None:
    """Print the JSON Schema of a command's --json output."""
    if command is None:
        typer.echo(json.dumps({k: m.model_json_schema() for k, m in SCHEMAS.items()}, indent=2))
        return
    model = SCHEMAS.get(command)
    if model is None:
        typer.echo(f"error: no schema {command!r} (one of: {', '.join(SCHEMAS)})", err=True)
        raise typer.Exit(2)
    typer.echo(json.dumps(model.model_json_schema(), indent=2))


__all__ = ["app", "schema"]
