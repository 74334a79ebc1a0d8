"""The ``orderguard`` command line, driven through typer's CliRunner (``--fast``: no real time)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner, Result

from orderguard import __version__
from orderguard.cli.app import app


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> Result:
    # A wide terminal so that no line of interest is wrapped in the middle.
    return runner.invoke(app, list(args), env={"COLUMNS": "160"})


def test_demo_fast_exits_zero_with_every_section(runner: CliRunner) -> None:
    """`demo --fast --seed 1` succeeds and prints every part of the story and the summary."""
    result = invoke(runner, "demo", "--fast", "--seed", "1")
    assert result.exit_code == 0, result.output
    for part in (
        "Setup",
        "Trading",
        "Closing",
        "Audit (exchange truth)",
        "cancel_all_orders()",
        "close_position(MNQ, whole_contract=True)",
        "Orders (exchange truth)",
        "Account",
        "Manager statistics",
        "OK: flat, no working orders",
    ):
        assert part in result.output, part


def test_demo_lines_are_stamped_with_virtual_time(runner: CliRunner) -> None:
    """Event lines start with the virtual clock's time of day, from the simulated session's open."""
    result = invoke(runner, "demo", "--fast", "--seed", "1")
    assert "14:30:00.000  info" in result.output
    assert "14:30:00.500  send     buy 2 MNQ at market" in result.output


def test_demo_same_seed_gives_identical_output(runner: CliRunner) -> None:
    """Two runs with one seed print exactly the same thing (virtual time, seeded everything)."""
    first = invoke(runner, "demo", "--fast", "--seed", "7", "--faults", "all")
    second = invoke(runner, "demo", "--fast", "--seed", "7", "--faults", "all")
    assert first.output == second.output


def test_demo_other_seed_gives_another_market(runner: CliRunner) -> None:
    """The seed drives the run: a different seed prints a different session."""
    first = invoke(runner, "demo", "--fast", "--seed", "1")
    second = invoke(runner, "demo", "--fast", "--seed", "2")
    assert first.output != second.output


def test_demo_with_all_faults_exits_zero_and_shows_them(runner: CliRunner) -> None:
    """With every fault kind on, the run still ends clean and reports faults and recoveries."""
    result = invoke(runner, "demo", "--fast", "--seed", "1", "--faults", "all")
    assert result.exit_code == 0, result.output
    assert "FAULT    ambiguous on place_order #1" in result.output
    assert "unknown outcome resolved by tag" in result.output
    assert "Injected faults" in result.output


def test_demo_with_mild_faults_resolves_the_lost_entry_by_tag(runner: CliRunner) -> None:
    """The scripted ambiguous entry is found by its customTag, not sent twice."""
    result = invoke(runner, "demo", "--fast", "--seed", "3", "--faults", "mild")
    assert result.exit_code == 0, result.output
    assert "as order #1 (open); nothing re-sent" in result.output


def test_demo_broken_invariant_exits_nonzero_with_a_clear_message(runner: CliRunner) -> None:
    """Leaving the position open (hidden --skip-close) fails the audit with exit code 1."""
    result = invoke(runner, "demo", "--fast", "--seed", "1", "--skip-close")
    assert result.exit_code == 1
    assert "invariant(s) broken at the end" in result.output
    assert "position left open: long" in result.output


def test_demo_refuses_too_few_steps(runner: CliRunner) -> None:
    """`--steps` below the story's minimum is a usage error, before anything runs."""
    result = invoke(runner, "demo", "--fast", "--steps", "5")
    assert result.exit_code == 2
    assert "Setup" not in result.output


def test_demo_refuses_an_unknown_fault_level(runner: CliRunner) -> None:
    """`--faults` accepts only none, mild and all."""
    result = invoke(runner, "demo", "--fast", "--faults", "some")
    assert result.exit_code == 2


def test_version_prints_the_package_version(runner: CliRunner) -> None:
    """`orderguard version` prints the installed version."""
    result = invoke(runner, "version")
    assert result.exit_code == 0
    assert f"orderguard {__version__}" in result.output


def test_help_lists_the_commands(runner: CliRunner) -> None:
    """`--help` lists demo and version."""
    result = invoke(runner, "--help")
    assert result.exit_code == 0
    assert "demo" in result.output
    assert "version" in result.output
