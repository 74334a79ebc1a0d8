"""Results of chaos runs: per seed, aggregated, as text or as one JSON object."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from orderguard.chaos.invariants import Violation

# No healthy seed fires more than a few dozen timers at one virtual instant (the most seen over
# 400 seeds of every fault setting is recorded in benchmarks/RESULTS.md); a loop that re-arms a
# zero timeout reaches this in well under a second of real time.
STALL_LIMIT = 2_000


@dataclass(frozen=True, slots=True)
class ChaosConfig:
    """Everything that decides a run besides the seed (so a replay command can be printed)."""

    operations: int = 20
    faults: str = "all"  # none | mild | all
    crash: bool = False
    protection_window: float = 60.0
    max_crashes: int = 2
    step_timeout: float = 600.0
    wall_budget: float | None = 60.0
    """Real seconds one seed may take before it is abandoned as an error (the backstop for code
    that spins without awaiting; a livelock that waits on the clock meets ``stall_limit`` first)."""
    stall_limit: int | None = STALL_LIMIT
    """Timers that may fire in a row with virtual time standing still before the seed is
    reported as a livelock (see :class:`~orderguard.clock.VirtualClock`)."""
    brackets: bool | None = None
    """None: use brackets when the OrderManager has them; False: leave them out."""

    def replay(self, seed: int) -> str:
        return (
            f"orderguard chaos --seeds 1 --seed-start {seed} --operations {self.operations} "
            f"--faults {self.faults}" + (" --crash" if self.crash else "")
        )


@dataclass(frozen=True, slots=True)
class SeedViolation:
    seed: int
    invariant: str
    detail: str
    replay: str
    at: str = ""  # which quiet point

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "invariant": self.invariant,
            "detail": self.detail,
            "replay": self.replay,
            "at": self.at,
        }

    @classmethod
    def of(cls, seed: int, v: Violation, replay: str, at: str) -> SeedViolation:
        return cls(seed, v.invariant, v.detail, replay, at)


@dataclass(slots=True)
class SeedResult:
    seed: int
    operations: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    crashes: int = 0
    recoveries: int = 0
    recovered_operations: int = 0
    violations: list[SeedViolation] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unprotected_total: float = 0.0
    unprotected_max: float = 0.0
    episodes: int = 0
    quiet_points: int = 0
    virtual_seconds: float = 0.0
    event_log: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ChaosReport:
    seeds: list[int] = field(default_factory=list)
    config: ChaosConfig = field(default_factory=ChaosConfig)
    operations: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    crashes: int = 0
    recoveries: int = 0
    recovered_operations: int = 0
    violations: list[SeedViolation] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unprotected_total: float = 0.0
    unprotected_max: float = 0.0
    episodes: int = 0
    quiet_points: int = 0
    elapsed: float = 0.0  # wall seconds; not part of the JSON (runs must be byte-identical)

    def add(self, result: SeedResult) -> None:
        self.seeds.append(result.seed)
        self.operations.update(result.operations)
        self.faults.update(result.faults)
        self.crashes += result.crashes
        self.recoveries += result.recoveries
        self.recovered_operations += result.recovered_operations
        self.violations.extend(result.violations)
        self.errors.extend(f"seed {result.seed}: {e}" for e in result.errors)
        self.unprotected_total += result.unprotected_total
        self.unprotected_max = max(self.unprotected_max, result.unprotected_max)
        self.episodes += result.episodes
        self.quiet_points += result.quiet_points

    @property
    def failed(self) -> bool:
        return bool(self.violations or self.errors)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seeds": len(self.seeds),
            "seed_start": self.seeds[0] if self.seeds else None,
            "operations": sum(self.operations.values()),
            "operations_by_kind": dict(sorted(self.operations.items())),
            "faults": sum(self.faults.values()),
            "faults_by_kind": dict(sorted(self.faults.items())),
            "crashes": self.crashes,
            "recoveries": self.recoveries,
            "recovered_operations": self.recovered_operations,
            "quiet_points": self.quiet_points,
            "violations": [v.as_dict() for v in self.violations],
            "errors": list(self.errors),
            "unprotected_episodes": self.episodes,
            "unprotected_seconds_total": round(self.unprotected_total, 6),
            "unprotected_seconds_max": round(self.unprotected_max, 6),
            "faults_setting": self.config.faults,
            "crash": self.config.crash,
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)

    def to_text(self) -> str:
        d = self.as_dict()
        rate = len(self.seeds) / self.elapsed if self.elapsed > 0 else 0.0
        lines = [
            f"seeds: {d['seeds']} (from {d['seed_start']})  faults: {self.config.faults}  "
            f"crash: {self.config.crash}  [{self.elapsed:.1f}s, {rate:.1f} seeds/s]",
            f"operations: {d['operations']}  "
            + ", ".join(f"{k}={v}" for k, v in d["operations_by_kind"].items()),
            f"faults injected: {d['faults']}  "
            + ", ".join(f"{k}={v}" for k, v in d["faults_by_kind"].items()),
            f"crashes: {self.crashes}  recoveries: {self.recoveries} "
            f"({self.recovered_operations} operations resumed)  quiet points: {self.quiet_points}",
            f"unprotected: {self.episodes} episodes, total {self.unprotected_total:.3f}s, "
            f"max {self.unprotected_max:.3f}s",
            f"violations: {len(self.violations)}",
        ]
        for v in self.violations:
            lines.append(f"  seed {v.seed} {v.invariant} [{v.at}] {v.detail}")
            lines.append(f"    replay: {v.replay}")
        if self.errors:
            lines.append(f"errors: {len(self.errors)}")
            lines.extend(f"  {e}" for e in self.errors)
        return "\n".join(lines)


__all__ = ["ChaosConfig", "ChaosReport", "SeedResult", "SeedViolation"]
