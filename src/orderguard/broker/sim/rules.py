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
from dataclasses import dataclass
from enum import StrEnum
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

    # -- profiles --------------------------------------------------------------------------------
    @classmethod
    def default(cls) -> ExchangeRules:
        """The spec's rules and, for each switch, its documented default."""
        return cls()

    def overrides(self) -> dict[str, Any]:
        """The fields that differ from :meth:`default`, by name (for logs and reports)."""
        base = ExchangeRules()
        return {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if getattr(self, field.name) != getattr(base, field.name)
        }


__all__ = ["ExchangeRules", "MarketableStop", "StopTrigger"]
