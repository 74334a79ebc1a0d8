"""The chaos runner is deterministic, passes a correct system and catches a planted bug."""

from __future__ import annotations

from orderguard.chaos import ChaosConfig, run_chaos, run_seed_async

from .planted import PlantedBug, planted_bugs

CRASHY = ChaosConfig(operations=20, faults="all", crash=True, brackets=False)


async def test_the_same_seed_gives_a_byte_identical_event_log() -> None:
    """Two runs of one seed in one process, under faults and crashes, log the same events.

    Brackets are left out here: their engine iterates a set of sagas (address order), so only
    a fresh process replays them exactly (test_chaos_cli checks that end to end).
    """
    first = await run_seed_async(0, CRASHY)
    second = await run_seed_async(0, CRASHY)
    assert first.crashes >= 1 and first.faults
    assert "\n".join(first.event_log) == "\n".join(second.event_log)


def test_crashes_without_faults_leave_every_invariant_intact() -> None:
    """Twenty seeds of crashes and start-up recovery, no injected faults: no violation."""
    report = run_chaos(range(20), ChaosConfig(operations=20, faults="none", crash=True))
    assert report.crashes >= 20 and report.recoveries >= 20
    assert [v.detail for v in report.violations] == [] and report.errors == []


def test_planted_duplicate_order_bug_is_caught_as_i3() -> None:
    """Re-sending unknown placements under a new tag makes the runner report I3."""
    with planted_bugs(PlantedBug.SKIP_TAG_RESOLUTION):
        report = run_chaos(range(3), ChaosConfig(operations=20, faults="all"))
    caught = [v for v in report.violations if v.invariant == "I3"]
    assert caught
    assert caught[0].replay.startswith(f"orderguard chaos --seeds 1 --seed-start {caught[0].seed}")


def test_without_the_planted_bug_the_same_seeds_show_no_i3() -> None:
    """The I3 findings above come from the bug, not from the checker."""
    report = run_chaos(range(3), ChaosConfig(operations=20, faults="all"))
    assert [v for v in report.violations if v.invariant == "I3"] == []


def test_unprotected_exposure_is_measured() -> None:
    """Every run reports unprotected episodes with total and maximum seconds."""
    report = run_chaos(range(2), ChaosConfig(operations=20, faults="none"))
    assert report.episodes > 0
    assert 0 < report.unprotected_max <= report.unprotected_total


async def test_a_livelock_ends_the_seed_as_a_replayable_error() -> None:
    """Past the stall limit a seed stops at once: an error with its replay, its log kept.

    A limit of one timer is far below what a healthy seed fires at one instant (a handful; the
    default allows 2000), so here it stands in for a loop that re-arms a zero timeout.
    """
    config = ChaosConfig(operations=20, faults="none", brackets=False, stall_limit=1)
    first = await run_seed_async(0, config)
    [error] = first.errors
    assert error.startswith("livelock: ") and error.endswith(f"replay: {config.replay(0)}")
    assert first.event_log[-1].split(maxsplit=1)[1].startswith("livelock: ")
    second = await run_seed_async(0, config)
    assert second.event_log == first.event_log  # counted in timers: it stops at the same event
