"""``orderguard recover`` and ``orderguard rollback OP``: take over a journal and make it safe.

Both start an :class:`~orderguard.orders.OrderManager` on the journal, whose start-up recovery
reconciles every unfinished operation with broker truth and rolls it forward or back before
anything else (see docs/design-notes.md); run them while no strategy is writing that journal.

``recover`` shows what start-up recovery did to each operation, waits up to ``--wait`` seconds
for the protection obligations it opened (flattens, re-protection) to be met, and with
``--watch`` keeps supervising for that many more seconds (client-side exits, resting entries).
Exit 0 when every operation ended safe or was handed to its engine, 3 when an obligation is still
open, 4 when broker truth could not be read.

``rollback OP`` forces one operation back: its working orders cancelled, exactly what it owns
flattened. Exit 0 confirmed, 1 no such operation (or already finished another way), 3 the
rollback could not be confirmed (it stays a standing obligation for the next process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.table import Table
from rich.text import Text

from orderguard.cli import exit_codes, options
from orderguard.cli.logs import operation_scope
from orderguard.cli.output import console, run
from orderguard.cli.schemas import RecoveredOperation, RecoverReport, RollbackReport
from orderguard.cli.session import Target, open_session
from orderguard.cli.trade_commands import managed
from orderguard.errors import OperationError
from orderguard.journal.base import dumps, loads
from orderguard.recovery.operations import OperationState

app = typer.Typer()
log = logging.getLogger("orderguard.cli")

STATE_SETTLE = 5.0  # seconds a confirmed rollback's final state may take to reach the journal


@contextlib.contextmanager
def _spinner(enabled: bool, what: str) -> Iterator[None]:
    """An indeterminate progress line on a terminal (recovery's steps are not countable)."""
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), transient=True, disable=not enabled
    ) as progress:
        progress.add_task(what, total=None)
        yield


async def _recover(
    target: Target, wait: float, watch: float, bar: bool
) -> tuple[RecoverReport, int]:
    async with open_session(target) as session:
        with _spinner(bar, "reconciling the journal with broker truth"):
            async with managed(session, target) as manager:
                report = manager.last_recovery
                opened = manager.protection.obligations()
                if opened:
                    await manager.protection.settle(opened, wait)
                if watch > 0:
                    await asyncio.sleep(watch)  # real time: the operator asked to supervise
                still = manager.protection.obligations()
                stats = loads(dumps(manager.get_recovery_statistics()))
        label, journal = session.label, session.journal
    operations = []
    error = None
    if report is not None:
        error = report.error
        operations = [
            RecoveredOperation(
                operation_id=o.operation_id,
                type=str(o.type),
                state_before=str(o.state_before),
                state_after=str(o.state_after),
                actions=list(o.actions) + ([f"error: {o.error}"] if o.error else []),
            )
            for o in report.operations
        ]
    for op in operations:
        log.info(
            "recovered %s (%s): %s -> %s",
            op.operation_id, op.type, op.state_before, op.state_after,
            extra={"operation_id": op.operation_id},
        )  # fmt: skip
    if error is not None:
        code = exit_codes.UNAVAILABLE
    elif still:
        code = exit_codes.UNSAFE
    else:
        code = exit_codes.OK
    return (
        RecoverReport(
            ok=code == exit_codes.OK,
            broker=label,
            journal=None if journal is None else str(journal),
            error=error,
            operations=operations,
            obligations_open=still,
            statistics=stats,
        ),
        code,
    )


def _render_recover(report: RecoverReport) -> None:
    out = console()
    out.print(Text(f"orderguard recover · {report.broker} · journal {report.journal or 'none'}",
                   style="bold"))  # fmt: skip
    table = Table(title="What start-up recovery did", title_justify="left")
    for name in ("operation", "type", "before", "after", "actions"):
        table.add_column(name, overflow="fold")
    for op in report.operations:
        table.add_row(op.operation_id, op.type, op.state_before, op.state_after,
                      "; ".join(op.actions) or "-")  # fmt: skip
    if not report.operations:
        table.add_row("(nothing unfinished)", "", "", "", "")
    out.print(table)
    if report.error:
        out.print(Text(f"broker truth could not be read: {report.error}", style="bold red"))
    for op_id in report.obligations_open:
        out.print(Text(f"obligation still open: {op_id} (the next process takes it over)",
                       style="bold red"))  # fmt: skip
    if report.ok:
        out.print(Text("OK: every operation reconciled", style="bold green"))


@app.command()
def recover(
    wait: Annotated[
        float, typer.Option(min=0.0, help="Seconds to wait for open obligations to be met.")
    ] = 30.0,
    watch: Annotated[
        float, typer.Option(min=0.0, help="Then keep supervising this many seconds.")
    ] = 0.0,
    broker: options.BrokerOpt = options.BrokerKind.SIM,
    state: options.StateOpt = None,
    api_url: options.ApiUrlOpt = None,
    projectx_config: options.PxConfigOpt = None,
    account: options.AccountOpt = None,
    journal: options.JournalOpt = None,
    config: options.ConfigOpt = None,
    json_output: options.JsonOpt = False,
) -> None:
    """Reconcile the journal with broker truth now and show what was done (exit 3 when an
    obligation is still open, 4 when the broker could not be read)."""
    tgt = options.target(broker, state, api_url, projectx_config, account, journal, config)
    bar = console().is_terminal and not json_output
    run(lambda: _recover(tgt, wait, watch, bar), json_output=json_output, render=_render_recover)


async def _state_of(manager: Any, operation_id: str) -> str | None:
    record = await manager.journal.get_operation(operation_id)
    return None if record is None else str(record.state)


async def _settled_state(manager: Any, operation_id: str, before: str, confirmed: bool) -> str:
    """The journal's state once the rollback's last state change is written (the saga records
    it just after it reports the position safe): polled for a few seconds at most."""
    deadline = asyncio.get_running_loop().time() + STATE_SETTLE
    while True:
        state = await _state_of(manager, operation_id) or before
        done = state in (OperationState.ROLLED_BACK, OperationState.FAILED)
        if done or not confirmed or asyncio.get_running_loop().time() > deadline:
            return state
        await asyncio.sleep(0.05)


async def _rollback(target: Target, operation_id: str) -> tuple[RollbackReport, int]:
    with operation_scope(operation_id):
        async with open_session(target) as session, managed(session, target) as manager:
            before = await _state_of(manager, operation_id)
            if before is None:
                raise OperationError(f"no operation {operation_id!r} in the journal")
            if before in (OperationState.COMPLETED, OperationState.FAILED):
                raise OperationError(
                    f"operation {operation_id} already ended {before}: nothing to roll back"
                )
            if before == OperationState.ROLLED_BACK:
                confirmed = True
                detail = "already rolled back (by start-up recovery or earlier)"
            else:
                confirmed = await manager.force_rollback_operation(operation_id)
                detail = (
                    "rolled back"
                    if confirmed
                    else ("not confirmed: it stays a standing obligation until safe")
                )
            after = await _settled_state(manager, operation_id, before, confirmed)
            log.info("rollback %s: %s -> %s (%s)", operation_id, before, after, detail)
    code = exit_codes.OK if confirmed else exit_codes.UNSAFE
    return (
        RollbackReport(
            ok=confirmed,
            operation_id=operation_id,
            state_before=before,
            state_after=after,
            confirmed=confirmed,
            detail=detail,
        ),
        code,
    )


def _render_rollback(report: RollbackReport) -> None:
    style = "bold green" if report.confirmed else "bold red"
    console().print(Text(f"rollback {report.operation_id}: {report.state_before} -> "
                         f"{report.state_after}: {report.detail}", style=style))  # fmt: skip


@app.command()
def rollback(
    operation: Annotated[str, typer.Argument(help="The operation id (see `orderguard ops`).")],
    broker: options.BrokerOpt = options.BrokerKind.SIM,
    state: options.StateOpt = None,
    api_url: options.ApiUrlOpt = None,
    projectx_config: options.PxConfigOpt = None,
    account: options.AccountOpt = None,
    journal: options.JournalOpt = None,
    config: options.ConfigOpt = None,
    json_output: options.JsonOpt = False,
) -> None:
    """Force an operation back: cancel its orders, flatten exactly what it owns. Exit 0
    confirmed, 1 unknown or already finished, 3 not confirmed."""
    tgt = options.target(broker, state, api_url, projectx_config, account, journal, config)
    run(lambda: _rollback(tgt, operation), json_output=json_output, render=_render_rollback)


__all__ = ["app", "recover", "rollback"]
