"""``orderguard ops``: operations from the journal, or one operation's timeline.

Read-only (safe beside a running strategy): ``ops`` lists operations newest first (``--active``:
only unfinished ones); ``ops --id OP`` merges the operation's state changes, order intents, their
outcomes and the events applied to it (risk refusals included) into one timeline by time. On a
terminal, reading many operations shows a progress bar. Exit 0; 1 when ``--id`` names no
operation; 2 when the journal cannot be read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress
from rich.table import Table

from orderguard.cli import exit_codes, options
from orderguard.cli.output import console, run
from orderguard.cli.schemas import OperationSummary, OperationTimeline, OpsList, TimelineEntry
from orderguard.errors import JournalError, OperationError
from orderguard.journal.base import OperationRecord, dumps, loads
from orderguard.journal.reader import JournalReader, read_journal

app = typer.Typer()

PROGRESS_FROM = 200  # operations: below this a listing is instant, a bar would only flicker


def _summary(op: OperationRecord, legs: int) -> OperationSummary:
    return OperationSummary(
        operation_id=op.operation_id,
        type=op.type,
        state=op.state,
        created_at=op.created_at,
        updated_at=op.updated_at,
        account_id=op.account_id,
        contract_id=op.contract_id,
        legs=legs,
    )


def _journal_path(journal: Path | None) -> Path:
    if journal is None:
        raise JournalError("ops reads a journal: give --journal FILE (or ORDERGUARD_JOURNAL)")
    if not journal.exists():
        raise JournalError(f"no journal at {journal}")
    return journal


async def _list(journal: Path, active: bool, limit: int, bar: bool) -> tuple[OpsList, int]:
    async def body(reader: JournalReader) -> list[OperationSummary]:
        if active:
            ops = list(reversed(await reader.unfinished_operations()))[:limit]
        else:
            ops = await reader.operations(limit=limit)
        out = []
        with Progress(transient=True, disable=not (bar and len(ops) >= PROGRESS_FROM)) as prog:
            task = prog.add_task("reading operations", total=len(ops))
            for op in ops:
                legs = {intent.leg for intent in await reader.intents_for(op.operation_id)}
                out.append(_summary(op, len(legs)))
                prog.advance(task)
        return out

    ops = await read_journal(journal, body)
    return OpsList(journal=str(journal), active_only=active, operations=ops), exit_codes.OK


async def timeline(reader: JournalReader, operation_id: str) -> tuple[Any, list[TimelineEntry]]:
    """The operation record and its merged timeline (None when there is no such operation)."""
    op = await reader.get_operation(operation_id)
    if op is None:
        return None, []
    entries: list[TimelineEntry] = []
    for change in await reader.state_changes(operation_id):
        entries.append(
            TimelineEntry(
                at=change.at,
                kind="state",
                what=f"{change.from_state or '(new)'} -> {change.to_state}",
                detail={"reason": change.reason},
            )
        )
    for intent in await reader.intents_for(operation_id):
        entries.append(
            TimelineEntry(
                at=intent.created_at,
                kind="intent",
                what=f"{intent.kind.value} {intent.leg} (gen {intent.generation})",
                detail={"custom_tag": intent.custom_tag, "request": dict(intent.request)},
            )
        )
        for outcome in await reader.outcomes_for(intent.intent_id):
            entries.append(
                TimelineEntry(
                    at=outcome.recorded_at,
                    kind="outcome",
                    what=f"{intent.leg}: {outcome.kind.value}",
                    detail={
                        "custom_tag": outcome.custom_tag,
                        "order_id": outcome.order_id,
                        "code": outcome.code,
                        "message": outcome.message,
                    },
                )
            )
    for event in await reader.events_for(operation_id):
        entries.append(
            TimelineEntry(at=event.at, kind="event", what=event.kind, detail=dict(event.payload))
        )
    order = {"state": 0, "intent": 1, "outcome": 2, "event": 3}
    entries.sort(key=lambda e: (e.at, order[e.kind]))
    legs = len({i.leg for i in await reader.intents_for(operation_id)})
    return (op, legs), entries


async def _one(journal: Path, operation_id: str) -> tuple[OperationTimeline, int]:
    found, entries = await read_journal(journal, lambda r: timeline(r, operation_id))
    if found is None:
        raise OperationError(f"no operation {operation_id!r} in {journal}")
    op, legs = found
    return (
        OperationTimeline(
            journal=str(journal),
            operation=_summary(op, legs),
            data=_plain(op.data),
            timeline=entries,
        ),
        exit_codes.OK,
    )


def _plain(value: Any) -> Any:
    """JSON-able values (the journal's data holds decimals and nested mappings)."""
    return loads(dumps(value))


def _render_list(report: OpsList) -> None:
    title = "Unfinished operations" if report.active_only else "Operations"
    table = Table(title=f"{title} in {report.journal}", title_justify="left")
    table.add_column("operation", no_wrap=True, min_width=12)
    for name in ("type", "state", "created (UTC)", "updated (UTC)", "account", "contract", "legs"):
        table.add_column(name, overflow="fold")
    for op in report.operations:
        table.add_row(
            op.operation_id, op.type, op.state, _time(op.created_at), _time(op.updated_at),
            str(op.account_id or "-"), op.contract_id or "-", str(op.legs),
        )  # fmt: skip
    out = console()
    out.print(table)
    if not report.operations:
        out.print("(none)")


def _time(at: Any) -> str:
    return str(at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3])


def _render_timeline(report: OperationTimeline) -> None:
    op = report.operation
    out = console()
    where = f"account {op.account_id or '-'}, {op.contract_id or '-'}, {op.legs} legs"
    out.print(f"Operation {op.operation_id}: {op.type}, {op.state} ({where})")
    table = Table(title="Timeline", title_justify="left")
    for name in ("at (UTC)", "kind", "what", "detail"):
        table.add_column(name, overflow="fold")
    for entry in report.timeline:
        detail = _detail_text(entry.detail)
        table.add_row(_time(entry.at), entry.kind, entry.what, detail)
    out.print(table)


def _detail_text(detail: dict[str, Any]) -> str:
    parts: Sequence[str] = [f"{k}={v}" for k, v in detail.items() if v not in (None, "", {})]
    return " ".join(parts)


@app.command()
def ops(
    active: Annotated[bool, typer.Option("--active", help="Only unfinished operations.")] = False,
    operation: Annotated[str | None, typer.Option("--id", help="One operation's timeline.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many operations.")] = 50,
    journal: options.JournalOpt = None,
    json_output: options.JsonOpt = False,
) -> None:
    """Operations from the journal (read-only), or one operation's timeline (--id OP)."""
    bar = console().is_terminal and not json_output
    if operation is not None:
        run(
            lambda: _one(_journal_path(journal), operation),
            json_output=json_output,
            render=_render_timeline,
        )
        return
    run(
        lambda: _list(_journal_path(journal), active, limit, bar),
        json_output=json_output,
        render=_render_list,
    )


__all__ = ["app", "ops", "timeline"]
