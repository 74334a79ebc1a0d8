"""The exit legs' phase table: every move the code makes is a row with a reason."""

from __future__ import annotations

import logging

import pytest

from orderguard.chaos import ChaosConfig
from orderguard.chaos.runner import run_seed
from orderguard.orders.bracket.leg_phases import LEG_MOVES, leg_move
from orderguard.orders.bracket.plan import LegKind, LegPhase
from orderguard.orders.bracket.state import Slot


def test_every_row_says_why() -> None:
    assert all(move.reason for move in LEG_MOVES)
    assert len({(m.source, m.target) for m in LEG_MOVES}) == len(LEG_MOVES)


def test_a_send_ends_in_one_of_four_phases_from_where_sends_start() -> None:
    for source in (LegPhase.NONE, LegPhase.RETRY, LegPhase.UNKNOWN):
        for target in (LegPhase.LIVE, LegPhase.RETRY, LegPhase.UNKNOWN, LegPhase.FAILED):
            assert leg_move(source, target) is not None
    assert leg_move(LegPhase.LIVE, LegPhase.DONE) is not None
    assert leg_move(LegPhase.FAILED, LegPhase.RETRY) is None  # a refusal is not re-sent


def test_an_unlisted_move_is_recorded_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    slot = Slot(LegKind.STOP)
    slot.move(LegPhase.FAILED)
    assert not caplog.records
    with caplog.at_level(logging.WARNING, "orderguard.orders.bracket"):
        slot.move(LegPhase.RETRY)
    assert slot.phase is LegPhase.RETRY  # what happened is kept
    assert "failed -> retry" in caplog.text


def test_chaos_runs_make_only_listed_moves(caplog: pytest.LogCaptureFixture) -> None:
    """Brackets under every fault and crashes: the table covers what the sagas do. (Seed by
    seed: ``run_chaos`` silences logging for the whole run.)"""
    config = ChaosConfig(faults="all", crash=True)
    with caplog.at_level(logging.WARNING, "orderguard.orders.bracket"):
        for seed in range(30):
            run_seed(seed, config)
    unlisted = [r.getMessage() for r in caplog.records if "leg table" in r.getMessage()]
    assert unlisted == []
