"""Operator commands against a live simulated account: the gateway simulator on 127.0.0.1 with
``--broker projectx --api-url``, and the embedded exchange with ``--broker sim --state``.

Every ``--json`` output is validated against the command's shipped model
(:mod:`orderguard.cli.schemas`); every exit status is checked.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orderguard import __version__
from orderguard.cli.app import app
from orderguard.cli.schemas import (
    SCHEMAS,
    BracketReport,
    CancelAllReport,
    CloseReport,
    ErrorReport,
    OperationTimeline,
    OpsList,
    RecoverReport,
    RollbackReport,
    StatusReport,
)

from .operator_helpers import (
    MNQ,
    Cli,
    GatewayThread,
    gateway_config,
    log_lines,
    projectx_cli,
    sim_cli,
)

BUY, SELL = 0, 1


@pytest.fixture
def gateway() -> Iterator[GatewayThread]:
    with GatewayThread(gateway_config()) as gw:
        yield gw


@pytest.fixture
def px(gateway: GatewayThread, tmp_path: Path) -> Cli:
    return projectx_cli(gateway, tmp_path)


@pytest.fixture
def sim(tmp_path: Path) -> Cli:
    return sim_cli(tmp_path)


def _position(report: StatusReport, contract: str = MNQ) -> int:
    return sum(p.size for a in report.accounts for p in a.positions if p.contract_id == contract)


# -- against the gateway simulator (ProjectX adapter) ---------------------------------------------
def test_status_of_a_live_account_flags_naked_and_over_covered(
    px: Cli, gateway: GatewayThread
) -> None:
    """A position opened on the platform is NAKED (exit 3); a bracket's is protected; a second
    stop over-covers it."""
    gateway.platform_order(BUY, 2)
    report = px.json(StatusReport, "status", code=3)
    (position,) = report.accounts[0].positions
    assert (position.size, position.stops, position.coverage) == (2, 0, "naked")
    assert not report.ok

    gateway.platform_order(SELL, 2, order_type=4, stopPrice=20950)
    report = px.json(StatusReport, "status")
    assert report.ok and report.accounts[0].positions[0].coverage == "protected"
    roles = {o.role for o in report.accounts[0].working_orders}
    assert roles == {"stop"}

    gateway.platform_order(SELL, 1, order_type=4, stopPrice=20940)
    report = px.json(StatusReport, "status", code=3)
    assert report.accounts[0].positions[0].coverage == "over_covered"


def test_bracket_close_and_cancel_all_from_the_terminal(px: Cli, gateway: GatewayThread) -> None:
    """bracket (ticks) -> protected; status shows it; close -> flat; cancel-all on a flat
    account cancels a resting entry; every JSON validates."""
    placed = px.json(
        BracketReport, "bracket", MNQ, "buy", "2", "--stop-ticks", "20", "--target-ticks", "40"
    )
    assert placed.ok and placed.outcome == "protected"
    assert (placed.filled_size, placed.protected_size) == (2, 2)

    status = px.json(StatusReport, "status")
    assert status.ok and _position(status) == 2
    assert [o.operation_id for o in status.unfinished_operations] == [placed.operation_id]

    closed = px.json(CloseReport, "close", "MNQ")
    assert closed.ok and closed.final_position == 0 and closed.closed_size == 2

    gateway.platform_order(BUY, 1, order_type=1, limitPrice=20900)
    cancelled = px.json(CancelAllReport, "cancel-all")
    assert cancelled.ok and cancelled.cancelled >= 1 and cancelled.naked_after == []
    status = px.json(StatusReport, "status")
    assert status.accounts[0].working_orders == [] and _position(status) == 0


def test_cancel_all_that_leaves_a_position_naked_exits_3(px: Cli, gateway: GatewayThread) -> None:
    """cancel-all cancels protective stops too: the naked position is reported, exit 3."""
    px.json(BracketReport, "bracket", MNQ, "sell", "1", "--stop-ticks", "8", "--target-ticks", "8")
    report = px.json(CancelAllReport, "cancel-all", code=3)
    assert [p.size for p in report.naked_after] == [-1]


def test_ops_rollback_and_recover_on_the_journal(px: Cli, tmp_path: Path) -> None:
    """ops lists the bracket and shows its timeline; rollback flattens it; recover finds
    nothing left; unknown ids exit 1."""
    placed = px.json(BracketReport, "bracket", MNQ, "buy", "1", "--stop", "20990",
                     "--target", "21010")  # fmt: skip
    journal = str(next((tmp_path / "state" / "orderguard").glob("*.db")))
    listed = px.json(OpsList, "ops", "--journal", journal, "--active", broker=False)
    assert [o.operation_id for o in listed.operations] == [placed.operation_id]
    timeline = px.json(
        OperationTimeline, "ops", "--journal", journal, "--id", placed.operation_id, broker=False
    )
    kinds = [e.kind for e in timeline.timeline]
    assert {"state", "intent", "outcome"} <= set(kinds)
    assert timeline.timeline == sorted(timeline.timeline, key=lambda e: e.at)

    rolled = px.json(RollbackReport, "rollback", placed.operation_id)
    assert rolled.confirmed and rolled.state_after == "rolled_back"
    status = px.json(StatusReport, "status")
    assert _position(status) == 0 and status.accounts[0].working_orders == []

    recovered = px.json(RecoverReport, "recover")
    assert recovered.ok and recovered.obligations_open == []
    assert px.json(ErrorReport, "rollback", "0123456789ab", code=1).error == "OperationError"
    missing = px.json(
        ErrorReport, "ops", "--journal", journal, "--id", "nope", code=1, broker=False
    )
    assert "nope" in missing.message


def test_risk_limit_refuses_a_bracket_with_exit_1(px: Cli, tmp_path: Path) -> None:
    """--config with max_position_per_contract = 1: a 2-lot bracket is refused, typed."""
    config = tmp_path / "risk.toml"
    config.write_text("[orderguard]\nmax_position_per_contract = 1\n")
    refused = px.json(ErrorReport, "bracket", MNQ, "buy", "2", "--stop-ticks", "8",
                      "--target-ticks", "8", "--config", str(config), code=1)  # fmt: skip
    assert refused.error == "RiskLimitError" and "limit of 1" in refused.message
    assert _position(px.json(StatusReport, "status")) == 0


def test_json_logs_carry_operation_ids_and_never_a_secret(px: Cli, gateway: GatewayThread) -> None:
    """--log-json --log-level debug over a whole bracket: every record is JSON, some carry the
    operation id, and neither the API key nor a session token appears anywhere."""
    _, key = gateway.credentials
    result = px.runner.invoke(
        app,
        ["--log-json", "--log-level", "debug", "bracket", MNQ, "buy", "1", "--stop-ticks",
         "8", "--target-ticks", "8", "--json", *px.base],
        env=px.env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    placed = BracketReport.model_validate_json(result.stdout)
    records = list(log_lines(result.stderr))
    assert records and all({"ts", "level", "logger", "message"} <= r.keys() for r in records)
    assert any(r["operation_id"] == placed.operation_id for r in records)
    assert any(r["level"] == "debug" for r in records)
    assert gateway.gateway is not None
    tokens_issued = gateway.gateway.core.tokens.issued
    assert tokens_issued >= 1
    everything = result.stdout + result.stderr
    assert key not in everything
    assert "eyJ" not in everything  # no JWT (every session token starts so)


# -- against the embedded exchange (sim with a state file) ----------------------------------------
def test_sim_state_keeps_the_account_between_commands(sim: Cli) -> None:
    """bracket, then status (another process's view of the same file), then close."""
    placed = sim.json(BracketReport, "bracket", "MNQ", "sell", "2", "--stop-ticks", "10",
                      "--target-ticks", "10")  # fmt: skip
    assert placed.outcome == "protected" and placed.native
    status = sim.json(StatusReport, "status")
    assert _position(status) == -2 and status.accounts[0].positions[0].coverage == "protected"
    assert sim.json(CloseReport, "close", "MNQ").final_position == 0
    assert _position(sim.json(StatusReport, "status")) == 0


def test_sim_limit_entries_fill_or_are_cancelled_within_wait(sim: Cli) -> None:
    """A marketable limit bracket is protected at once; one below the market rests --wait
    seconds, then is cancelled (flat, nothing left working)."""
    filled = sim.json(BracketReport, "bracket", "MNQ", "buy", "1", "--entry", "limit",
                      "--price", "21001", "--stop-ticks", "8", "--target-ticks", "8")  # fmt: skip
    assert filled.outcome == "protected" and filled.filled_size == 1
    assert sim.json(CloseReport, "close", "MNQ").final_position == 0
    resting = sim.json(BracketReport, "bracket", "MNQ", "buy", "1", "--entry", "limit",
                       "--price", "20900", "--stop-ticks", "8", "--target-ticks", "8",
                       "--wait", "0.5")  # fmt: skip
    assert resting.outcome == "flat" and resting.filled_size == 0
    assert resting.note is not None and "cancelled" in resting.note
    status = sim.json(StatusReport, "status")
    assert status.accounts[0].working_orders == [] and _position(status) == 0
    gateway_orders = sim.json(CancelAllReport, "cancel-all")
    assert gateway_orders.total == 0


def test_bad_input_is_one_line_with_exit_2(sim: Cli, tmp_path: Path) -> None:
    """An off-tick price, a missing directory, a missing journal: one line, exit 2, no
    traceback."""
    for args in (
        ("bracket", "MNQ", "buy", "1", "--stop", "20990.10", "--target", "21010"),
        ("bracket", "MNQ", "buy", "1", "--stop-ticks", "8"),
    ):
        result = sim(*args)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output and len(result.stderr.splitlines()) == 1
    result = Cli({}, [])("status", "--state", str(tmp_path / "no" / "such" / "s.db"))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.startswith("error: ")
    result = Cli({}, [])("ops", "--journal", str(tmp_path / "none.db"))
    assert (
        result.exit_code == 2
        and result.stderr.strip() == f"error: no journal at {tmp_path / 'none.db'}"
    )


def test_version_and_short_help(sim: Cli) -> None:
    """--version prints the version; -h works on the root and on a command."""
    assert __version__ in sim("--version", broker=False).stdout
    assert "status" in sim("-h", broker=False).stdout
    result = sim("status", "-h", broker=False)
    assert result.exit_code == 0 and "--broker" in result.stdout


def test_schema_command_prints_each_model(sim: Cli) -> None:
    """`schema NAME` prints the JSON Schema of that command's output; unknown names exit 2."""
    for name, model in SCHEMAS.items():
        result = sim("schema", name, broker=False)
        assert result.exit_code == 0
        assert json.loads(result.stdout) == model.model_json_schema()
    assert sim("schema", "nope", broker=False).exit_code == 2


def test_a_broken_pipe_is_one_line_on_stderr(tmp_path: Path) -> None:
    """`orderguard status --json | (closed)`: exit 141, one stderr line, no traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "from orderguard.cli.app import main; main()", "status",
         "--state", str(tmp_path / "s.db"), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first byte is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert err.strip() == "orderguard: output closed (broken pipe)", err


def test_unreachable_broker_exits_4_and_missing_credentials_exit_2(tmp_path: Path) -> None:
    """A gateway that is not there: exit 4, one line. No credentials: exit 2, naming the
    variables (never a value)."""
    env = {"PROJECT_X_API_KEY": "not-a-real-key-123456", "PROJECT_X_USERNAME": "u",
           "XDG_STATE_HOME": str(tmp_path), "PROJECTX_CONNECT_TIMEOUT": "1",
           "PROJECTX_FIRST_CONNECT_WAIT": "0"}  # fmt: skip
    down = Cli(env, ["--broker", "projectx", "--api-url", "http://127.0.0.1:9"])
    result = down("status")
    assert result.exit_code == 4, result.output
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output
    assert "not-a-real-key" not in result.output
    bare = Cli({"PROJECT_X_API_KEY": "", "XDG_STATE_HOME": str(tmp_path)},
               ["--broker", "projectx"])  # fmt: skip
    result = bare("status")
    assert result.exit_code == 2 and "PROJECT_X_USERNAME" in result.stderr


def test_chaos_shows_a_progress_bar_on_a_terminal_only(tmp_path: Path) -> None:
    """On a pseudo-terminal `chaos` draws its progress bar; piped, it prints only the report."""
    argv = [sys.executable, "-c", "from orderguard.cli.app import main; main()", "chaos",
            "--seeds", "2", "--operations", "2"]  # fmt: skip
    pid, fd = pty.fork()
    if pid == 0:  # the child: stdout and stderr are the terminal
        os.execv(sys.executable, argv)
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert b"chaos seeds" in out
    piped = subprocess.run(argv, capture_output=True, timeout=120, check=True)
    assert b"chaos seeds" not in piped.stdout + piped.stderr
