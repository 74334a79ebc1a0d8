"""One gateway simulator: build the exchange and everything around it, run it under uvicorn.

:class:`Gateway` is the object a test or the CLI holds: it owns the exchange, the market feed,
the hubs and the optional state file, and serves them with uvicorn on loopback. ``async with
Gateway(config).running(port=0) as gateway`` gives a live server and its URLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import uvicorn

from orderguard.broker.base import BrokerEvent, QuoteEvent
from orderguard.broker.sim import SimExchange
from orderguard.clock import Clock, SystemClock

from .app import build_app
from .auth import TokenIssuer
from .bars import BarHistory
from .config import GatewayConfig
from .core import GatewayCore
from .faults import FaultBoard
from .hubs import HubServer
from .market import MarketFeed, start_price
from .ratelimit import SlidingWindows
from .state import StateStore

log = logging.getLogger("orderguard.gateway")


@dataclass(frozen=True, slots=True)
class GatewayUrls:
    """Where a client points: ``api`` is what project-x-py calls ``PROJECTX_API_URL``."""

    base: str

    @property
    def api(self) -> str:
        return f"{self.base}/api"

    @property
    def user_hub(self) -> str:
        return f"{self.base}/hubs/user"

    @property
    def market_hub(self) -> str:
        return f"{self.base}/hubs/market"

    @property
    def control(self) -> str:
        return f"{self.base}/control"


class _InProcessServer(uvicorn.Server):
    """uvicorn without its signal handlers: the embedding program (a test, the CLI's
    ``asyncio.run``) owns Ctrl-C, and stopping is :meth:`Gateway.stop`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Gateway:
    """The simulated exchange behind the ProjectX wire protocol. See the module docstring."""

    def __init__(
        self,
        config: GatewayConfig | None = None,
        *,
        clock: Clock | None = None,
        state_path: Path | None = None,
        price_series: dict[str, list[Decimal]] | None = None,
        loop_series: bool = False,
    ) -> None:
        self.config = config = config or GatewayConfig()
        self.clock = clock = clock or SystemClock()
        self.exchange = exchange = SimExchange(clock, liquidity=config.liquidity)
        store = StateStore(state_path) if state_path is not None else None
        saved = store.load_meta() if store is not None else {}
        api_key = config.api_key or saved.get("api_key") or secrets.token_urlsafe(24)
        secret = saved.get("jwt_secret") or secrets.token_urlsafe(32)
        tokens = TokenIssuer(clock, secret, config.token_lifetime)
        tokens.issued = int(saved.get("tokens_issued", "0"))
        history = BarHistory()
        market = MarketFeed(
            exchange,
            clock,
            seed=config.seed,
            interval=config.tick_interval,
            depth_levels=config.depth_levels,
            history=history,
        )
        faults = FaultBoard()
        hubs = HubServer(config, exchange, tokens, market, faults, clock)
        self.core = GatewayCore(
            config=config,
            clock=clock,
            exchange=exchange,
            tokens=tokens,
            api_key=api_key,
            history=history,
            market=market,
            hubs=hubs,
            faults=faults,
            general_limits=SlidingWindows(clock, config.general_limit),
            bars_limits=SlidingWindows(clock, config.bars_limit),
            store=store,
            rate_limits_enabled=config.rate_limits,
        )
        restored = store is not None and store.restore(self.core)
        if not restored:
            for spec in config.accounts:
                exchange.open_account(
                    spec.id, spec.name, spec.balance, native_brackets=spec.native_brackets
                )
        self.restored = restored
        self._listener = exchange.listen(self._on_event)
        self._setup_market(price_series or {}, loop_series)
        self.app = build_app(self.core)
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._saver: asyncio.Task[None] | None = None
        self._stopped = False
        self.urls: GatewayUrls | None = None

    def _setup_market(self, series: dict[str, list[Decimal]], loop: bool) -> None:
        exchange, config = self.exchange, self.config
        now = self.clock.now()
        for index, contract in enumerate(exchange.contracts()):
            replay = series.get(contract.id) or series.get(contract.symbol_id)
            if replay:
                first = replay[0]
                prices: Iterator[Decimal] = self.core.market.replay(replay, loop)
            else:
                last = exchange.last_price(contract.id)  # a restored market goes on from there
                first = last if last is not None else start_price(contract, config.start_prices)
                prices = self.core.market.random_walk(contract, first, index)
            self.core.history.backfill(
                contract.id,
                end=now,
                last_price=first,
                tick=contract.tick_size,
                days=config.history_days,
                seed=config.seed,
            )
            self.core.market.add_driver(contract, prices)

    def _on_event(self, event: BrokerEvent) -> None:
        core = self.core
        if isinstance(event, QuoteEvent):
            update = core.market.on_quote(event)
            if update is not None:
                core.hubs.on_market(update)
            return
        core.hubs.on_event(event)
        if core.store is not None:
            core.store.mark(event)

    @property
    def credentials(self) -> tuple[str, str]:
        """(userName, apiKey) a client logs in with."""
        return self.config.user_name, self.core.api_key

    # -- running ----------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> GatewayUrls:
        """Serve on ``host:port`` (0 = a free port) in this event loop; returns the URLs."""
        await self.core.market.start()
        if self.core.store is not None:
            self._saver = asyncio.create_task(self._save_periodically(), name="gateway-state")
        config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            log_level="warning",
            # Hub URLs carry ?access_token=...: an access log line would print the token.
            access_log=False,
            lifespan="off",
            ws="websockets-sansio",
            ws_ping_interval=None,  # SignalR keeps its own pings; no extra WebSocket pings
        )
        server = _InProcessServer(config)
        self._server = server
        self._task = asyncio.create_task(server.serve(), name="gateway-uvicorn")
        while not server.started:
            if self._task.done():
                await self._task  # raises the bind error
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        sockname = server.servers[0].sockets[0].getsockname()
        shown = f"[{host}]" if ":" in host else host
        self.urls = GatewayUrls(f"http://{shown}:{sockname[1]}")
        log.info("gateway serving on %s", self.urls.base)
        return self.urls

    async def _save_periodically(self, every: float = 1.0) -> None:
        """Market moves between mutations (prices, triggered stops) reach the file too."""
        while True:
            await asyncio.sleep(every)
            await self.core.persist()

    async def stop(self) -> None:
        await self.core.market.stop()
        for pending in list(self.core.background):
            pending.cancel()
        if self._saver is not None:
            self._saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._saver
            self._saver = None
        server, task = self._server, self._task
        if server is not None and task is not None:
            for hub in ("user", "market"):
                await self.core.hubs.disconnect(hub)
            # A hard stop: uvicorn's graceful shutdown polls every 0.1 s twice over, which a
            # simulator that tests start and stop dozens of times does not need.
            server.should_exit = server.force_exit = True
            for listener in server.servers:
                listener.close()
            for connection in list(server.server_state.connections):
                connection.shutdown()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._server = self._task = None
        if self.core.store is not None and not self._stopped:
            await self.core.store.save(self.core)
            self.core.store.close()
        self._listener.close()
        self._stopped = True

    @contextlib.asynccontextmanager
    async def running(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[Gateway]:
        await self.start(host, port)
        try:
            yield self
        finally:
            await self.stop()


__all__ = ["Gateway", "GatewayUrls"]
