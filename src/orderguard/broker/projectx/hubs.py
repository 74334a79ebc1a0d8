"""What we subscribe to on the two hubs, and how their events become our events. Pure apart
from the ``invoke`` calls in the ``subscribe_*`` coroutines.

User hub (one argument per event, in any of the shapes :func:`~.wire.extract_entities`
accepts): ``GatewayUserAccount`` → :class:`AccountEvent`, ``GatewayUserOrder`` →
:class:`OrderEvent`, ``GatewayUserPosition`` → :class:`PositionEvent`, ``GatewayUserTrade`` →
:class:`TradeEvent`. Market hub (``(contractId, payload)``): ``GatewayQuote`` →
:class:`QuoteEvent`, merged per contract because a quote may carry only the fields that changed
(UNCONFIRMED, spec §6.3): an event goes out once last, bid and ask are all known.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from orderguard.broker.base import (
    AccountEvent,
    BrokerEvent,
    OrderEvent,
    PositionEvent,
    QuoteEvent,
    TradeEvent,
)

from . import wire
from .signalr import HubClient

log = logging.getLogger("orderguard.projectx")

USER_DECODERS: Mapping[str, Callable[[Any], BrokerEvent]] = {
    "GatewayUserAccount": lambda raw: AccountEvent(wire.decode_account(raw)),
    "GatewayUserOrder": lambda raw: OrderEvent(wire.decode_order(raw)),
    "GatewayUserPosition": lambda raw: PositionEvent(wire.decode_position(raw)),
    "GatewayUserTrade": lambda raw: TradeEvent(wire.decode_trade(raw)),
}
MARKET_IGNORED = frozenset({"GatewayTrade", "GatewayDepth"})


@dataclass(frozen=True, slots=True)
class Decoded:
    events: list[BrokerEvent]
    malformed: int


def decode_user_event(target: str, arguments: list[Any]) -> Decoded:
    """Our events from one user-hub invocation; undecodable pieces are counted, not raised."""
    decoder = USER_DECODERS.get(target.strip())
    if decoder is None:
        # Case differences have been seen between docs and servers; match loosely.
        decoder = next(
            (d for name, d in USER_DECODERS.items() if name.lower() == target.strip().lower()),
            None,
        )
    if decoder is None:
        return Decoded([], 0)  # an event we do not use
    extracted = wire.extract_entities(arguments)
    events: list[BrokerEvent] = []
    malformed = extracted.malformed
    for entity in extracted.entities:
        try:
            events.append(decoder(entity))
        except wire.WireError as exc:
            malformed += 1
            log.warning("malformed %s payload: %s", target, exc)
    return Decoded(events, malformed)


@dataclass
class _QuoteState:
    last: Decimal | None = None
    bid: Decimal | None = None
    ask: Decimal | None = None
    stamp: datetime | None = None


@dataclass
class QuoteBook:
    """Latest quote per contract, merged from possibly partial ``GatewayQuote`` payloads."""

    now: Callable[[], datetime]
    _quotes: dict[str, _QuoteState] = field(default_factory=dict)

    def last_price(self, contract_id: str) -> Decimal | None:
        state = self._quotes.get(contract_id)
        return None if state is None else state.last

    def forget(self) -> int:
        """Drop every quote (the feed had a gap: what we hold may be stale); how many were
        dropped. Partial quotes after the gap are not merged with fields from before it."""
        dropped = sum(1 for state in self._quotes.values() if state.last is not None)
        self._quotes.clear()
        return dropped

    def apply(self, target: str, arguments: list[Any]) -> Decoded:
        if target != "GatewayQuote":
            return Decoded([], 0)  # trades and depth are not used by the order manager
        try:
            contract_id, payload = wire.split_market_arguments(arguments)
            items = payload if isinstance(payload, list) else [payload]
            quotes = [wire.decode_quote(p) for p in items if p is not None]
        except wire.WireError as exc:
            log.warning("malformed GatewayQuote payload: %s", exc)
            return Decoded([], 1)
        events: list[BrokerEvent] = []
        state = self._quotes.setdefault(contract_id, _QuoteState())
        for quote in quotes:
            state.last = quote.last_price if quote.last_price is not None else state.last
            state.bid = quote.best_bid if quote.best_bid is not None else state.bid
            state.ask = quote.best_ask if quote.best_ask is not None else state.ask
            state.stamp = quote.timestamp or state.stamp
            if state.last is not None and state.bid is not None and state.ask is not None:
                events.append(
                    QuoteEvent(
                        contract_id, state.last, state.bid, state.ask, state.stamp or self.now()
                    )
                )
        return Decoded(events, 0)


async def subscribe_user(hub: HubClient, accounts: Iterable[int]) -> None:
    """The user-hub subscriptions (spec §6.2): accounts once, then per account."""
    await hub.invoke("SubscribeAccounts")
    for account_id in sorted(set(accounts)):
        await subscribe_user_account(hub, account_id)


async def subscribe_user_account(hub: HubClient, account_id: int) -> None:
    await hub.invoke("SubscribeOrders", account_id)
    await hub.invoke("SubscribePositions", account_id)
    await hub.invoke("SubscribeTrades", account_id)


async def subscribe_market(hub: HubClient, contracts: Iterable[str]) -> None:
    for contract_id in sorted(set(contracts)):
        await hub.invoke("SubscribeContractQuotes", contract_id)


__all__ = [
    "MARKET_IGNORED",
    "USER_DECODERS",
    "Decoded",
    "QuoteBook",
    "decode_user_event",
    "subscribe_market",
    "subscribe_user",
    "subscribe_user_account",
]
