"""The rules of the simulated exchange where ProjectX's real behaviour is a choice, as data.

Where the spec (``/work/shared/projectx-api.md``) states a behaviour, the exchange follows it.
Where it does not — or only a field report does — there are two readings, and a simulator that
silently picks one never exercises the client paths the other needs. Each such reading is a
named switch of :class:`ExchangeRules`; :class:`~orderguard.broker.sim.exchange.SimExchange`
and its matching and validation code read them and do nothing else with them.

Profiles: :meth:`ExchangeRules.default` (what the spec or a field report says; where both are
silent, today's reading, with the reason on the field), :meth:`ExchangeRules.harsh` (for every
switch the reading that makes the *client* work hardest) and :meth:`ExchangeRules.random_mix`
(each switch drawn independently from a seeded ``random.Random``). :meth:`ExchangeRules.named`
turns ``"default"``, ``"harsh"`` or ``"mixed:<seed>"`` into one of them, for command lines.
``docs/exchange-rules.md`` has the table.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from .validation import DUPLICATE_TAG_MESSAGE


class MarketableStop(StrEnum):
    """What ``Order/place`` / ``Order/modify`` do with a stop at or through the market."""

    TRIGGER = "trigger"  # accepted; it triggers at once and fills as a market order
    REJECT = "reject"  # refused: "Invalid stop price" (place errorCode 2, modify errorCode 3)


class StopTrigger(StrEnum):
    """Which price elects a stop."""

    LAST = "last"  # buy stops at last >= stop, sell stops at last <= stop
    TOUCH = "touch"  # buy stops at ask >= stop, sell stops at bid <= stop


class EntryAfterExit(StrEnum):
    """What becomes of a native entry's unfilled rest once its legs have exited all it filled."""

    CANCEL_REST = "cancel_rest"  # the entry's rest is cancelled with the sibling leg
    KEEP_WORKING = "keep_working"  # the entry keeps working; later fills have no leg


class ResizedLegFill(StrEnum):
    """What a fill of a bracket leg whose size the client modified does to its sibling."""

    SHRINK_SIBLING = "shrink_sibling"  # the sibling shrinks to what is still held
    CANCEL_SIBLING = "cancel_sibling"  # plain OCO: the sibling is cancelled outright


class LegAnchor(StrEnum):
    """The fill price native bracket legs are priced from."""

    AVERAGE_FILL = "average_fill"  # re-anchored at the entry's average fill after each fill
    FIRST_FILL = "first_fill"  # anchored once, at the entry's first fill


class TriggeredStopModify(StrEnum):
    """What a new stop price does to a stop that has triggered and partly filled."""

    REARM = "rearm"  # it is a stop again, waiting for the market to reach the new price
    FILL_REST = "fill_rest"  # it stays triggered: the rest fills at once at the touch


class LimitAggression(StrEnum):
    """How long an executable limit order takes the touch, and when a modify re-matches it."""

    SWEEP = "sweep"  # while it stays executable; any modify re-matches it as arriving
    ARRIVAL_ONLY = "arrival_only"  # on arrival only; a modify re-matches it only if made marketable


class CloseFill(StrEnum):
    """How the market order of ``Position/closeContract`` / ``partialCloseContract`` fills."""

    IMMEDIATE = "immediate"  # all at once at the touch, whatever the liquidity model says
    LIQUIDITY_LIMITED = "liquidity_limited"  # like any order: over several matching runs


class SizeLimit(StrEnum):
    """What an account's ``max_order_size`` limits."""

    ORDER = "order"  # the size of each order (and of a modify's new size)
    POSITION = "position"  # the position an order would leave if it filled completely


class SizeRejection(StrEnum):
    """What a placement refused by the size limit leaves behind."""

    NO_RECORD = "no_record"  # nothing: no order id, no order
    REJECTED_ORDER = "rejected_order"  # a Rejected order with an id (and its tag), sent back


class Fees(StrEnum):
    """What each contract of a fill is charged."""

    FLAT = "flat"  # the exchange's ``fee_per_contract`` on every product
    BY_PRODUCT = "by_product"  # per product (:data:`PRODUCT_FEES`), else ``fee_per_contract``


class FlipTrades(StrEnum):
    """How a fill that takes a position through zero is booked."""

    ONE = "one"  # one trade, carrying the P&L of the part that closed
    SPLIT = "split"  # a closing trade (with P&L) and an opening one (P&L null)


# Per-contract fees by product root (per side). The E-mini figure is the other simulator's;
# the micro figure is the simulator's long-standing flat fee.
PRODUCT_FEES: Mapping[str, Decimal] = MappingProxyType(
    {
        "MNQ": Decimal("0.37"),
        "MES": Decimal("0.37"),
        "ENQ": Decimal("1.40"),
        "EP": Decimal("1.40"),
    }
)


@dataclass(frozen=True, slots=True)
class ExchangeRules:
    """Every switch of the simulated exchange. Frozen data; see the module docstring.

    Fields are grouped: first the spec's own rules (not drawn by :meth:`random_mix`), then the
    unconfirmed readings (the switches). Each field's docstring names its readings, the default
    and why, and the spec section.
    """

    # -- the spec's rules ------------------------------------------------------------------------
    min_stop_loss_ticks: int = 4
    """Smallest ``|ticks|`` of a native stop-loss bracket; 0 turns the check off.

    §9.1 reports "Invalid stop loss ticks (N). Stop loss tick value should be at least 4 ticks."
    as errorCode 2 of ``Order/place``. Default 4. Applies to Stop and TrailingStop legs; take
    profits have no reported minimum.
    """

    reject_duplicate_tags: bool = True
    """``customTag`` is unique per account, in every status (DOC order-place; §3.4, §8.8).

    Documented, so every profile keeps it True; False is a test knob for a gateway that would not
    enforce it.
    """

    duplicate_tag_message: str = DUPLICATE_TAG_MESSAGE
    """The error text of a duplicate tag (errorCode 2). The real text is unconfirmed (§8.8)."""

    # -- unconfirmed readings (the switches) -----------------------------------------------------
    marketable_stops: MarketableStop = MarketableStop.REJECT
    """A Stop placed, or a stop price modified, at or through the market (it would trigger now).

    ``REJECT`` (default, field report): ``Order/place`` answers errorCode 2 and ``Order/modify``
    errorCode 3, both "Invalid stop price"; the order is unchanged. ``TRIGGER``: accepted, it
    triggers at once and fills at the touch. "Through the market" follows ``stop_trigger``. Only
    orders on the book are checked: a Suspended bracket leg and a leg activated by its entry's fill
    are the server's own, not a request.
    """

    stop_trigger: StopTrigger = StopTrigger.LAST
    """The price that elects a stop (Stop, TrailingStop, and their bracket legs).

    ``LAST`` (default): the last traded price, as CME elects stop orders on trades; the spec is
    silent. ``TOUCH``: a buy stop on the ask, a sell stop on the bid. On the simulator's one-tick
    book (bid = last) only buy stops differ: they trigger a tick earlier.
    """

    close_cancels_brackets: bool = False
    """Whether ``Position/closeContract`` cancels the native bracket legs of the contract.

    False (default, field report §9.1): the legs stay working as orphans the client must cancel.
    True: the close cancels them.
    """

    entry_after_exit: EntryAfterExit = EntryAfterExit.CANCEL_REST
    """A leg fill leaves nothing to cover while the bracketed entry is still partly working.

    ``CANCEL_REST`` (default): the sibling leg and the entry's unfilled rest are cancelled, so no
    later entry fill can arrive unprotected; the spec is silent, and this keeps the server-side
    bracket one unit (§9: legs are "managed server-side", "sized to the filled quantity").
    ``KEEP_WORKING``: the entry keeps working; its later fills arrive with no working leg.
    """

    resized_leg_fill: ResizedLegFill = ResizedLegFill.SHRINK_SIBLING
    """A fill of a bracket leg whose size the client modified (e.g. a target cut to scale out).

    ``SHRINK_SIBLING`` (default): as for any leg fill, the sibling shrinks to what is still held
    (§9.1: legs are "sized to the filled quantity"). ``CANCEL_SIBLING``: the legs act as a plain
    OCO pair once resized, so the fill cancels the sibling and the rest of the position has no leg.
    """

    leg_anchor: LegAnchor = LegAnchor.AVERAGE_FILL
    """Where native legs are priced when a bracketed entry fills in several parts.

    ``AVERAGE_FILL`` (default): re-anchored at the entry's average fill after every fill, unless
    the client moved the leg (§9.1: "re-anchored at the entry's actual fill price", which is the
    order's ``filledPrice``, an average). ``FIRST_FILL``: anchored at the first fill and left there.
    """

    triggered_stop_modify: TriggeredStopModify = TriggeredStopModify.REARM
    """A stop (or trailing stop) that triggered and partly filled gets a new stop/trail price.

    ``REARM`` (default): it is a stop again at the new price and waits for the market; this treats
    the modify like a new stop placement, which ``marketable_stops`` already checks against the
    market (only our liquidity model leaves a triggered stop part-filled; the spec is silent).
    ``FILL_REST``: it stays a triggered (market) order and the rest fills at once at the touch.
    """

    limit_aggression: LimitAggression = LimitAggression.SWEEP
    """How an executable limit order (Limit, JoinBid, JoinAsk, limit legs) is matched.

    ``SWEEP`` (default): it takes the touch for as long as it stays executable (price improvement
    to the aggressor, as on an exchange), and any modify — a size change too — re-matches it as an
    arriving order. ``ARRIVAL_ONLY``: only the arrival is aggressive; what the liquidity model
    leaves rests passively at its limit (and fills there), and a modify re-matches only when the
    new price turns a resting limit marketable. The spec is silent; ``SWEEP`` is how an exchange
    treats an order that can trade.
    """

    close_fill: CloseFill = CloseFill.IMMEDIATE
    """How a position close (full or partial) fills under the liquidity model.

    ``IMMEDIATE`` (default): the close's market order fills at once at the touch; a close is a
    market order on a liquid contract, and the liquidity model is our own knob for partial fills
    (the spec is silent). ``LIQUIDITY_LIMITED``: it fills at most ``liquidity`` contracts per
    matching run like any order, so part of the position is still held after the close returns
    success, until later price moves fill the rest. (A second close meanwhile sends another
    market order for the whole position still held.)
    """

    size_limit: SizeLimit = SizeLimit.ORDER
    """What ``max_order_size`` (an account's size limit) limits.

    ``ORDER`` (default): each order's size, and a modify's new size (errorCode 2 / 3); the spec
    says only that size limits are firm rules (§8.11), and the account capability is named as an
    order size. ``POSITION``: the position an order would leave if it filled completely (an order
    that only reduces the position always passes; a modify counts its new unfilled rest), so the
    same order is accepted or refused depending on what the account holds.
    """

    size_rejection: SizeRejection = SizeRejection.NO_RECORD
    """What a placement refused by the size limit leaves behind.

    ``NO_RECORD`` (default): no order and no id, like every other validation failure here.
    ``REJECTED_ORDER``: a Rejected (status 5) order with an id, reported as an order event and
    answered with ``success: false`` plus that ``orderId`` (§3.4, §8.9: "Rejected orders may still
    get an orderId"); its ``customTag`` counts as taken, so resending under the same tag is refused
    as a duplicate.
    """

    fees: Fees = Fees.FLAT
    """What each contract of a fill is charged (per side).

    ``FLAT`` (default): the exchange's ``fee_per_contract`` (0.37) on every product; the spec has
    no fee table. ``BY_PRODUCT``: :data:`PRODUCT_FEES` (1.40 on E-minis ENQ and EP, 0.37 on the
    micros), ``fee_per_contract`` for other products.
    """

    flip_trades: FlipTrades = FlipTrades.ONE
    """How a fill that goes through zero (long 1, sell 3) is booked.

    ``ONE`` (default): one trade for the fill, whose P&L is that of the closed part; one exchange
    execution is one fill (the spec is silent). ``SPLIT``: two trades with the same order and price,
    the closing one with the P&L and the opening one with ``profitAndLoss`` null (a half-turn,
    §3.6), each followed by its position and account events.
    """

    # -- profiles --------------------------------------------------------------------------------
    @classmethod
    def default(cls) -> ExchangeRules:
        """The spec's rules and, for each switch, its documented default."""
        return cls()

    @classmethod
    def harsh(cls) -> ExchangeRules:
        """For every switch, the reading that makes the client work hardest.

        Rejections it must recover from, legs that vanish or sit where it did not ask, entries
        that keep filling, closes that finish late, ids on failures. The spec's rules stay.
        """
        return cls(
            marketable_stops=MarketableStop.REJECT,  # protective stops refused after a move
            stop_trigger=StopTrigger.TOUCH,  # buy stops elected (and refused) a tick sooner
            close_cancels_brackets=False,  # orphaned legs the client must cancel itself
            entry_after_exit=EntryAfterExit.KEEP_WORKING,  # entry fills after the exit, no leg
            resized_leg_fill=ResizedLegFill.CANCEL_SIBLING,  # the rest of the position has no leg
            leg_anchor=LegAnchor.FIRST_FILL,  # later fills protected off a stale anchor
            triggered_stop_modify=TriggeredStopModify.FILL_REST,  # a modify answered by fills
            limit_aggression=LimitAggression.ARRIVAL_ONLY,  # rests fill later, at the limit
            close_fill=CloseFill.LIQUIDITY_LIMITED,  # closes that succeed and finish late
            size_limit=SizeLimit.POSITION,  # refusals that depend on what the account holds
            size_rejection=SizeRejection.REJECTED_ORDER,  # an id on a failure; the tag is spent
            fees=Fees.BY_PRODUCT,  # no single fee to assume
            flip_trades=FlipTrades.SPLIT,  # two trades for one fill, one with null P&L
        )

    @classmethod
    def random_mix(cls, rng: random.Random) -> ExchangeRules:
        """Each switch drawn independently and uniformly from its readings (spec rules kept).

        Deterministic for a seeded ``rng``: one draw per switch, in field order.
        """
        return cls(**{name: rng.choice(readings) for name, readings in _READINGS.items()})

    @classmethod
    def named(cls, profile: str) -> ExchangeRules:
        """A profile by name: ``default``, ``harsh`` or ``mixed:<seed>`` (a seeded random mix)."""
        text = profile.strip().lower()
        if text == "default":
            return cls.default()
        if text == "harsh":
            return cls.harsh()
        kind, _, seed = text.partition(":")
        if kind == "mixed" and seed.isdigit():
            return cls.random_mix(random.Random(int(seed)))
        raise ValueError(
            f"unknown exchange rules profile {profile!r}: use default, harsh or mixed:<seed>"
        )

    @classmethod
    def switches(cls) -> tuple[str, ...]:
        """The names of the fields that are switches (drawn by :meth:`random_mix`), in order."""
        return tuple(_READINGS)

    def overrides(self) -> dict[str, Any]:
        """The fields that differ from :meth:`default`, by name (for logs and reports)."""
        base = ExchangeRules()
        return {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if getattr(self, field.name) != getattr(base, field.name)
        }


# The spec's rules are not switches: they are what the gateway is documented (or reported) to do.
_SPEC_RULES = frozenset({"min_stop_loss_ticks", "reject_duplicate_tags", "duplicate_tag_message"})


def _readings(default: object) -> tuple[Any, ...]:
    """Every reading of a switch, from its default: an enum's members, or False and True."""
    if isinstance(default, StrEnum):
        return tuple(type(default))
    if isinstance(default, bool):
        return (False, True)
    raise TypeError(f"a switch must be an enum or a bool, not {default!r}")


_READINGS: dict[str, tuple[Any, ...]] = {
    field.name: _readings(field.default)
    for field in dataclasses.fields(ExchangeRules)
    if field.name not in _SPEC_RULES
}


__all__ = [
    "PRODUCT_FEES",
    "CloseFill",
    "EntryAfterExit",
    "ExchangeRules",
    "Fees",
    "FlipTrades",
    "LegAnchor",
    "LimitAggression",
    "MarketableStop",
    "ResizedLegFill",
    "SizeLimit",
    "SizeRejection",
    "StopTrigger",
    "TriggeredStopModify",
]
