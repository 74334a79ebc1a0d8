"""``orderguard status``: accounts, positions with their protection coverage, working orders,
and the journal's open protection obligations with their age.

Coverage is judged from broker truth as invariant I1 judges it: a position is ``protected`` when
working stops on its reducing side cover exactly its size, ``naked`` when they cover less,
``over_covered`` when more. Exit status 0 when every position is protected and no obligation is
open, 3 otherwise (see :mod:`orderguard.cli.exit_codes`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from orderguard.broker.base import Broker
from orderguard.chaos.invariants import coverage
from orderguard.cli import exit_codes, options
from orderguard.cli.output import console, run
from orderguard.cli.schemas import (
    AccountStatus,
    Coverage,
    OpenOperation,
    PositionStatus,
    StatusReport,
    WorkingOrder,
)
from orderguard.cli.session import open_session
from orderguard.clock import SystemClock
from orderguard.errors import JournalError
from orderguard.journal.reader import JournalReader, read_journal
from orderguard.models import STOP_TYPES, Account, Order, Position

app = typer.Typer()

OBLIGATION_STATE = "rolling_back"


def _coverage(net: int, stops: int) -> Coverage:
    if net == 0:
        return "flat"
    if stops == abs(net):
        return "protected"
    return "naked" if stops < abs(net) else "over_covered"


def _role(order: Order, net: int) -> str:
    reducing = net != 0 and order.side.sign != (1 if net > 0 else -1)
    if not reducing:
        return "entry"
    return "stop" if order.type in STOP_TYPES else "target"


def working_order(order: Order, net: int) -> WorkingOrder:
    return WorkingOrder(
        id=order.id,
        account_id=order.account_id,
        contract_id=order.contract_id,
        type=order.type.name.lower(),
        side=order.side.name.lower(),
        size=order.size,
        filled=order.fill_volume,
        limit_price=order.limit_price,
        stop_price=order.stop_price,
        status=order.status.name.lower(),
        custom_tag=order.custom_tag,
        role=_role(order, net),
    )


def position_statuses(
    positions: Iterable[Position], working: Iterable[Order]
) -> list[PositionStatus]:
    """Coverage of each open position (pure)."""
    positions = [p for p in positions if p.size]
    covered = coverage(positions, working)
    out = []
    for p in sorted(positions, key=lambda p: (p.account_id, p.contract_id)):
        c = covered[(p.account_id, p.contract_id)]
        out.append(
            PositionStatus(
                account_id=p.account_id,
                contract_id=p.contract_id,
                size=p.signed_size,
                average_price=p.average_price,
                stops=c.stops,
                targets=c.targets,
                coverage=_coverage(c.net, c.stops),
            )
        )
    return out


async def account_status(broker: Broker, account: Account) -> AccountStatus:
    positions = await broker.search_positions(account.id)
    working = await broker.search_open_orders(account.id)
    net = {p.contract_id: p.signed_size for p in positions if p.size}
    return AccountStatus(
        id=account.id,
        name=account.name,
        balance=account.balance,
        can_trade=account.can_trade,
        positions=position_statuses(positions, working),
        working_orders=[working_order(o, net.get(o.contract_id, 0)) for o in working],
    )


async def open_operations(path: Path, now: datetime) -> list[OpenOperation]:
    """Unfinished operations of a journal, read-only; ``since`` is when each entered its state."""

    async def body(reader: JournalReader) -> list[OpenOperation]:
        out = []
        for op in await reader.unfinished_operations():
            since = op.created_at
            for change in await reader.state_changes(op.operation_id):
                if change.to_state == op.state:
                    since = change.at
            out.append(
                OpenOperation(
                    operation_id=op.operation_id,
                    type=op.type,
                    state=op.state,
                    account_id=op.account_id,
                    contract_id=op.contract_id,
                    since=since,
                    age_seconds=max(0.0, (now - since).total_seconds()),
                    obligation=op.state == OBLIGATION_STATE,
                )
            )
        return sorted(out, key=lambda o: o.since)

    return await read_journal(path, body)


async def _status(target: options.Target) -> tuple[StatusReport, int]:
    now = SystemClock().now()
    async with open_session(target, realtime=False) as session:
        accounts = [a for a in session.accounts if target.account in (None, a.id)]
        statuses = [await account_status(session.broker, a) for a in accounts]
        label, journal = session.label, session.journal
    ops: list[OpenOperation] = []
    journal_error = None
    if journal is not None and journal.exists():
        try:
            ops = await open_operations(journal, now)
        except JournalError as exc:
            journal_error = str(exc)
    elif journal is not None:
        journal_error = f"no journal at {journal}"
    obligations = [o for o in ops if o.obligation]
    unsafe = any(p.coverage in ("naked", "over_covered") for a in statuses for p in a.positions)
    report = StatusReport(
        ok=not unsafe and not obligations,
        broker=label,
        at=now,
        journal=None if journal is None else str(journal),
        journal_error=journal_error,
        accounts=statuses,
        obligations=obligations,
        unfinished_operations=ops,
    )
    return report, exit_codes.OK if report.ok else exit_codes.UNSAFE


_FLAG = {
    "protected": ("protected", "green"),
    "naked": ("NAKED", "bold red"),
    "over_covered": ("OVER-COVERED", "bold yellow"),
    "flat": ("flat", "dim"),
}


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def render(report: StatusReport) -> None:
    out = console()
    head = Text(f"orderguard status · {report.broker}", style="bold")
    head.append(f" · journal {report.journal or 'none'}", style="dim")
    out.print(head)
    for account in report.accounts:
        title = f"Account {account.id} {account.name} · balance {account.balance}"
        if not account.can_trade:
            title += " · cannot trade"
        out.print(_positions_table(title, account.positions))
        out.print(_orders_table(account.working_orders))
    if report.journal_error:
        out.print(Text(f"journal: {report.journal_error}", style="yellow"))
    out.print(_operations_table(report.unfinished_operations))
    if report.ok:
        out.print(Text("OK: every position protected, no open obligation", style="bold green"))
    else:
        out.print(Text("ATTENTION: a position is not exactly protected, or an obligation is open",
                       style="bold red"))  # fmt: skip


def _positions_table(title: str, positions: Sequence[PositionStatus]) -> Table:
    table = Table(title=title, title_justify="left")
    for name in ("contract", "size", "avg price", "stops", "targets", "coverage"):
        table.add_column(name, justify="left" if name in ("contract", "coverage") else "right")
    for p in positions:
        flag, style = _FLAG[p.coverage]
        table.add_row(
            p.contract_id,
            f"{p.size:+d}",
            str(p.average_price),
            str(p.stops),
            str(p.targets),
            Text(flag, style=style),
        )
    if not positions:
        table.add_row("(flat)", "", "", "", "", "")
    return table


def _orders_table(orders: Sequence[WorkingOrder]) -> Table:
    table = Table(title="Working orders", title_justify="left")
    for name in ("id", "contract", "role", "type", "side", "size", "filled", "price", "tag"):
        table.add_column(name, overflow="fold")
    for o in orders:
        price = o.stop_price if o.stop_price is not None else o.limit_price
        table.add_row(
            str(o.id), o.contract_id, o.role, o.type, o.side, str(o.size), str(o.filled),
            "-" if price is None else str(price), o.custom_tag or "-",
        )  # fmt: skip
    if not orders:
        table.add_row("(none)", *[""] * 8)
    return table


def _operations_table(ops: Sequence[OpenOperation]) -> Table:
    table = Table(title="Unfinished operations (journal)", title_justify="left")
    for name in ("operation", "type", "state", "account", "contract", "age"):
        table.add_column(name, overflow="fold")
    for op in ops:
        state = Text(op.state, style="bold red" if op.obligation else "")
        if op.obligation:
            state.append(" (obligation)")
        table.add_row(
            op.operation_id, op.type, state, str(op.account_id or "-"),
            op.contract_id or "-", _age(op.age_seconds),
        )  # fmt: skip
    if not ops:
        table.add_row("(none)", "", "", "", "", "")
    return table


@app.command()
def status(
    broker: options.BrokerOpt = options.BrokerKind.SIM,
    state: options.StateOpt = None,
    api_url: options.ApiUrlOpt = None,
    projectx_config: options.PxConfigOpt = None,
    account: options.AccountOpt = None,
    journal: options.JournalOpt = None,
    json_output: options.JsonOpt = False,
) -> None:
    """Accounts, positions with protection coverage (naked / over-covered flagged), working
    orders, and open protection obligations with their age. Exit 3 when not all safe."""
    target = options.target(broker, state, api_url, projectx_config, account, journal)
    run(lambda: _status(target), json_output=json_output, render=render)


__all__ = ["account_status", "app", "open_operations", "position_statuses", "status"]
