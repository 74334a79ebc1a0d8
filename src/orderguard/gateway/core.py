"""What every part of the gateway shares: the exchange, the clock, tokens, limits, hubs, faults.

One :class:`GatewayCore` per server. The REST endpoints, the hubs and the control API get it
instead of each other, so none of them imports another (the dependency arrows all point here).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from orderguard.broker.base import BrokerEvent
from orderguard.broker.sim import SimExchange
from orderguard.clock import Clock

from .auth import TokenIssuer
from .bars import BarHistory
from .config import GatewayConfig, RateLimitScope
from .faults import FaultBoard
from .hubs import HubServer
from .market import MarketFeed
from .ratelimit import SlidingWindows

control_log = logging.getLogger("orderguard.gateway.control")
CONTROL_LOG_KEPT = 1000


class Persistence(Protocol):
    """Where the gateway's state is saved (``state.StateStore``; given, so the two modules do
    not import each other)."""

    async def save(self, core: GatewayCore) -> None: ...

    def mark(self, event: BrokerEvent) -> None:
        """Note what the event changed at the exchange (written by the next save)."""
        ...

    def close(self) -> None: ...


@dataclass(eq=False)
class GatewayCore:
    config: GatewayConfig
    clock: Clock
    exchange: SimExchange
    tokens: TokenIssuer
    api_key: str
    history: BarHistory
    market: MarketFeed
    hubs: HubServer
    faults: FaultBoard
    general_limits: SlidingWindows
    bars_limits: SlidingWindows
    store: Persistence | None = None
    rate_limits_enabled: bool = True
    journal: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=CONTROL_LOG_KEPT))
    # Work a fault left for later (a ``late`` execution): cancelled when the server stops.
    background: set[asyncio.Task[None]] = field(default_factory=set)

    def rate_key(self, user_name: str, token_id: str) -> str:
        scope = self.config.rate_limit_scope
        if scope is RateLimitScope.TOKEN:
            return f"token:{token_id}"
        if scope is RateLimitScope.GLOBAL:
            return "global"
        return f"user:{user_name}"

    def record(self, action: str, **details: Any) -> None:
        """Log a control action (never a secret) and keep it for ``GET /control/log``."""
        entry = {"at": self.clock.now().isoformat(), "action": action, **details}
        self.journal.append(entry)
        control_log.info("control %s %s", action, details)

    async def persist(self) -> None:
        if self.store is not None:
            await self.store.save(self)


__all__ = ["GatewayCore", "Persistence"]
