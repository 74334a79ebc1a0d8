"""Results of chaos runs: per seed, aggregated, as text or as one JSON object."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from orderguard.broker.sim.rules import ExchangeRules
from orderguard.chaos.invariants import Violation

# No healthy seed fires more than a few dozen timers at one virtual instant (the most seen over
# 400 seeds of every fault setting is recorded in benchmarks/RESULTS.md); a loop that re-arms a
# zero timeout reaches this in well under a second of real time.
STALL_LIMIT = 2_000


PROFILES = ("classic", "wide")
MIXED = "mixed"
JOURNALS = ("memory", "sqlite", MIXED)
LATENCIES = ("low", "high", MIXED)
SWITCHES = ("off", "on", MIXED)


@dataclass(frozen=True, slots=True)
class ChaosConfig:
    """Everything that decides a run besides the seed (so a replay command can be printed).

    ``profile`` picks the workload: ``wide`` (the default) adds client-side brackets, OCO pairs,
    user-protected entries (market + stop, ``add_stop_loss``/``add_take_profit``), every way to
    close and cancel, caller timeouts and shutdowns, crashes at fills, an outside actor, fault
    storms, journal write failures and the SQLite journal; ``classic`` is the workload before
    (native brackets, a protected-entry saga, resting limits, a memory journal, low latency).
    The variant switches (``journal``, ``latency``, ``outside_actor``, ``storms``) are drawn per
    seed from the seed when ``mixed`` and forced otherwise; under ``classic`` a ``mixed`` switch
    means the classic choice (memory, low, off, off).
    """

    operations: int = 20
    faults: str = "all"  # none | mild | all
    crash: bool = False
    protection_window: float | None = None
    """Quiet points give a coverage mismatch this long to close before checking I1. None: the
    I6 bound (``protection_deadline + recovery_interval``)."""
    profile: str = "wide"
    journal: str = MIXED  # memory | sqlite | mixed
    latency: str = MIXED  # low | high | mixed
    outside_actor: str = MIXED  # off | on | mixed
    storms: str = MIXED  # off | on | mixed
    exchange_rules: str = MIXED
    """The simulated exchange's readings of unconfirmed ProjectX behaviour: ``default``,
    ``harsh``, ``mixed:<n>`` (one seeded random mix) or ``mixed`` (drawn per seed: half the
    seeds default, a quarter harsh, a quarter a random mix of their own)."""
    protection_deadline: float = 5.0
    """The bracket protection deadline the I6 bound is made of (BracketSettings' default)."""
    recovery_interval: float = 2.0
    """The reconcile interval the I6 bound is made of (OrderManagerConfig.reconcile_interval)."""
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

    def __post_init__(self) -> None:
        for name, allowed in (
            ("profile", PROFILES),
            ("journal", JOURNALS),
            ("latency", LATENCIES),
            ("outside_actor", SWITCHES),
            ("storms", SWITCHES),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.exchange_rules != MIXED:
            ExchangeRules.named(self.exchange_rules)  # ValueError for an unknown profile

    @property
    def wide(self) -> bool:
        return self.profile == "wide"

    @property
    def window(self) -> float:
        """The quiet point's protection window (see ``protection_window``)."""
        if self.protection_window is not None:
            return self.protection_window
        return self.protection_deadline + self.recovery_interval

    def replay(self, seed: int) -> str:
        """The command that replays ``seed`` exactly (every flag that decides the run)."""
        text = (
            f"orderguard chaos --seeds 1 --seed-start {seed} --operations {self.operations} "
            f"--faults {self.faults}" + (" --crash" if self.crash else "")
        )
        text += f" --profile {self.profile}"
        for flag, value, default in (
            ("--journal", self.journal, MIXED),
            ("--latency", self.latency, MIXED),
            ("--outside-actor", self.outside_actor, MIXED),
            ("--storms", self.storms, MIXED),
            ("--exchange-rules", self.exchange_rules, MIXED),
        ):
            if value != default:
                text += f" {flag} {value}"
        if self.brackets is False:
            text += " --no-brackets"
        if self.protection_window is not None:
            text += f" --protection-window {self.protection_window:g}"
        if (self.protection_deadline, self.recovery_interval) != (5.0, 2.0):
            text += (
                f" --protection-deadline {self.protection_deadline:g}"
                f" --recovery-interval {self.recovery_interval:g}"
            )
        return text


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
    variants: dict[str, str] = field(default_factory=dict)
    storm_causes: list[str] = field(default_factory=list)
    """Episodes that outlasted the normal bound only while a storm refused everything."""


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
    variants: Counter[str] = field(default_factory=Counter)
    storm_causes: list[str] = field(default_factory=list)
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
        self.variants.update(f"{k}={v}" for k, v in result.variants.items())
        self.storm_causes.extend(f"seed {result.seed}: {c}" for c in result.storm_causes)

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
            "profile": self.config.profile,
            "variants": dict(sorted(self.variants.items())),
            "storm_causes": list(self.storm_causes),
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
            f"max {self.unprotected_max:.3f}s (bound {self.config.window:g}s)",
            f"profile: {self.config.profile}  variants: "
            + ", ".join(f"{k}:{v}" for k, v in sorted(self.variants.items())),
            f"episodes past the bound during storms (allowed, cause recorded): "
            f"{len(self.storm_causes)}",
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
