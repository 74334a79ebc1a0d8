"""The phases of a bracket's exit leg and the moves between them, as a table with reasons.

A bracket keeps one :class:`~orderguard.orders.bracket.state.Slot` per exit kind (stop, target);
its :class:`~orderguard.orders.bracket.plan.LegPhase` says what the slot's current order is at
the broker. The phase changes only through :meth:`Slot.move
<orderguard.orders.bracket.state.Slot.move>` (and :meth:`Slot.renew`, a new generation, which
starts again at ``NONE``; a restart rebuilds the phase from the journal with
:meth:`Slot.restored`). Each row below is one move and why it happens, like the operation
table of :mod:`orderguard.recovery.operations`.

A move outside the table is not refused: the phase says what the broker did, and refusing to
record that would make the saga plan on a lie. It is logged at WARNING, so a run shows when the
table and the code disagree (``tests/orders/test_leg_phases.py`` runs chaos seeds and expects
none).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from orderguard.orders.bracket.plan import LegPhase

log = logging.getLogger("orderguard.orders.bracket")


@dataclass(frozen=True, slots=True)
class LegMove:
    source: LegPhase
    target: LegPhase
    reason: str


_P = LegPhase

LEG_MOVES: tuple[LegMove, ...] = (
    # Sending the slot's order (a new generation from NONE, a re-send of the same tag from
    # RETRY or UNKNOWN): the four things a send can end in.
    *(
        LegMove(source, _P.LIVE, "acknowledged, or its tag found at the broker")
        for source in (_P.NONE, _P.RETRY, _P.UNKNOWN)
    ),
    *(
        LegMove(source, _P.RETRY, "provably never left: send the same tag again when due")
        for source in (_P.NONE, _P.RETRY, _P.UNKNOWN)
    ),
    *(
        LegMove(source, _P.UNKNOWN, "sent, no answer (or the send was cancelled in flight)")
        for source in (_P.NONE, _P.RETRY, _P.UNKNOWN)
    ),
    *(
        LegMove(source, _P.FAILED, "definitively refused (rejected, invalid at the exchange)")
        for source in (_P.NONE, _P.RETRY, _P.UNKNOWN)
    ),
    LegMove(_P.FAILED, _P.LIVE, "refused, yet an order with its tag turned up (a duplicate)"),
    LegMove(
        _P.LIVE,
        _P.LIVE,
        "the order's event adopted it before the send's answer came back (the same order twice)",
    ),
    LegMove(_P.LIVE, _P.DONE, "final at the broker: filled, or cancelled (by us or the server)"),
    # A send's answer is applied when it comes back, also when the order's events came first.
    # A stale answer can take the slot back; the next look at the facts repairs it (a LIVE
    # order the tracker shows final is DONE again; an UNKNOWN one is found by its tag).
    LegMove(
        _P.LIVE,
        _P.UNKNOWN,
        "stale answer: the send ended unknown after the order's event had adopted it",
    ),
    LegMove(
        _P.DONE,
        _P.LIVE,
        "stale answer: the send was acknowledged (or its tag found) after the order had ended",
    ),
    LegMove(_P.DONE, _P.DONE, "a cancel confirmed again for an order already final"),
)

_ALLOWED: dict[tuple[LegPhase, LegPhase], LegMove] = {(m.source, m.target): m for m in LEG_MOVES}


def leg_move(source: LegPhase, target: LegPhase) -> LegMove | None:
    """The table's row for ``source -> target`` (None: not listed)."""
    return _ALLOWED.get((source, target))


def note_unlisted(source: LegPhase, target: LegPhase, leg: str) -> None:
    log.warning(
        "exit leg %s moved %s -> %s, which the leg table does not list", leg, source, target
    )


__all__ = ["LEG_MOVES", "LegMove", "leg_move", "note_unlisted"]
