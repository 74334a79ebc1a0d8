"""``orderguard journal show|stats`` on a journal an OrderManager wrote, read without touching it.

The journal is real: an OrderManager on the simulated exchange writes it through SqliteJournal
(two brackets, a bulk cancel, a position close; the process then dies with the second bracket's
entry still working). One operation is added through the Journal API as a dead process would
have left it after an ambiguous modify: an ``unknown`` outcome, its later resolution and an event.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import sqlite3
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from orderguard.broker.sim import LatencyModel, SimBroker, SimExchange, default_contracts
from orderguard.cli.app import app
from orderguard.clock import VirtualClock
from orderguard.journal import IntentKind, SqliteJournal
from orderguard.journal.testing import RecordFactory
from orderguard.models import OrderSide
from orderguard.orders import OrderManager
from orderguard.recovery.manager import OperationRecoveryManager
from orderguard.testing import kill

MNQ = "CON.F.US.MNQ.Z26"
MODIFY_OP = "mod-after-crash"


@dataclass(frozen=True)
class Built:
    path: Path
    rolled_back: str  # bracket whose entry the bulk cancel took
    bulk_cancel: str
    close: str
    pending: str  # bracket whose entry was still working when the process died


async def _trade(path: Path) -> Built:
    clock = VirtualClock()
    exchange = SimExchange(clock, contracts=default_contracts(), liquidity=None)
    exchange.open_account(
        account_id=1, name="SIM-1", balance=Decimal("50000"), native_brackets=False,
        max_order_size=50,
    )  # fmt: skip
    exchange.set_price(MNQ, Decimal("21000.00"))
    sim = SimBroker(exchange, clock, latency=LatencyModel(request=0.0, response=0.0, event=0.0))
    journal = SqliteJournal(path, clock)
    await journal.open()
    manager = OrderManager(sim, clock=clock, journal=journal, rng=random.Random(1))
    await clock.run(manager.start())
    below = Decimal("20000.00"), Decimal("19990.00"), Decimal("20010.00")  # entry never fills
    first = await clock.run(manager.place_bracket_order(MNQ, OrderSide.BUY, 1, *below))
    await clock.advance(1)
    cancel = await clock.run(manager.cancel_all_orders())
    await clock.advance(1)
    close = await clock.run(manager.close_position(MNQ, whole_contract=True))
    await clock.advance(1)
    pending = await clock.run(manager.place_bracket_order(MNQ, OrderSide.BUY, 2, *below))
    await clock.advance(0)
    kill(manager)  # the process dies: its tasks go, the journal stays

    make = RecordFactory(start=clock.now())  # after everything the manager wrote
    await journal.start_operation(
        make.op(MODIFY_OP, type="order_modification", state="in_progress", account_id=1)
    )
    intent = make.intent(MODIFY_OP, leg="modify", kind=IntentKind.MODIFY, account_id=1)
    await journal.record_intent(intent)
    await journal.record_outcome(make.outcome(intent, "unknown", message="timeout after send"))
    await journal.record_outcome(make.outcome(intent, "resolved", order_id=77))
    await journal.record_event(make.event("order-77-modified", MODIFY_OP))
    await journal.close()
    assert cancel.operation_id is not None and close.operation_id is not None
    return Built(path, first.operation_id, cancel.operation_id, close.operation_id,
                 pending.operation_id)  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    path = tmp_path_factory.mktemp("journal") / "journal.db"
    return asyncio.run(_trade(path))


@pytest.fixture
def journal(built: Built, tmp_path: Path) -> Path:
    """A private copy of the built journal (closed cleanly: no -wal, no -shm)."""
    copy = tmp_path / "journal.db"
    shutil.copyfile(built.path, copy)
    return copy


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, ["journal", *args], env={"COLUMNS": "200"})


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# -- show ----------------------------------------------------------------------------------------
def test_show_lists_every_operation_newest_first(built: Built, journal: Path) -> None:
    """One row per operation, newest first, with type, state, account, contract and legs."""
    ops = as_json(invoke("show", str(journal), "--json"))["operations"]
    assert [o["operation_id"] for o in ops] == [
        MODIFY_OP, built.pending, built.close, built.bulk_cancel, built.rolled_back,
    ]  # fmt: skip
    by_id = {o["operation_id"]: o for o in ops}
    assert by_id[built.rolled_back]["state"] == "rolled_back"
    assert by_id[built.bulk_cancel] | {"legs": by_id[built.bulk_cancel]["legs"]} == {
        "operation_id": built.bulk_cancel, "type": "bulk_cancel", "state": "completed",
        "created_at": "2026-01-05T14:30:01.000000+00:00",
        "updated_at": "2026-01-05T14:30:01.000000+00:00",
        "account_id": 1, "contract_id": None, "legs": 1,
    }  # fmt: skip
    assert by_id[built.pending]["type"] == "bracket_order"
    assert by_id[built.pending]["contract_id"] == MNQ
    assert by_id[built.pending]["legs"] == 1  # only the entry was journaled before the death


def test_show_limit_keeps_the_newest(built: Built, journal: Path) -> None:
    ops = as_json(invoke("show", str(journal), "--limit", "2", "--json"))["operations"]
    assert [o["operation_id"] for o in ops] == [MODIFY_OP, built.pending]


def test_show_unfinished_lists_what_recovery_will_take_over(built: Built, journal: Path) -> None:
    """Only the non-terminal operations: the working bracket and the ambiguous modify."""
    ops = as_json(invoke("show", str(journal), "--unfinished", "--json"))["operations"]
    assert [(o["operation_id"], o["state"]) for o in ops] == [
        (MODIFY_OP, "in_progress"), (built.pending, "in_progress"),
    ]  # fmt: skip


def test_show_prints_a_table(built: Built, journal: Path) -> None:
    result = invoke("show", str(journal), "--unfinished")
    assert result.exit_code == 0, result.output
    assert "Unfinished operations" in result.output
    line = next(row for row in result.output.splitlines() if built.pending in row)
    for cell in ("bracket_order", "in_progress", "2026-01-05 14:30:03.000", MNQ):
        assert cell in line, cell
    assert built.close not in result.output


def test_show_operation_has_intents_outcomes_and_state_changes(built: Built, journal: Path) -> None:
    detail = as_json(invoke("show", str(journal), "--operation", built.rolled_back, "--json"))
    assert detail["operation"]["state"] == "rolled_back"
    [item] = detail["intents"]
    assert item["intent"]["leg"] == "entry"
    assert item["intent"]["kind"] == "place"
    assert item["intent"]["custom_tag"] == f"og-{built.rolled_back}-entry-0"
    assert item["intent"]["request"]["price"] == "20000.00"
    assert [(o["kind"], o["order_id"]) for o in item["outcomes"]] == [("confirmed", 1)]
    moves = [(c["from_state"], c["to_state"]) for c in detail["state_changes"]]
    assert moves[0] == (None, "pending")
    assert moves[-1][1] == "rolled_back"


def test_show_operation_shows_unknown_then_resolved_and_events(journal: Path) -> None:
    result = invoke("show", str(journal), "--operation", MODIFY_OP)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    unknown = next(i for i, row in enumerate(lines) if "timeout after send" in row)
    assert "unknown" in lines[unknown] and "modify" in lines[unknown]
    assert "resolved" in lines[unknown + 1] and "77" in lines[unknown + 1]
    assert "order-77-modified" in result.output  # the applied event
    assert "Operation mod-after-crash" in result.output


def test_show_unknown_operation_exits_1(journal: Path) -> None:
    result = invoke("show", str(journal), "--operation", "nope")
    assert result.exit_code == 1
    assert "no operation 'nope'" in result.stderr


# -- stats ---------------------------------------------------------------------------------------
def test_stats_counts_match_the_journal_and_the_manager(built: Built, journal: Path) -> None:
    """The figures equal a recovery manager's get_recovery_statistics() over the same file."""
    stats = as_json(invoke("stats", str(journal), "--json"))
    assert stats["operations"]["by_state"] == {"completed": 2, "in_progress": 2, "rolled_back": 1}
    assert stats["operations"]["by_type"] == {
        "bracket_order": 2, "bulk_cancel": 1, "order_modification": 1, "position_close": 1,
    }  # fmt: skip
    assert stats["operations"]["total"] == 5
    assert stats["outcomes"]["by_kind"] == {"confirmed": 3, "resolved": 1, "unknown": 1}
    assert stats["intents"] == 4 and stats["events"] == 1

    async def reference() -> dict[str, Any]:
        # The real journal, opened by a writer: on a copy, since that may migrate and write.
        async with SqliteJournal(shutil.copyfile(journal, journal.with_name("ref.db"))) as real:
            manager = OperationRecoveryManager(real, VirtualClock())
            await manager.load()
            return manager.get_recovery_statistics()

    expected = asyncio.run(reference())
    del expected["history_size"]
    assert stats["recovery_statistics"] == expected
    assert expected["unknown_outcomes_seen"] == expected["unknown_outcomes_resolved"] == 1
    assert expected["active_operations"] == 2


def test_stats_prints_tables(journal: Path) -> None:
    result = invoke("stats", str(journal))
    assert result.exit_code == 0, result.output
    for text in ("order_modification", "outcomes: unknown", "Recovery statistics", "success_rate"):
        assert text in result.output, text


# -- read-only -----------------------------------------------------------------------------------
COMMANDS = (("show",), ("show", "--unfinished", "--json"), ("stats",), ("stats", "--json"),
            ("show", "--operation", MODIFY_OP))  # fmt: skip


def _files(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(directory.iterdir())}


@pytest.mark.parametrize("args", COMMANDS)
def test_commands_leave_the_directory_untouched(journal: Path, args: tuple[str, ...]) -> None:
    """Same bytes, same mtime, and no -wal or -shm created next to a cleanly closed journal."""
    before = _files(journal.parent)
    assert list(before) == ["journal.db"]
    result = invoke(args[0], str(journal), *args[1:])
    assert result.exit_code == 0, result.output
    assert _files(journal.parent) == before


def test_reads_next_to_a_live_writer(built: Built, journal: Path) -> None:
    """A process holding the file (committed and uncommitted writes) does not stop the reader.

    The reader sees what is committed, not the open transaction; the writer commits afterwards.
    """
    writer = sqlite3.connect(journal, isolation_level=None)
    try:
        assert writer.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        insert = (
            "INSERT INTO operations (operation_id, type, state, created_at, updated_at, data) "
            "VALUES (?, 'bulk_cancel', 'pending', ?, ?, '{}')"
        )
        late = "2026-01-05T15:00:00.000000+00:00"
        writer.execute(insert, ("committed", late, late))
        writer.execute("BEGIN IMMEDIATE")
        writer.execute(insert, ("uncommitted", late, late))
        main_file = journal.read_bytes()

        ops = as_json(invoke("show", str(journal), "--unfinished", "--json"))["operations"]
        assert [o["operation_id"] for o in ops] == ["committed", MODIFY_OP, built.pending]
        assert journal.read_bytes() == main_file
        writer.execute("COMMIT")  # the reader held no lock that blocks it
    finally:
        writer.close()
    ops = as_json(invoke("show", str(journal), "--unfinished", "--json"))["operations"]
    assert ops[0]["operation_id"] == "uncommitted"


# -- errors --------------------------------------------------------------------------------------
def _error(result: Result) -> str:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("command", ["show", "stats"])
def test_a_missing_file_is_a_one_line_error_and_is_not_created(
    tmp_path: Path, command: str
) -> None:
    missing = tmp_path / "missing.db"
    assert _error(invoke(command, str(missing))) == f"error: no journal file at {missing}"
    assert list(tmp_path.iterdir()) == []


def test_a_garbage_file_is_refused_untouched(tmp_path: Path) -> None:
    garbage = tmp_path / "notes.db"
    garbage.write_bytes(b"not a database at all\n" * 300)
    before = _files(tmp_path)
    line = _error(invoke("show", str(garbage)))
    assert line.startswith(f"error: {garbage} is not an orderguard journal")
    assert _files(tmp_path) == before


def test_a_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE operations (x)")
        conn.execute("PRAGMA user_version = 1")  # many applications use user_version
    conn.close()
    line = _error(invoke("stats", str(other)))
    assert line == f"error: {other} is not an orderguard journal (application_id 0x0)"


def test_a_newer_schema_is_refused_untouched(journal: Path) -> None:
    conn = sqlite3.connect(journal, isolation_level=None)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    before = _files(journal.parent)
    line = _error(invoke("show", str(journal), "--unfinished"))
    assert "schema version 99, newer than this orderguard reads (1); upgrade orderguard" in line
    assert _files(journal.parent) == before


def test_operation_and_unfinished_together_are_a_usage_error(journal: Path) -> None:
    result = invoke("show", str(journal), "--operation", MODIFY_OP, "--unfinished")
    assert result.exit_code == 2
    assert "--operation shows one operation" in result.output


def test_journal_help_lists_the_commands() -> None:
    result = CliRunner().invoke(app, ["journal", "--help"])
    assert result.exit_code == 0
    assert "show" in result.output and "stats" in result.output
