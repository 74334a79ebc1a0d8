"""``orderguard journal``: what a journal file says, read without touching it.

For a trader whose strategy stopped: before restarting, see which operations start-up recovery
will take over (``show --unfinished``), what one of them did (``show --operation ID``) and the
statistics the recovery manager would report (``stats``). The file is opened read-only (see
:mod:`orderguard.journal.reader`), so it may still be held by a running process.

Exit status: 0; 1 when ``--operation`` names no operation; 2 when the file cannot be read as an
orderguard journal (missing, foreign, newer schema) or the arguments are wrong.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from orderguard.errors import JournalError
from orderguard.journal.base import OperationRecord, dumps
from orderguard.journal.reader import JournalReader, read_journal
from orderguard.recovery.manager import OperationRecoveryManager

app = typer.Typer(
    help="Read a journal file (read-only; safe while a process holds it).",
    no_args_is_help=True,
)

EXIT_NOT_FOUND = 1
EXIT_UNREADABLE = 2

_T = TypeVar("_T")

PathArg = Annotated[Path, typer.Argument(help="The journal file (SQLite).", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]


def _read(path: Path, body: Callable[[JournalReader], Awaitable[_T]]) -> _T:
    """Run ``body`` on the journal; an unreadable journal is one line on stderr and exit 2."""
    try:
        return asyncio.run(read_journal(path, body))
    except JournalError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_UNREADABLE) from None


def _console() -> Console:
    # No highlighting or markup: tags and broker messages are printed exactly as recorded.
    return Console(highlight=False)


def _time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _text(value: Any) -> str:
    return "-" if value is None else str(value)


# -- show ----------------------------------------------------------------------------------------
async def _operation_rows(
    reader: JournalReader, unfinished: bool, limit: int
) -> list[tuple[OperationRecord, int]]:
    if unfinished:
        # The journal lists them oldest first (the order recovery takes them); show newest first.
        ops = list(reversed(await reader.unfinished_operations()))[:limit]
    else:
        ops = await reader.operations(limit=limit)
    rows = []
    for op in ops:
        legs = {intent.leg for intent in await reader.intents_for(op.operation_id)}
        rows.append((op, len(legs)))
    return rows


def _operation_json(op: OperationRecord) -> dict[str, Any]:
    return {
        "operation_id": op.operation_id,
        "type": op.type,
        "state": op.state,
        "created_at": op.created_at,
        "updated_at": op.updated_at,
        "account_id": op.account_id,
        "contract_id": op.contract_id,
    }


def _print_operations(path: Path, rows: Sequence[tuple[OperationRecord, int]], title: str) -> None:
    table = Table(title=f"{title} in {path}", title_justify="left")
    # The id is what `--operation` takes: never elided. The rest folds on a narrow terminal.
    table.add_column("operation", no_wrap=True, min_width=12)
    for column in ("type", "state", "created (UTC)", "updated (UTC)"):
        table.add_column(column, overflow="fold")
    table.add_column("account", justify="right")
    table.add_column("contract", overflow="fold")
    table.add_column("legs", justify="right")
    for op, legs in rows:
        table.add_row(
            op.operation_id,
            op.type,
            op.state,
            _time(op.created_at),
            _time(op.updated_at),
            _text(op.account_id),
            _text(op.contract_id),
            str(legs),
        )
    console = _console()
    console.print(table)
    if not rows:
        console.print("(none)")


async def _operation_detail(reader: JournalReader, operation_id: str) -> dict[str, Any] | None:
    op = await reader.get_operation(operation_id)
    if op is None:
        return None
    intents = []
    for intent in await reader.intents_for(operation_id):
        outcomes = await reader.outcomes_for(intent.intent_id)
        intents.append({"intent": intent, "outcomes": outcomes})
    return {
        "operation": {**_operation_json(op), "data": op.data},
        "intents": intents,
        "state_changes": await reader.state_changes(operation_id),
        "events": await reader.events_for(operation_id),
    }


def _print_detail(detail: Mapping[str, Any]) -> None:
    op = detail["operation"]
    console = _console()
    head = Table(title=f"Operation {op['operation_id']}", title_justify="left", show_header=False)
    head.add_column("field")
    head.add_column("value")
    for key in ("type", "state", "created_at", "updated_at", "account_id", "contract_id"):
        value = op[key]
        head.add_row(key, _time(value) if isinstance(value, datetime) else _text(value))
    console.print(head)

    intents = Table(title="Intents and outcomes", title_justify="left")
    for column in ("leg", "gen", "tag", "kind", "request", "outcome", "order", "code", "message"):
        intents.add_column(column, overflow="fold")
    for item in detail["intents"]:
        intent = item["intent"]
        first = [
            intent.leg,
            str(intent.generation),
            intent.custom_tag,
            intent.kind.value,
            dumps(dict(intent.request)),
        ]
        outcomes = item["outcomes"] or [None]
        for n, outcome in enumerate(outcomes):
            cells = first if n == 0 else [""] * len(first)
            if outcome is None:
                intents.add_row(*cells, "(none yet)", "-", "-", "")
            else:
                intents.add_row(
                    *cells,
                    outcome.kind.value,
                    _text(outcome.order_id),
                    _text(outcome.code),
                    outcome.message,
                )
    console.print(intents)

    changes = Table(title="State changes", title_justify="left")
    for column in ("at (UTC)", "from", "to", "reason"):
        changes.add_column(column)
    for change in detail["state_changes"]:
        changes.add_row(_time(change.at), _text(change.from_state), change.to_state, change.reason)
    console.print(changes)

    events = Table(title="Applied events", title_justify="left")
    for column in ("at (UTC)", "kind", "key", "payload"):
        events.add_column(column, overflow="fold")
    for event in detail["events"]:
        events.add_row(_time(event.at), event.kind, event.key, dumps(dict(event.payload)))
    console.print(events)
    if not detail["events"]:
        console.print("(none)")


@app.command()
def show(
    path: PathArg,
    unfinished: Annotated[
        bool, typer.Option(help="Only operations not in a terminal state (recovery takes them).")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many operations.")] = 50,
    operation: Annotated[
        str | None,
        typer.Option(
            "--operation", help="Show this operation with its intents, outcomes and events."
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Operations newest first, or one operation in full (--operation ID)."""
    if operation is not None:
        if unfinished:
            raise typer.BadParameter("--operation shows one operation; drop --unfinished")
        detail = _read(path, lambda reader: _operation_detail(reader, operation))
        if detail is None:
            typer.echo(f"error: no operation {operation!r} in {path}", err=True)
            raise typer.Exit(EXIT_NOT_FOUND)
        if json_output:
            typer.echo(dumps(detail))
        else:
            _print_detail(detail)
        return
    rows = _read(path, lambda reader: _operation_rows(reader, unfinished, limit))
    if json_output:
        ops = [{**_operation_json(op), "legs": legs} for op, legs in rows]
        typer.echo(dumps({"journal": str(path), "unfinished": unfinished, "operations": ops}))
    else:
        _print_operations(path, rows, "Unfinished operations" if unfinished else "Operations")


# -- stats ---------------------------------------------------------------------------------------
async def _stats(reader: JournalReader) -> dict[str, Any]:
    counts = await reader.counts()
    # The recovery manager's own recount (journal counts + its persisted counters): the figures
    # get_recovery_statistics() gives after a restart, less what only one process's memory holds.
    recovery = await OperationRecoveryManager.read_statistics(reader)
    return {
        "operations": {
            "by_type_and_state": [
                {"type": t, "state": s, "count": n}
                for (t, s), n in sorted(counts.operations.items())
            ],
            "by_type": dict(sorted(counts.operations_by_type.items())),
            "by_state": dict(sorted(counts.operations_by_state.items())),
            "total": sum(counts.operations.values()),
        },
        "outcomes": {
            "by_kind": dict(sorted(counts.outcomes.items())),
            "total": sum(counts.outcomes.values()),
        },
        "intents": counts.intents,
        "events": counts.events,
        "recovery_statistics": recovery,
    }


def _print_stats(path: Path, stats: Mapping[str, Any]) -> None:
    console = _console()
    ops = Table(title=f"Operations in {path}", title_justify="left")
    ops.add_column("type")
    ops.add_column("state")
    ops.add_column("count", justify="right")
    for row in stats["operations"]["by_type_and_state"]:
        ops.add_row(row["type"], row["state"], str(row["count"]))
    ops.add_section()
    ops.add_row("total", "", str(stats["operations"]["total"]))
    console.print(ops)

    totals = Table(title="Records", title_justify="left")
    totals.add_column("record")
    totals.add_column("count", justify="right")
    totals.add_row("intents", str(stats["intents"]))
    for kind, n in stats["outcomes"]["by_kind"].items():
        totals.add_row(f"outcomes: {kind}", str(n))
    totals.add_row("outcomes", str(stats["outcomes"]["total"]))
    totals.add_row("events", str(stats["events"]))
    console.print(totals)

    recovery = Table(title="Recovery statistics", title_justify="left")
    recovery.add_column("statistic")
    recovery.add_column("value", justify="right")
    for key, value in stats["recovery_statistics"].items():
        recovery.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    console.print(recovery)


@app.command()
def stats(path: PathArg, json_output: JsonOpt = False) -> None:
    """Operations by type and state, outcomes by kind, totals and the recovery statistics."""
    figures = _read(path, _stats)
    if json_output:
        typer.echo(dumps({"journal": str(path), **figures}))
    else:
        _print_stats(path, figures)


__all__ = ["app", "show", "stats"]
