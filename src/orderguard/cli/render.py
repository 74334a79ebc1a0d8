"""Rich output for the demo: one timestamped line per :class:`DemoLine`, then summary tables.

Everything that decides *what* happened lives in ``demo.py``; this module only decides how it
looks. Text goes through :class:`rich.text.Text` (never markup), so a customTag or a broker
message containing brackets is printed as is.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

from orderguard.cli.demo import DemoLine, DemoOptions, DemoSummary, LineKind, money, price_text

# Label (fixed width) and style per kind of line.
_KINDS: dict[LineKind, tuple[str, str]] = {
    LineKind.INFO: ("info", "white"),
    LineKind.MARKET: ("market", "cyan"),
    LineKind.ACTION: ("send", "bold"),
    LineKind.ORDER: ("order", "blue"),
    LineKind.FILL: ("fill", "green"),
    LineKind.POSITION: ("account", "magenta"),
    LineKind.BRACKET: ("bracket", "bold cyan"),
    LineKind.FAULT: ("FAULT", "bold red"),
    LineKind.RECOVERY: ("recover", "yellow"),
    LineKind.ERROR: ("ERROR", "bold red"),
    LineKind.CHECK: ("check", "bold green"),
    LineKind.SECTION: ("", "bold"),
}
_LABEL_WIDTH = 8

# Statistics worth a row even when zero: they say what did *not* go wrong.
_ORDER_STATS = (
    "orders_placed",
    "orders_rejected",
    "cancels_sent",
    "modifies_sent",
    "unknown_outcomes",
    "placements_resolved_by_tag",
    "placements_unresolved",
    "connect_retries",
    "query_retries",
    "reconciliations",
    "callback_errors",
    "latched_outcomes",
    "tracked_orders",
)
_RECOVERY_STATS = (
    "operations_started",
    "operations_completed",
    "operations_rolled_back",
    "operations_failed",
    "unknown_outcomes_seen",
    "unknown_outcomes_resolved",
    "time_to_protection_p50",
    "time_to_protection_p99",
    "unprotected_episodes",
    "max_unprotected_seconds",
    "oco_incidents",
    "flattens",
)


def stamp(at: datetime) -> str:
    """Virtual wall time to the millisecond: ``14:30:05.250``."""
    return f"{at:%H:%M:%S}.{at.microsecond // 1000:03d}"


class DemoRenderer:
    """Draws demo lines and the final summary on a rich console."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def header(self, options: DemoOptions) -> None:
        title = Text("orderguard demo", style="bold")
        title.append(
            f"  seed {options.seed} · {options.steps} steps · faults {options.faults.value}"
            " · virtual time on a simulated exchange",
            style="dim",
        )
        self.console.print(title)

    def line(self, line: DemoLine) -> None:
        if line.kind is LineKind.SECTION:
            self.console.rule(Text(f"{stamp(line.at)}  {line.text}", style="bold"))
            return
        label, style = _KINDS[line.kind]
        if line.quiet:
            style = "dim"
        text = Text(stamp(line.at), style="dim")
        text.append(f"  {label:<{_LABEL_WIDTH}} ", style=style)
        text.append(line.text, style=None if line.kind is LineKind.INFO else style)
        self.console.print(text, overflow="fold")

    def summary(self, summary: DemoSummary) -> None:
        self.console.print()
        self.console.print(_orders_table(summary))
        self.console.print(_account_table(summary))
        self.console.print(_stats_table(summary))
        if summary.fault_counts:
            self.console.print(_faults_table(summary.fault_counts))
        self.console.print(_verdict(summary))


def _orders_table(summary: DemoSummary) -> Table:
    table = Table(title="Orders (exchange truth)", title_justify="left")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("id", "right"),
        ("role", "left"),
        ("type", "left"),
        ("side", "left"),
        ("size", "right"),
        ("filled", "right"),
        ("avg price", "right"),
        ("status", "left"),
    )
    for name, justify in columns:
        table.add_column(name, justify=justify)
    for row in summary.orders:
        table.add_row(
            str(row.id),
            row.role,
            row.type.name.lower().replace("_", " "),
            row.side.name.lower(),
            str(row.size),
            str(row.filled),
            price_text(row.average_price),
            row.status,
        )
    return table


def _account_table(summary: DemoSummary) -> Table:
    table = Table(title="Account", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    rows = (
        ("fills / contracts traded", f"{summary.fills} / {summary.contracts_traded}"),
        ("realised P&L", money(summary.realised_pnl, signed=True)),
        ("fees", money(-summary.fees, signed=True)),
        ("net", money(summary.net_pnl, signed=True)),
        ("balance", f"{money(summary.start_balance)} -> {money(summary.end_balance)}"),
        ("final position", str(summary.final_position)),
        ("working orders", str(summary.working_orders)),
        ("bracket", summary.bracket),
        ("virtual time", f"{summary.virtual_seconds:.2f} s"),
    )
    for name, value in rows:
        table.add_row(name, value)
    return table


def _stats_table(summary: DemoSummary) -> Table:
    table = Table(title="Manager statistics", title_justify="left")
    table.add_column("get_order_statistics()")
    table.add_column("", justify="right")
    table.add_column("get_recovery_statistics()")
    table.add_column("", justify="right")
    left = [(k, _num(summary.order_stats.get(k, 0))) for k in _ORDER_STATS]
    right = [(k, _num(summary.recovery_stats.get(k, 0))) for k in _RECOVERY_STATS]
    for i in range(max(len(left), len(right))):
        a = left[i] if i < len(left) else ("", "")
        b = right[i] if i < len(right) else ("", "")
        table.add_row(a[0], a[1], b[0], b[1])
    return table


def _faults_table(counts: Mapping[str, int]) -> Table:
    table = Table(title="Injected faults", title_justify="left")
    table.add_column("kind")
    table.add_column("count", justify="right")
    for kind, count in counts.items():
        table.add_row(kind, str(count))
    table.add_row(Text("total", style="bold"), Text(str(sum(counts.values())), style="bold"))
    return table


def _verdict(summary: DemoSummary) -> Text:
    if summary.ok:
        return Text(
            "OK: flat, no working orders, every fill booked (balance adds up)", style="bold green"
        )
    text = Text("FAILED: invariants broken at the end of the demo\n", style="bold red")
    for problem in summary.violations:
        text.append(f"  - {problem}\n", style="red")
    return text


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


__all__ = ["DemoRenderer", "stamp"]
