"""``orderguard bracket``, ``close`` and ``cancel-all``: act on an account from the terminal.

Each starts an :class:`~orderguard.orders.OrderManager` on the command's journal (see
:mod:`orderguard.cli.session`), so what it does is journaled, risk-checked and recovered like
anything a strategy does, and stops it after. A command line process ends with the command:
``bracket`` therefore waits until a filled entry is protected before it returns (exit 3 if that
could not be confirmed). With native brackets (server-side OCO: the simulator, and ProjectX
accounts with Auto OCO Brackets) the exchange keeps the exits linked after the process ends;
client-side exits are supervised only while an orderguard process runs on the same journal.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from orderguard.cli import exit_codes, options
from orderguard.cli.output import console, run
from orderguard.cli.schemas import BracketReport, CancelAllReport, CancelledOrder, CloseReport
from orderguard.cli.session import Session, Target, open_session
from orderguard.cli.status_command import position_statuses
from orderguard.errors import InvalidPriceError, ValidationError
from orderguard.journal.sqlite import SqliteJournal
from orderguard.models import Contract, OrderSide
from orderguard.orders import OrderManager
from orderguard.orders.bracket.values import BracketOrderResponse, BracketOutcome
from orderguard.orders.results import CloseOutcome

app = typer.Typer()
log = logging.getLogger("orderguard.cli")

CANCEL_GRACE = 10.0  # seconds for an unfilled entry's cancel to be confirmed after --wait


@contextlib.asynccontextmanager
async def managed(session: Session, target: Target) -> AsyncIterator[OrderManager]:
    """A started OrderManager on the session's account and journal; stopped after."""
    config = target.manager_config()
    if session.journal is None:
        manager = OrderManager(session.broker, account_id=session.account.id, config=config)
        async with manager:
            yield manager
        return
    async with (
        SqliteJournal(session.journal) as journal,
        OrderManager(
            session.broker, account_id=session.account.id, journal=journal, config=config
        ) as manager,
    ):
        yield manager


# -- bracket --------------------------------------------------------------------------------------
class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class EntryType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"


def _decimal(text: str | None, name: str) -> Decimal | None:
    if text is None:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        raise InvalidPriceError(f"{name} {text!r} is not a number") from None


def exit_prices(
    contract: Contract,
    side: OrderSide,
    reference: Decimal,
    stop_ticks: int,
    target_ticks: int,
) -> tuple[Decimal, Decimal]:
    """Stop and target ``ticks`` away from ``reference`` on the losing and winning side."""
    if stop_ticks < 1 or target_ticks < 1:
        raise ValidationError("--stop-ticks and --target-ticks must be at least 1")
    step = contract.tick_size * side.sign
    base = contract.align(reference)
    return base - step * stop_ticks, base + step * target_ticks


def _bracket_report(
    result: BracketOrderResponse,
    contract: str,
    side: Side,
    size: int,
    entry: EntryType,
    note: str | None,
) -> tuple[BracketReport, int]:
    outcome = result.outcome
    ok = outcome in (BracketOutcome.PROTECTED, BracketOutcome.PENDING_ENTRY)
    if outcome is BracketOutcome.NAKED:
        code = exit_codes.UNSAFE
    elif outcome is BracketOutcome.UNKNOWN:
        code = exit_codes.UNAVAILABLE
    elif outcome is BracketOutcome.FLAT:
        code = exit_codes.OK if result.success else exit_codes.REFUSED
        ok = result.success
    else:
        code = exit_codes.OK
    report = BracketReport(
        ok=ok,
        operation_id=result.operation_id,
        contract_id=contract,
        side=side.value,
        size=size,
        entry_type=entry.value,
        outcome=outcome.value,
        native=result.native,
        entry_order_id=result.entry_order_id,
        stop_order_id=result.stop_order_id,
        target_order_id=result.target_order_id,
        entry_price=result.entry_price,
        average_fill_price=result.average_fill_price,
        stop_price=result.stop_loss_price,
        target_price=result.take_profit_price,
        filled_size=result.filled_size,
        protected_size=result.protected_size,
        reason=result.reason or result.error_message,
        note=note,
    )
    return report, code


async def _bracket(
    target: Target,
    contract_key: str,
    side: Side,
    size: int,
    entry: EntryType,
    price: Decimal | None,
    stop: Decimal | None,
    take: Decimal | None,
    stop_ticks: int | None,
    target_ticks: int | None,
    wait: float,
) -> tuple[BracketReport, int]:
    if entry is EntryType.LIMIT and price is None:
        raise ValidationError("a limit entry needs --price")
    if entry is EntryType.MARKET and price is not None:
        raise ValidationError("--price is for a limit entry (--entry limit)")
    if (stop is None) == (stop_ticks is None) or (take is None) == (target_ticks is None):
        raise ValidationError("give the stop as --stop or --stop-ticks, the target as "
                              "--target or --target-ticks (one of each)")  # fmt: skip
    order_side = OrderSide.BUY if side is Side.BUY else OrderSide.SELL
    async with open_session(target) as session, managed(session, target) as manager:
        contract = await manager.contracts.resolve(contract_key)
        if stop_ticks is not None or target_ticks is not None:
            reference = price
            if reference is None:
                reference = await session.broker.get_last_price(contract.id)
            if reference is None:
                raise ValidationError(
                    f"no last price for {contract.id}: give --stop and --target as prices"
                )
            by_ticks = exit_prices(contract, order_side, reference, stop_ticks or 1,
                                   target_ticks or 1)  # fmt: skip
            stop = by_ticks[0] if stop_ticks is not None else stop
            take = by_ticks[1] if target_ticks is not None else take
        assert stop is not None and take is not None
        # A limit entry waits at most --wait for its fill; then the saga cancels it (the
        # command's process ends, and the next one's start-up recovery would roll back an
        # entry no saga is watching).
        timeout = wait if entry is EntryType.LIMIT else None
        result = await manager.place_bracket_order(
            contract.id, order_side, size, price, stop, take, entry_type=entry.value,
            entry_timeout=timeout,
        )  # fmt: skip
        if result.outcome is not BracketOutcome.PROTECTED and not result.finished:
            # Never leave a fill unprotected behind us: wait for the saga to protect it (or
            # for the unfilled entry to be cancelled).
            result = await manager.wait_for_protection(
                result.operation_id, timeout=wait + CANCEL_GRACE
            )
        note = None
        if result.outcome is BracketOutcome.PROTECTED and not result.native:
            note = "client-side exits: supervised only while an orderguard process runs"
        elif result.outcome is BracketOutcome.FLAT and result.filled_size == 0:
            note = f"the entry did not fill within {wait:g} s and was cancelled"
        log.info(
            "bracket %s: %s, filled %d, protected %d",
            result.operation_id, result.outcome.value, result.filled_size, result.protected_size,
            extra={"operation_id": result.operation_id},
        )  # fmt: skip
        return _bracket_report(result, contract.id, side, size, entry, note)


def _render_bracket(report: BracketReport) -> None:
    out = console()
    table = Table(title=f"Bracket {report.operation_id}", title_justify="left", show_header=False)
    table.add_column("field")
    table.add_column("value")
    rows = (
        ("contract", report.contract_id),
        ("entry", f"{report.side} {report.size} {report.entry_type}"
                  + (f" at {report.entry_price}" if report.entry_price is not None else "")),
        ("outcome", report.outcome.upper()),
        ("filled / protected", f"{report.filled_size} / {report.protected_size}"),
        ("fill price", str(report.average_fill_price or "-")),
        ("stop", f"{report.stop_price} (order {report.stop_order_id or '-'})"),
        ("target", f"{report.target_price} (order {report.target_order_id or '-'})"),
        ("exits", "native (server-side OCO)" if report.native else "client-side OCO"),
    )  # fmt: skip
    for name, value in rows:
        table.add_row(name, value)
    if report.reason:
        table.add_row("reason", report.reason)
    out.print(table)
    if report.note:
        out.print(Text(f"note: {report.note}", style="yellow"))


@app.command()
def bracket(
    contract: Annotated[str, typer.Argument(help="Contract id (CON.F.US.MNQ.Z26) or symbol.")],
    side: Annotated[Side, typer.Argument(help="buy or sell.")],
    size: Annotated[int, typer.Argument(min=1, help="Contracts.")],
    entry: Annotated[EntryType, typer.Option(help="Entry order type.")] = EntryType.MARKET,
    price: Annotated[str | None, typer.Option(help="Limit entry price.")] = None,
    stop: Annotated[str | None, typer.Option(help="Stop price.")] = None,
    target_price: Annotated[str | None, typer.Option("--target", help="Target price.")] = None,
    stop_ticks: Annotated[
        int | None, typer.Option(min=1, help="Stop this many ticks from the entry.")
    ] = None,
    target_ticks: Annotated[
        int | None, typer.Option(min=1, help="Target this many ticks from the entry.")
    ] = None,
    wait: Annotated[
        float,
        typer.Option(
            min=0.1,
            help="Seconds to wait for a fill's protection; a limit entry not filled by then "
            "is cancelled.",
        ),
    ] = 30.0,
    broker: options.BrokerOpt = options.BrokerKind.SIM,
    state: options.StateOpt = None,
    api_url: options.ApiUrlOpt = None,
    projectx_config: options.PxConfigOpt = None,
    account: options.AccountOpt = None,
    journal: options.JournalOpt = None,
    config: options.ConfigOpt = None,
    json_output: options.JsonOpt = False,
) -> None:
    """Place a bracket (entry, stop, target): prices, or ticks from the entry (market: from
    the last price). Waits until a fill is protected; a limit entry waits --wait for its fill.
    Exit 0 protected (or flat), 1 refused (risk limit, rejection), 3 naked, 4 unknown."""
    tgt = options.target(broker, state, api_url, projectx_config, account, journal, config)
    run(
        lambda: _bracket(
            tgt,
            contract,
            side,
            size,
            entry,
            _decimal(price, "--price"),
            _decimal(stop, "--stop"),
            _decimal(target_price, "--target"),
            stop_ticks,
            target_ticks,
            wait,
        ),
        json_output=json_output,
        render=_render_bracket,
    )


# -- close ----------------------------------------------------------------------------------------
async def _close(target: Target, contract_key: str, size: int | None) -> tuple[CloseReport, int]:
    async with open_session(target) as session, managed(session, target) as manager:
        contract = await manager.contracts.resolve(contract_key)
        if size is None:
            result = await manager.close_position(contract.id, whole_contract=True)
        else:
            result = await manager.close_position(contract.id, size=size)
    log.info(
        "close %s: %s, closed %d",
        result.contract_id, result.outcome.value, result.closed_size,
        extra={"operation_id": result.operation_id},
    )  # fmt: skip
    ok = bool(result)
    if ok:
        code = exit_codes.OK
    elif result.outcome is CloseOutcome.REJECTED:
        code = exit_codes.REFUSED
    elif result.outcome is CloseOutcome.UNKNOWN:
        code = exit_codes.UNAVAILABLE
    else:
        code = exit_codes.UNSAFE
    return (
        CloseReport(
            ok=ok,
            operation_id=result.operation_id,
            contract_id=result.contract_id,
            outcome=result.outcome.value,
            requested_size=result.requested_size,
            closed_size=result.closed_size,
            position_before=result.position_before,
            final_position=result.final_position,
            order_id=result.order_id,
            detail=result.detail,
        ),
        code,
    )


def _render_close(report: CloseReport) -> None:
    style = "bold green" if report.ok else "bold red"
    text = Text(f"close {report.contract_id}: {report.outcome}", style=style)
    text.append(
        f"  position {report.position_before:+d} -> "
        f"{'?' if report.final_position is None else f'{report.final_position:+d}'}"
        f", closed {report.closed_size} of {report.requested_size}",
        style="",
    )
    if report.detail:
        text.append(f"  ({report.detail})", style="dim")
    console().print(text)


@app.command()
def close(
    contract: Annotated[str, typer.Argument(help="Contract id or symbol.")],
    size: Annotated[
        int | None, typer.Option(min=1, help="Close only this many (default: all of it).")
    ] = None,
    broker: options.BrokerOpt = options.BrokerKind.SIM,
    state: options.StateOpt = None,
    api_url: options.ApiUrlOpt = None,
    projectx_config: options.PxConfigOpt = None,
    account: options.AccountOpt = None,
    journal: options.JournalOpt = None,
    config: options.ConfigOpt = None,
    json_output: options.JsonOpt = False,
) -> None:
    """Flatten the position on a contract (all of it, or --size), journaled; its exits follow.
    Exit 0 closed (or nothing to close), 1 rejected, 3 partly, 4 unknown."""
    tgt = options.target(broker, state, api_url, projectx_config, account, journal, config)
    run(lambda: _close(tgt, contract, size), json_output=json_output, render=_render_close)


# -- cancel-all -----------------------------------------------------------------------------------
async def _cancel_all(target: Target, contract_key: str | None) -> tuple[CancelAllReport, int]:
    async with open_session(target) as session, managed(session, target) as manager:
        contract_id = None
        if contract_key is not None:
            contract_id = (await manager.contracts.resolve(contract_key)).id
        result = await manager.cancel_all_orders(contract_id)
        account = session.account.id
        positions = await session.broker.search_positions(account)
        working = await session.broker.search_open_orders(account)
    naked = [p for p in position_statuses(positions, working) if p.coverage == "naked"]
    log.info(
        "cancel-all: %d of %d cancelled",
        result.cancelled, result.total,
        extra={"operation_id": result.operation_id},
    )  # fmt: skip
    orders = [
        CancelledOrder(
            order_id=r.order_id,
            cancelled=r.cancelled,
            status=None if r.status is None else r.status.name.lower(),
            detail=r.detail or None,
        )
        for r in result
    ]
    code = exit_codes.OK
    if naked:
        code = exit_codes.UNSAFE
    elif result.failed:
        code = exit_codes.REFUSED
    report = CancelAllReport(
        ok=code == exit_codes.OK,
        operation_id=result.operation_id,
        total=result.total,
        cancelled=result.cancelled,
        failed=result.failed,
        orders=orders,
        naked_after=naked,
    )
    return report, code


def _render_cancel_all(report: CancelAllReport) -> None:
    out = console()
    out.print(f"cancelled {report.cancelled} of {report.total} working orders"
              f" (operation {report.operation_id or '-'})")  # fmt: skip
    for order in report.orders:
        if not order.cancelled:
            out.print(f"  order {order.order_id}: not cancelled "
                      f"({order.status or 'not found'}) {order.detail or ''}")  # fmt: skip
    for p in report.naked_after:
        out.print(Text(f"NAKED: {p.contract_id} position {p.size:+d} has no stop now "
                       "(cancel-all cancels protective stops too)", style="bold red"))  # fmt: skip


@app.command("cancel-all")
def cancel_all(
    contract: Annotated[
        str | None, typer.Option(help="Only this contract's orders (id or symbol).")
    ] = None,
    broker: options.BrokerOpt = options.BrokerKind.SIM,
    state: options.StateOpt = None,
    api_url: options.ApiUrlOpt = None,
    projectx_config: options.PxConfigOpt = None,
    account: options.AccountOpt = None,
    journal: options.JournalOpt = None,
    config: options.ConfigOpt = None,
    json_output: options.JsonOpt = False,
) -> None:
    """Cancel every working order (of one contract), one journaled bulk cancel. Stops go too:
    exit 3 when a position is left naked, 1 when an order could not be cancelled."""
    tgt = options.target(broker, state, api_url, projectx_config, account, journal, config)
    run(lambda: _cancel_all(tgt, contract), json_output=json_output, render=_render_cancel_all)


__all__ = ["app", "bracket", "cancel_all", "close", "exit_prices", "managed"]
