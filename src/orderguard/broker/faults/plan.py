"""What to break, and how often: the data half of the fault injector.

A :class:`FaultPlan` is a frozen value: per-kind probabilities for each operation family, for the
queries and for the event stream, plus scripted faults that fire on an exact call ("the 3rd
``place_order`` is answered ambiguously"). The :class:`~orderguard.broker.faults.FaultyBroker`
reads it; nothing here does I/O or draws random numbers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from orderguard.broker.middleware import MUTATIONS, QUERIES
from orderguard.broker.projectx.codes import (
    CancelCode,
    CloseCode,
    ModifyCode,
    PartialCloseCode,
    PlaceCode,
)


class FaultKind(StrEnum):
    """Every fault the wrapper can inject. Values are stable: they appear in logs and scripts."""

    # -- mutations: the request never reaches the exchange -----------------------------------
    REJECT = "reject"  # Rejected(code, message); inner not called
    FAIL_BEFORE_SEND = "fail_before_send"  # ConnectionFailedError; provably never left
    RATE_LIMITED = "rate_limited"  # RateLimitedError(sent=False): a 429 before execution
    LOST = "lost"  # Unknown(CONNECTION_LOST) but the request never arrived (the other half of F1)
    # -- mutations: the exchange executes it, the caller gets no proof -----------------------
    AMBIGUOUS = "ambiguous"  # executed, Unknown(TIMEOUT_AFTER_SEND)
    SERVER_ERROR = "server_error"  # executed, Unknown(SERVER_ERROR)
    PENDING = "pending"  # executed, Unknown(PENDING)
    UNKNOWN_CODE = "unknown_code"  # executed, Unknown(UNKNOWN_CODE)
    RATE_LIMITED_AFTER_SEND = "rate_limited_after_send"  # executed, Unknown(RATE_LIMITED_...)
    LATE = "late"  # Unknown(TIMEOUT_AFTER_SEND) now; the exchange executes it *later*
    # -- any operation ---------------------------------------------------------------------
    DELAY = "delay"  # wait on the clock before and/or after the inner call
    # -- queries ----------------------------------------------------------------------------
    QUERY_ERROR = "query_error"  # retryable BrokerError (a 5xx on a read)
    QUERY_TIMEOUT = "query_timeout"  # inner answers, the caller waits, then a retryable error
    # -- event stream -----------------------------------------------------------------------
    DROP = "drop"
    DUPLICATE = "duplicate"
    EVENT_DELAY = "event_delay"  # delivered later via clock.call_later (may be overtaken)
    REORDER = "reorder"  # held and released after the next delivered event
    DISCONNECT = "disconnect"  # DISCONNECTED, a gap that loses everything, RECONNECTED
    GO_SILENT = "go_silent"  # a gap that loses everything, with no notice at all
    LOST_IN_GAP = "lost_in_gap"  # consequence record: one event lost inside a gap
    # -- storms (FaultyBroker.storm): every call fails for a stretch of time -------------------
    STORM = "storm"  # record of one call refused or left unanswered by a storm


class StormKind(StrEnum):
    """What a fault storm does to every call while it lasts (see ``FaultyBroker.storm``).

    Nothing reaches the exchange during a storm: every mutation is refused or left unanswered,
    so a storm never executes anything behind the caller's back.
    """

    HTTP_429 = "http_429"  # every call: RateLimitedError(sent=False)
    HTTP_5XX = "http_5xx"  # mutations: Unknown(SERVER_ERROR), not executed; reads: HTTP 503
    NO_ANSWER = "no_answer"  # every call waits ``no_answer_wait`` s, then Unknown / an error


MUTATION_OPS: Final = MUTATIONS
QUERY_OPS: Final = QUERIES
EVENT_TARGET: Final = "event"

# Outcome faults of a mutation, in the order a single uniform draw walks through them.
MUTATION_KINDS: Final[tuple[FaultKind, ...]] = (
    FaultKind.REJECT,
    FaultKind.FAIL_BEFORE_SEND,
    FaultKind.RATE_LIMITED,
    FaultKind.LOST,
    FaultKind.AMBIGUOUS,
    FaultKind.SERVER_ERROR,
    FaultKind.PENDING,
    FaultKind.UNKNOWN_CODE,
    FaultKind.RATE_LIMITED_AFTER_SEND,
    FaultKind.LATE,
)
QUERY_KINDS: Final[tuple[FaultKind, ...]] = (
    FaultKind.QUERY_ERROR,
    FaultKind.QUERY_TIMEOUT,
    FaultKind.FAIL_BEFORE_SEND,
    FaultKind.RATE_LIMITED,
)
EVENT_KINDS: Final[tuple[FaultKind, ...]] = (
    FaultKind.DROP,
    FaultKind.DUPLICATE,
    FaultKind.EVENT_DELAY,
    FaultKind.REORDER,
    FaultKind.DISCONNECT,
    FaultKind.GO_SILENT,
)

# The "plain business rejection" code of each endpoint, used when a plan names no code.
DEFAULT_REJECT_CODES: Final = {
    "place_order": PlaceCode.ORDER_REJECTED,
    "cancel_order": CancelCode.REJECTED,
    "modify_order": ModifyCode.REJECTED,
    "close_position": CloseCode.ORDER_REJECTED,
    "partial_close_position": PartialCloseCode.ORDER_REJECTED,
}


def _check_probabilities(owner: object, names: tuple[str, ...]) -> None:
    total = 0.0
    for name in names:
        p = getattr(owner, name)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(owner).__name__}.{name} must be in [0, 1], got {p}")
        total += p
    # One uniform draw picks at most one outcome fault, so the rates must fit in one unit.
    if total > 1.0 + 1e-9:
        raise ValueError(f"{type(owner).__name__}: outcome probabilities sum to {total} > 1")


def _check_range(name: str, bounds: tuple[float, float]) -> None:
    lo, hi = bounds
    if not 0.0 <= lo <= hi:
        raise ValueError(f"{name} must satisfy 0 <= low <= high, got {bounds}")


@dataclass(frozen=True, slots=True)
class MutationFaults:
    """Per-call probabilities for one mutation family. At most one outcome fault per call;
    ``delay`` is drawn independently, so a delayed call can also be ambiguous."""

    reject: float = 0.0
    fail_before_send: float = 0.0
    rate_limited: float = 0.0
    lost: float = 0.0
    ambiguous: float = 0.0
    server_error: float = 0.0
    pending: float = 0.0
    unknown_code: float = 0.0
    rate_limited_after_send: float = 0.0
    late: float = 0.0
    delay: float = 0.0
    reject_code: int | None = None  # None: the endpoint's plain "rejected" code
    reject_message: str = "injected rejection"
    retry_after: float = 1.0  # advised wait carried by an injected 429
    delay_range: tuple[float, float] = (0.05, 2.0)  # seconds, uniform
    late_range: tuple[float, float] = (0.5, 5.0)  # how long after the Unknown a LATE call executes

    def __post_init__(self) -> None:
        _check_probabilities(self, tuple(k.value for k in MUTATION_KINDS))
        _check_probabilities(self, ("delay",))
        _check_range("delay_range", self.delay_range)
        _check_range("late_range", self.late_range)

    def rate(self, kind: FaultKind) -> float:
        return float(getattr(self, kind.value))

    @classmethod
    def uniform(cls, p: float, *, delay: float = 0.0) -> MutationFaults:
        """Every outcome fault at probability ``p`` (so ``10 * p`` of calls are faulty)."""
        return cls(
            reject=p,
            fail_before_send=p,
            rate_limited=p,
            lost=p,
            ambiguous=p,
            server_error=p,
            pending=p,
            unknown_code=p,
            rate_limited_after_send=p,
            late=p,
            delay=delay,
        )


@dataclass(frozen=True, slots=True)
class QueryFaults:
    """Per-call probabilities shared by every query method (each method has its own RNG)."""

    query_error: float = 0.0
    query_timeout: float = 0.0
    fail_before_send: float = 0.0
    rate_limited: float = 0.0
    delay: float = 0.0
    retry_after: float = 1.0
    timeout_after: float = 5.0  # how long a QUERY_TIMEOUT keeps the caller waiting
    delay_range: tuple[float, float] = (0.05, 2.0)

    def __post_init__(self) -> None:
        _check_probabilities(self, tuple(k.value for k in QUERY_KINDS))
        _check_probabilities(self, ("delay",))
        _check_range("delay_range", self.delay_range)

    def rate(self, kind: FaultKind) -> float:
        return float(getattr(self, kind.value))


@dataclass(frozen=True, slots=True)
class EventFaults:
    """Per-event probabilities on the realtime stream (connection events are never faulted)."""

    drop: float = 0.0
    duplicate: float = 0.0
    event_delay: float = 0.0
    reorder: float = 0.0
    disconnect: float = 0.0
    go_silent: float = 0.0
    delay_range: tuple[float, float] = (0.05, 1.0)
    gap_range: tuple[float, float] = (1.0, 10.0)  # seconds a disconnect / silence lasts
    reorder_max_hold: float = 1.0  # a held event is released by then even if nothing follows

    def __post_init__(self) -> None:
        _check_probabilities(self, tuple(k.value for k in EVENT_KINDS))
        _check_range("delay_range", self.delay_range)
        _check_range("gap_range", self.gap_range)

    def rate(self, kind: FaultKind) -> float:
        return float(getattr(self, kind.value))


_OP_TARGETS: Final = frozenset((*MUTATION_OPS, *QUERY_OPS, EVENT_TARGET))


@dataclass(frozen=True, slots=True)
class ScriptedFault:
    """A fault on an exact call: the ``nth`` (1-based) call of ``op`` (or the nth event).

    ``op`` is a Broker method name or ``"event"`` (events count the inner stream, connection
    events excluded). ``repeat`` extends it to the following calls. ``seconds`` is the delay,
    gap, late-execution or query-timeout length; ``None`` takes the plan's default for the kind.
    Scripted faults override random ones and fire even where the plan's rate is zero, but not
    while the broker is disabled.
    """

    op: str
    nth: int
    kind: FaultKind
    repeat: int = 1
    seconds: float | None = None
    code: int | None = None
    message: str | None = None
    retry_after: float | None = None

    def __post_init__(self) -> None:
        if self.op not in _OP_TARGETS:
            raise ValueError(f"unknown scripted target {self.op!r}")
        if self.nth < 1 or self.repeat < 1:
            raise ValueError("nth and repeat are 1-based and positive")
        if self.seconds is not None and self.seconds < 0:
            raise ValueError("seconds must be >= 0")
        allowed: tuple[FaultKind, ...]
        if self.op == EVENT_TARGET:
            allowed = EVENT_KINDS
        elif self.op in MUTATION_OPS:
            allowed = (*MUTATION_KINDS, FaultKind.DELAY)
        else:
            allowed = (*QUERY_KINDS, FaultKind.DELAY)
        if self.kind not in allowed:
            raise ValueError(f"{self.kind.value!r} cannot be scripted on {self.op!r}")

    def covers(self, n: int) -> bool:
        return self.nth <= n < self.nth + self.repeat

    @classmethod
    def parse(cls, text: str) -> ScriptedFault:
        """``"place_order#3=ambiguous"``, ``"event#5=disconnect:10"``, ``"get_order#2x3=delay:4"``.

        Grammar: ``OP#N[xREPEAT]=KIND[:SECONDS]`` (for ``reject`` the suffix is the code).
        """
        try:
            target, _, rest = text.strip().partition("#")
            where, _, what = rest.partition("=")
            nth_text, _, repeat_text = where.partition("x")
            kind_text, _, arg = what.partition(":")
            kind = FaultKind(kind_text.strip())
            nth, repeat = int(nth_text), int(repeat_text or "1")
        except ValueError as exc:
            raise ValueError(f"bad scripted fault {text!r}: expected OP#N[xR]=KIND[:ARG]") from exc
        if kind is FaultKind.REJECT and arg:
            return cls(target.strip(), nth, kind, repeat=repeat, code=int(arg))
        return cls(target.strip(), nth, kind, repeat=repeat, seconds=float(arg) if arg else None)


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Everything the wrapper may break: a preset, then ``dataclasses.replace`` / ``script``."""

    place: MutationFaults = field(default_factory=MutationFaults)
    cancel: MutationFaults = field(default_factory=MutationFaults)
    modify: MutationFaults = field(default_factory=MutationFaults)
    close: MutationFaults = field(default_factory=MutationFaults)
    partial_close: MutationFaults = field(default_factory=MutationFaults)
    query: QueryFaults = field(default_factory=QueryFaults)
    events: EventFaults = field(default_factory=EventFaults)
    scripted: tuple[ScriptedFault, ...] = ()

    def for_mutation(self, op: str) -> MutationFaults:
        family = {
            "place_order": self.place,
            "cancel_order": self.cancel,
            "modify_order": self.modify,
            "close_position": self.close,
            "partial_close_position": self.partial_close,
        }
        return family[op]

    def script(self, *faults: ScriptedFault | str) -> FaultPlan:
        """A copy with more scripted faults (objects or ``ScriptedFault.parse`` strings)."""
        parsed = tuple(
            f if isinstance(f, ScriptedFault) else ScriptedFault.parse(f) for f in faults
        )
        return dataclasses.replace(self, scripted=self.scripted + parsed)

    def with_mutations(self, faults: MutationFaults) -> FaultPlan:
        """A copy with the same mutation rates on every mutation family."""
        return dataclasses.replace(
            self, place=faults, cancel=faults, modify=faults, close=faults, partial_close=faults
        )

    # -- presets ----------------------------------------------------------------------------
    @classmethod
    def none(cls) -> FaultPlan:
        """Nothing random; add ``script(...)`` entries for precise tests."""
        return cls()

    @classmethod
    def mild(cls) -> FaultPlan:
        """A bad day on a real gateway: rare ambiguity, occasional slowness and event loss."""
        mutation = MutationFaults(
            reject=0.01,
            fail_before_send=0.02,
            rate_limited=0.01,
            ambiguous=0.02,
            server_error=0.01,
            pending=0.01,
            delay=0.1,
            delay_range=(0.05, 1.0),
        )
        return cls(
            query=QueryFaults(query_error=0.02, query_timeout=0.01, delay=0.1),
            events=EventFaults(
                drop=0.005,
                duplicate=0.02,
                event_delay=0.05,
                reorder=0.02,
                disconnect=0.001,
                go_silent=0.0005,
                gap_range=(1.0, 5.0),
            ),
        ).with_mutations(mutation)

    @classmethod
    def all(cls) -> FaultPlan:
        """Every kind on at moderate rates (about a third of mutations faulty): for chaos runs."""
        return cls(
            query=QueryFaults(
                query_error=0.05,
                query_timeout=0.03,
                fail_before_send=0.03,
                rate_limited=0.03,
                delay=0.2,
            ),
            events=EventFaults(
                drop=0.02,
                duplicate=0.05,
                event_delay=0.05,
                reorder=0.05,
                disconnect=0.005,
                go_silent=0.003,
            ),
        ).with_mutations(MutationFaults.uniform(0.03, delay=0.2))


__all__ = [
    "DEFAULT_REJECT_CODES",
    "EVENT_KINDS",
    "EVENT_TARGET",
    "MUTATION_KINDS",
    "MUTATION_OPS",
    "QUERY_KINDS",
    "QUERY_OPS",
    "EventFaults",
    "FaultKind",
    "FaultPlan",
    "MutationFaults",
    "QueryFaults",
    "ScriptedFault",
    "StormKind",
]
