"""``ProjectXBroker``: the :class:`~orderguard.broker.base.Broker` port over the real gateway.

REST goes through one :class:`~.http.HttpSeam`; events come from the user and market hubs through
our :class:`~.signalr.HubClient`. How each failure is classified:

======================================  ===================================  ======================
what happened                           mutation                             query
======================================  ===================================  ======================
connect failed / no pooled connection   raise ``ConnectionFailedError``      same (retryable)
                                        (not sent: safe to re-send)
read timeout, connection lost after     ``Unknown(TIMEOUT_AFTER_SEND /       ``GatewayUnavailable``
the request was written                 CONNECTION_LOST)``                   (retryable)
HTTP 5xx                                ``Unknown(SERVER_ERROR)``            same as above
HTTP 429                                ``Unknown(RATE_LIMITED_AFTER_SEND)`` ``RateLimitedError``
                                        with ``retry_after``                 (sent, retry_after)
HTTP 401                                re-login, re-send once (see below)   re-login, once
HTTP 400/404/405                        ``Rejected(-400/-404/-405)``         ``BrokerError``
envelope broken or self-contradictory   ``Unknown(UNKNOWN_CODE)``            ``MalformedPayload``
``success:false`` + code                per-endpoint table (``codes.py``)    ``OrderRejectedError``
======================================  ===================================  ======================

**401 and re-sending a mutation.** The gateway is an ASP.NET service: authentication runs in the
middleware pipeline *before* the endpoint, so a request answered 401 never reached the code that
places, cancels or closes anything. Re-sending it once after a re-login therefore cannot
duplicate anything. A second 401 raises ``AuthenticationError`` (still nothing executed).

**Retry-After.** After a 429 that names a wait, new requests are refused locally with
``RateLimitedError(sent=False, retry_after=...)`` until the wait is over (capped by
``retry_after_cap``): not sent, so the caller may re-send them after the advised wait. We do not
rate-limit otherwise: the OrderManager's guarded gateway already does.

**Native brackets.** The "Auto OCO Brackets" account setting cannot be read through the API:
``get_capabilities`` answers the configured ``native_brackets``, else what this session learned
(a "Brackets cannot be used with Position Brackets" rejection turns it off for the account; an
accepted bracket confirms it), else True — a wrong guess costs one rejected entry, which the
bracket engine retries client-side.

Over 500 lines: one method per operation of the broker port, each classifying its failures by the
table above; split by endpoint, that one table would be scattered.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx2

from orderguard.broker.base import (
    AccountCapabilities,
    BrokerEvent,
    Confirmed,
    ConnectionEvent,
    ConnectionState,
    EventFeed,
    EventHandler,
    Outcome,
    Rejected,
    Unknown,
    UnknownOrigin,
)
from orderguard.clock import Clock, SystemClock
from orderguard.errors import (
    AuthenticationError,
    BrokerError,
    ConnectionFailedError,
    MalformedPayloadError,
    OrderRejectedError,
    RateLimitedError,
    UnknownAccountError,
)
from orderguard.models import Account, Contract, Order, OrderRequest, Position, Trade

from . import codes, hubs, redact, wire
from .auth import TokenManager, TokenRefresher
from .config import Endpoints, ProjectXSettings
from .errors import GatewayUnavailableError
from .http import HttpAnswer, HttpSeam, NoAnswerError, NotSentError, Timeouts
from .signalr import WS_LOGGER_NAME, HubClient, HubOptions, wait_event

log = logging.getLogger("orderguard.projectx")

POSITION_BRACKETS_TEXT = "position brackets"
_LOGGERS = ("orderguard.projectx", WS_LOGGER_NAME, *redact.THIRD_PARTY_LOGGERS)


class _Subscription:
    __slots__ = ("_broker", "active", "handler")

    def __init__(self, broker: ProjectXBroker, handler: EventHandler) -> None:
        self._broker = broker
        self.handler = handler
        self.active = True

    def close(self) -> None:
        if self.active:
            self.active = False
            self._broker._unsubscribe(self)


class ProjectXBroker:
    """The Broker port over ProjectX REST and SignalR (see the module docstring)."""

    durable_journal_required = True
    """Real money: OrderManager refuses to run this broker on an in-memory journal unless told."""

    def __init__(
        self,
        settings: ProjectXSettings,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        realtime: bool = True,
        connector: Any = None,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.endpoints: Endpoints = settings.endpoints()
        self.secrets = redact.SecretRegistry()
        redact.install(self.secrets, _LOGGERS)
        self.stats: Counter[str] = Counter()
        self._http = HttpSeam(
            self.endpoints.api_base,
            Timeouts(
                connect=settings.connect_timeout,
                read=settings.read_timeout,
                write=settings.write_timeout,
                pool=settings.pool_timeout,
            ),
            transport=transport,
        )
        self.tokens = TokenManager(
            self._http,
            settings.username,
            settings.api_key,
            self.clock,
            self.secrets,
            refresh_margin=settings.refresh_margin,
            fallback_lifetime=settings.fallback_token_lifetime,
        )
        self.tokens.on_change(self._on_token_change)
        self._refresher = TokenRefresher(self.tokens, self.clock)
        self._rng = rng or random.Random()
        self._realtime = realtime
        options = HubOptions(
            skip_negotiation=settings.skip_negotiation,
            keepalive_interval=settings.keepalive_interval,
            silence_timeout=settings.silence_timeout,
            handshake_timeout=settings.handshake_timeout,
            invoke_timeout=settings.invoke_timeout,
            reconnect_initial_delay=settings.reconnect_initial_delay,
            reconnect_max_delay=settings.reconnect_max_delay,
        )
        self.quotes = hubs.QuoteBook(now=self.clock.now)
        self.user_hub = HubClient(
            "user",
            self.endpoints.user_hub,
            self.tokens,
            on_event=self._on_user_event,
            on_state=self._on_user_state,
            on_open=self._open_user,
            clock=self.clock,
            options=options,
            rng=random.Random(self._rng.getrandbits(64)),
            http=self._http,
            connector=connector,
            redact=self.secrets.redact,
        )
        self.market_hub = HubClient(
            "market",
            self.endpoints.market_hub,
            self.tokens,
            on_event=self._on_market_event,
            on_state=self._on_market_state,
            on_open=self._open_market,
            clock=self.clock,
            options=options,
            rng=random.Random(self._rng.getrandbits(64)),
            http=self._http,
            connector=connector,
            redact=self.secrets.redact,
        )
        self._subscriptions: tuple[_Subscription, ...] = ()
        self._accounts: set[int] = set()
        self._contracts_watched: set[str] = set()
        self._quote_waiters: dict[str, asyncio.Event] = {}
        self._native: dict[int, bool] = {}
        self._contracts: dict[str, Contract] = {}
        self._search_by_id: bool | None = None  # Order/searchById served? (RS only)
        self._cooldown_until = 0.0
        self._start_lock = asyncio.Lock()
        self._started = False
        self._hubs_late = False
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def from_env(cls, **kwargs: Any) -> Self:
        """Settings from the environment (project-x-py's variable names; see ``config.py``)."""
        return cls(ProjectXSettings(), **kwargs)  # type: ignore[call-arg]  # from env

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> Self:
        """Settings from a private ``.toml``/``.json`` file (env variables win over it)."""
        return cls(ProjectXSettings.from_file(path), **kwargs)

    def __repr__(self) -> str:
        return (
            f"ProjectXBroker(api={self.endpoints.api_base!r}, user={self.settings.username!r}, "
            f"started={self._started})"
        )

    @property
    def firm(self) -> str:
        return self.settings.firm_slug

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Log in, find the accounts to follow, connect the hubs. Idempotent; every call of the
        port runs it first. Waits up to ``first_connect_wait`` for the user hub: events are
        only delivered once it is subscribed (if it connects later, that is a RECONNECTED)."""
        if self._started:
            return
        async with self._start_lock:
            if self._started:
                return
            if self._closed:
                raise BrokerError("this ProjectXBroker is closed")
            await self.tokens.token()
            accounts = await self._load_accounts()
            chosen = self._configured_account(accounts)
            self._accounts = {chosen.id} if chosen is not None else {a.id for a in accounts}
            self._refresher.start()
            if self._realtime:
                self.user_hub.start()
                self.market_hub.start()
                if not await self.user_hub.wait_ready(self.settings.first_connect_wait):
                    self._hubs_late = True
                    log.warning("user hub not connected yet; going on, events will resync")
            self._started = True
            log.info("ProjectX session started on %s", self.endpoints.api_base)

    async def aclose(self) -> None:
        """Stop the hubs and the refresher, close HTTP. Never hangs; idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._refresher.stop()
        await asyncio.gather(self.user_hub.close(), self.market_hub.close())
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._http.aclose()
        redact.uninstall(self.secrets, _LOGGERS)

    async def logout(self) -> None:
        """End the session at the gateway (``Auth/logout``); the next call logs in again."""
        await self.tokens.logout()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- events ------------------------------------------------------------------------------------
    def subscribe(self, handler: EventHandler) -> _Subscription:
        subscription = _Subscription(self, handler)
        self._subscriptions = (*self._subscriptions, subscription)
        return subscription

    def _unsubscribe(self, subscription: _Subscription) -> None:
        self._subscriptions = tuple(s for s in self._subscriptions if s is not subscription)

    def _deliver(self, event: BrokerEvent) -> None:
        self.stats["events"] += 1
        for subscription in self._subscriptions:
            if not subscription.active:
                continue
            try:
                subscription.handler(event)
            except Exception:
                self.stats["handler_errors"] += 1
                log.exception("broker event handler failed on %s", type(event).__name__)

    def _on_user_event(self, target: str, arguments: list[Any]) -> None:
        decoded = hubs.decode_user_event(target, arguments)
        if decoded.malformed:
            self.stats["malformed_events"] += decoded.malformed
        for event in decoded.events:
            self._deliver(event)

    def _on_market_event(self, target: str, arguments: list[Any]) -> None:
        decoded = self.quotes.apply(target, arguments)
        if decoded.malformed:
            self.stats["malformed_events"] += decoded.malformed
        for event in decoded.events:
            waiter = self._quote_waiters.get(getattr(event, "contract_id", ""))
            if waiter is not None:
                waiter.set()
            self._deliver(event)

    def _on_user_state(self, state: ConnectionState, detail: str) -> None:
        if state is ConnectionState.CONNECTED and self._hubs_late:
            # The first connection came after start() went on without it: events were missed.
            state = ConnectionState.RECONNECTED
        self._hubs_late = False
        self.stats[f"user_hub_{state.value}"] += 1
        log.info("user hub %s %s", state.value, detail)
        self._deliver(ConnectionEvent(state, f"user hub: {detail}" if detail else "user hub"))

    def _on_market_state(self, state: ConnectionState, detail: str) -> None:
        # A gap of the market hub loses quotes, not order truth. The quotes we hold may be stale
        # from the moment the hub is lost or silent: they are dropped, so get_last_price waits
        # for a fresh one (or reads the newest bar) instead of answering a price from before
        # the gap. The manager is told like for the user hub, marked as the quote feed, so
        # whoever reacts to gaps (its reconciler resyncs) can take note.
        if state in (ConnectionState.DISCONNECTED, ConnectionState.SILENT):
            self.stats["stale_quotes_dropped"] += self.quotes.forget()
        self.stats[f"market_hub_{state.value}"] += 1
        log.info("market hub %s %s", state.value, detail)
        text = f"market hub: {detail}" if detail else "market hub"
        self._deliver(ConnectionEvent(state, text, EventFeed.QUOTES))

    async def _open_user(self, hub: HubClient) -> None:
        await hubs.subscribe_user(hub, self._accounts)

    async def _open_market(self, hub: HubClient) -> None:
        await hubs.subscribe_market(hub, self._contracts_watched)

    def _on_token_change(self) -> None:
        # The token is baked into the hub URL: reconnect both with the new one (F10).
        self.stats["token_changes"] += 1
        for hub in (self.user_hub, self.market_hub):
            if hub.connected:
                hub.reconnect("token renewed")

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _watch_account(self, account_id: int) -> None:
        """Follow an account's events from now on (subscribing at once if connected)."""
        if account_id in self._accounts or not self._started:
            return
        self._accounts.add(account_id)
        if self.user_hub.connected:
            self._spawn(self._subscribe_account(account_id))

    async def _subscribe_account(self, account_id: int) -> None:
        try:
            await hubs.subscribe_user_account(self.user_hub, account_id)
        except Exception as exc:  # the next reconnect subscribes it anyway
            log.warning("subscribing account %s failed: %s", account_id, exc)

    # -- one request -------------------------------------------------------------------------------
    def _check_cooldown(self) -> None:
        left = self._cooldown_until - self.clock.monotonic()
        if left > 0:
            self.stats["refused_in_cooldown"] += 1
            raise RateLimitedError(
                f"the gateway asked to wait {left:.1f}s more (Retry-After)",
                retry_after=left,
                sent=False,
            )

    def _note_rate_limit(self, answer: HttpAnswer) -> float | None:
        self.stats["http_429"] += 1
        if answer.retry_after is None:
            return None
        wait = min(answer.retry_after, self.settings.retry_after_cap)
        self._cooldown_until = max(self._cooldown_until, self.clock.monotonic() + wait)
        return wait

    async def _post(self, path: str, body: Mapping[str, Any] | None) -> HttpAnswer:
        """One authenticated POST; a 401 re-logs in and re-sends once (see module docstring).

        Raises ``NotSentError``/``NoAnswerError`` from the seam, and ``ConnectionFailedError``,
        ``RateLimitedError(sent=False)`` or ``AuthenticationError`` when no token could be had.
        """
        self._check_cooldown()
        content = None if body is None else wire.dumps(body)
        token = await self.tokens.token()
        answer = await self._http.post(path, content, token=token)
        if answer.status == 401:
            self.stats["http_401"] += 1
            token = await self.tokens.after_rejection(token)
            answer = await self._http.post(path, content, token=token)
            if answer.status == 401:
                raise AuthenticationError(f"{path}: the gateway refused a fresh token")
            self.stats["resent_after_401"] += 1
        return answer

    async def _mutate(self, path: str, body: Mapping[str, Any], table: Any) -> Outcome:
        await self.start()
        try:
            answer = await self._post(path, body)
        except NotSentError as exc:
            raise ConnectionFailedError(str(exc)) from None
        except NoAnswerError as exc:
            return Unknown(exc.origin, str(exc))
        return self._mutation_outcome(path, answer, table)

    def _mutation_outcome(self, path: str, answer: HttpAnswer, table: Any) -> Outcome:
        status = answer.status
        if status == 429:
            wait = self._note_rate_limit(answer)
            after = f"; retry after {wait:g}s" if wait is not None else ""
            return Unknown(UnknownOrigin.RATE_LIMITED_AFTER_SEND, f"{path}: HTTP 429{after}", wait)
        if status >= 500:
            return Unknown(UnknownOrigin.SERVER_ERROR, f"{path}: HTTP {status}")
        if status in codes.REFUSED_STATUSES:
            return Rejected(codes.REFUSED_STATUSES[status], f"{path}: HTTP {status} {answer.text}")
        if status != 200:
            return Unknown(UnknownOrigin.UNKNOWN_CODE, f"{path}: HTTP {status}")
        try:
            env = wire.envelope(answer.body)
        except wire.WireError as exc:
            self.stats["protocol_errors"] += 1
            return Unknown(UnknownOrigin.UNKNOWN_CODE, f"{path}: protocol error: {exc}")
        body = answer.body
        order_id = body.get("orderId")
        order_id = (
            order_id if isinstance(order_id, int) and not isinstance(order_id, bool) else None
        )
        if env.success:
            if table is codes.PLACE and order_id is None:
                self.stats["protocol_errors"] += 1
                return Unknown(UnknownOrigin.UNKNOWN_CODE, f"{path}: success without orderId")
            return Confirmed(order_id)
        verdict = codes.verdict(table, env.code)
        if verdict is codes.Verdict.REJECTED:
            return Rejected(env.code, env.message, order_id)
        if verdict is codes.Verdict.PENDING:
            return Unknown(UnknownOrigin.PENDING, f"{path}: code {env.code} {env.message}".strip())
        return Unknown(UnknownOrigin.UNKNOWN_CODE, f"{path}: code {env.code} {env.message}".strip())

    async def _query(
        self, path: str, body: Mapping[str, Any], *, absent_codes: tuple[int, ...] = ()
    ) -> dict[str, Any] | None:
        """A read's answer body; None when the code says "no such thing"; raises otherwise."""
        await self.start()
        return await self._read(path, body, absent_codes=absent_codes)

    async def _read(
        self, path: str, body: Mapping[str, Any], *, absent_codes: tuple[int, ...] = ()
    ) -> dict[str, Any] | None:
        try:
            answer = await self._post(path, body)
        except NotSentError as exc:
            raise ConnectionFailedError(str(exc)) from None
        except NoAnswerError as exc:
            raise GatewayUnavailableError(str(exc)) from None
        return await self._checked(path, answer, absent_codes=absent_codes)

    @staticmethod
    def _decode_list(
        path: str, body: Mapping[str, Any] | None, keys: tuple[str, ...], decode: Any
    ) -> list[Any]:
        if body is None:
            return []
        try:
            return [decode(item) for item in wire.records(body, *keys)]
        except wire.WireError as exc:
            raise MalformedPayloadError(f"{path}: {exc}") from None

    # -- mutations ---------------------------------------------------------------------------------
    async def place_order(self, request: OrderRequest) -> Outcome:
        self._watch_account(request.account_id)
        body = wire.encode_place(request, signed_ticks=self.settings.bracket_ticks_signed)
        outcome = await self._mutate("/api/Order/place", body, codes.PLACE)
        if request.stop_loss_bracket is not None or request.take_profit_bracket is not None:
            self._learn_bracket_mode(request.account_id, outcome)
        return outcome

    def _learn_bracket_mode(self, account_id: int, outcome: Outcome) -> None:
        if isinstance(outcome, Rejected) and POSITION_BRACKETS_TEXT in outcome.message.lower():
            self.stats["native_brackets_refused"] += 1
            self._native[account_id] = False
            log.warning("account %s is on Position Brackets: native brackets off", account_id)
        elif isinstance(outcome, Confirmed):
            self._native[account_id] = True

    async def cancel_order(self, account_id: int, order_id: int) -> Outcome:
        self._watch_account(account_id)
        body = {"accountId": account_id, "orderId": order_id}
        return await self._mutate("/api/Order/cancel", body, codes.CANCEL)

    async def modify_order(
        self,
        account_id: int,
        order_id: int,
        *,
        size: int | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        trail_price: Decimal | None = None,
    ) -> Outcome:
        self._watch_account(account_id)
        body = wire.encode_modify(
            account_id,
            order_id,
            size=size,
            limit_price=limit_price,
            stop_price=stop_price,
            trail_price=trail_price,
        )
        return await self._mutate("/api/Order/modify", body, codes.MODIFY)

    async def close_position(self, account_id: int, contract_id: str) -> Outcome:
        self._watch_account(account_id)
        body = {"accountId": account_id, "contractId": contract_id}
        return await self._mutate("/api/Position/closeContract", body, codes.CLOSE)

    async def partial_close_position(self, account_id: int, contract_id: str, size: int) -> Outcome:
        self._watch_account(account_id)
        # The field is ``size`` (project-x-py sends ``closeSize``, a wire bug: spec §8.16).
        body = {"accountId": account_id, "contractId": contract_id, "size": size}
        return await self._mutate("/api/Position/partialCloseContract", body, codes.PARTIAL_CLOSE)

    # -- queries -----------------------------------------------------------------------------------
    async def search_orders(
        self, account_id: int, start: datetime, end: datetime | None = None
    ) -> list[Order]:
        self._watch_account(account_id)
        body: dict[str, Any] = {"accountId": account_id, "startTimestamp": wire.iso(start)}
        if end is not None:
            body["endTimestamp"] = wire.iso(end)
        path = "/api/Order/search"
        return self._decode_list(
            path, await self._query(path, body), ("orders",), wire.decode_order
        )

    async def search_open_orders(self, account_id: int) -> list[Order]:
        self._watch_account(account_id)
        path = "/api/Order/searchOpen"
        answer = await self._query(path, {"accountId": account_id})
        return self._decode_list(path, answer, ("orders",), wire.decode_order)

    async def get_order(self, account_id: int, order_id: int) -> Order | None:
        """``Order/searchById`` where the gateway serves it (RS only, UNCONFIRMED in the docs);
        else the order among ``Order/search`` over the last ``order_lookup_hours``."""
        self._watch_account(account_id)
        await self.start()
        if self._search_by_id is not False:
            found = await self._order_by_id(account_id, order_id)
            if found is not _MISSING_ENDPOINT:
                return found if isinstance(found, Order) else None
        start = self.clock.now() - timedelta(hours=self.settings.order_lookup_hours)
        orders = await self.search_orders(account_id, start)
        return next((o for o in orders if o.id == order_id), None)

    async def _order_by_id(self, account_id: int, order_id: int) -> Order | object | None:
        path = "/api/Order/searchById"
        body = {"accountId": account_id, "orderId": order_id}
        try:
            answer = await self._post(path, body)
        except NotSentError as exc:
            raise ConnectionFailedError(str(exc)) from None
        except NoAnswerError as exc:
            raise GatewayUnavailableError(str(exc)) from None
        if answer.status in (404, 405):
            self._search_by_id = False
            log.info("Order/searchById is not served here; using Order/search")
            return _MISSING_ENDPOINT
        # Any other answer goes through the ordinary read checks (429, 5xx, envelope).
        result = await self._checked(path, answer, absent_codes=(codes.ORDER_BY_ID_NOT_FOUND,))
        self._search_by_id = True
        orders = self._decode_list(path, result, ("order", "orders"), wire.decode_order)
        return next((o for o in orders if o.id == order_id), None)

    async def _checked(
        self, path: str, answer: HttpAnswer, *, absent_codes: tuple[int, ...]
    ) -> dict[str, Any] | None:
        """The checks every read answer goes through: 429, 5xx, other statuses, envelope."""
        if answer.status == 429:
            wait = self._note_rate_limit(answer)
            raise RateLimitedError(f"{path}: HTTP 429", retry_after=wait, sent=True)
        if answer.status >= 500:
            raise GatewayUnavailableError(f"{path}: HTTP {answer.status}")
        if answer.status != 200:
            raise BrokerError(f"{path}: HTTP {answer.status}")
        try:
            env = wire.envelope(answer.body)
        except wire.WireError as exc:
            raise MalformedPayloadError(f"{path}: {exc}") from None
        if not env.success:
            if env.code in absent_codes:
                return None
            raise OrderRejectedError(
                f"{path}: code {env.code} {env.message}".strip(), code=env.code
            )
        result: dict[str, Any] = answer.body
        return result

    async def search_positions(self, account_id: int) -> list[Position]:
        self._watch_account(account_id)
        path = "/api/Position/searchOpen"
        answer = await self._query(path, {"accountId": account_id})
        positions: list[Position] = self._decode_list(
            path, answer, ("positions",), wire.decode_position
        )
        return [p for p in positions if p.size > 0]  # a flat position is not open

    async def search_trades(
        self, account_id: int, start: datetime, end: datetime | None = None
    ) -> list[Trade]:
        self._watch_account(account_id)
        body: dict[str, Any] = {"accountId": account_id, "startTimestamp": wire.iso(start)}
        if end is not None:
            body["endTimestamp"] = wire.iso(end)
        path = "/api/Trade/search"
        return self._decode_list(
            path, await self._query(path, body), ("trades",), wire.decode_trade
        )

    async def get_accounts(self) -> list[Account]:
        """The gateway's accounts, the configured one (if any) first."""
        await self.start()
        accounts = await self._load_accounts()
        chosen = self._configured_account(accounts)
        if chosen is not None:
            accounts.sort(key=lambda a: a.id != chosen.id)
        return accounts

    async def _load_accounts(self) -> list[Account]:
        path = "/api/Account/search"
        answer = await self._read(path, {"onlyActiveAccounts": self.settings.only_active_accounts})
        accounts: list[Account] = self._decode_list(
            path, answer, ("accounts",), wire.decode_account
        )
        return accounts

    def _configured_account(self, accounts: list[Account]) -> Account | None:
        """The account named by ``account_id`` or ``account_name`` (project-x-py's rule: the
        name, case-insensitive); None when neither is set. Raises when it is not there."""
        wanted_id, wanted_name = self.settings.account_id, self.settings.account_name
        if wanted_id is None and wanted_name is None:
            return None
        for account in accounts:
            if wanted_id is not None and account.id == wanted_id:
                return account
            if wanted_id is None and wanted_name and account.name.upper() == wanted_name.upper():
                return account
        names = ", ".join(a.name for a in accounts) or "none"
        wanted = wanted_id if wanted_id is not None else wanted_name
        raise UnknownAccountError(f"account {wanted!r} not found (available: {names})")

    async def selected_account(self) -> Account:
        """The account to trade: the configured one, else the first that can trade."""
        accounts = await self.get_accounts()
        chosen = self._configured_account(accounts)
        if chosen is not None:
            return chosen
        tradable = [a for a in accounts if a.can_trade]
        if not tradable:
            raise UnknownAccountError("the gateway lists no account that can trade")
        return tradable[0]

    async def get_contract(self, contract_id: str) -> Contract | None:
        cached = self._contracts.get(contract_id)
        if cached is not None:
            return cached
        path = "/api/Contract/searchById"
        answer = await self._query(
            path, {"contractId": contract_id}, absent_codes=(codes.CONTRACT_NOT_FOUND,)
        )
        # Swagger says ``contract``; the April-2025 docs said ``contracts``: accept both.
        found: list[Contract] = self._decode_list(
            path, answer, ("contract", "contracts"), wire.decode_contract
        )
        contract = next((c for c in found if c.id == contract_id), None)
        if contract is not None:
            self._contracts[contract_id] = contract
        return contract

    async def search_contracts(self, text: str) -> list[Contract]:
        path = "/api/Contract/search"
        answer = await self._query(path, {"searchText": text, "live": self.settings.live})
        return self._decode_list(path, answer, ("contracts",), wire.decode_contract)

    async def available_contracts(self) -> list[Contract]:
        """``Contract/available``: every contract the account's data subscription offers."""
        path = "/api/Contract/available"
        answer = await self._query(path, {"live": self.settings.live})
        return self._decode_list(path, answer, ("contracts",), wire.decode_contract)

    async def get_capabilities(self, account_id: int) -> AccountCapabilities:
        configured = self.settings.native_brackets
        native = configured if configured is not None else self._native.get(account_id, True)
        return AccountCapabilities(
            native_brackets=native, max_order_size=self.settings.max_order_size
        )

    async def get_last_price(self, contract_id: str) -> Decimal | None:
        """The last price from the market hub's quotes (subscribing on first use and waiting up
        to ``quote_wait`` for one); else the close of the newest recent bar over REST."""
        await self.start()
        price = self.quotes.last_price(contract_id)
        if price is not None:
            return price
        if self._realtime:
            waiter = self._quote_waiters.setdefault(contract_id, asyncio.Event())
            if contract_id not in self._contracts_watched:
                self._contracts_watched.add(contract_id)
                if self.market_hub.connected:
                    try:
                        await hubs.subscribe_market(self.market_hub, [contract_id])
                    except Exception as exc:
                        log.info("quote subscription for %s failed: %s", contract_id, exc)
            await wait_event(self.clock, waiter, self.settings.quote_wait)
            price = self.quotes.last_price(contract_id)
            if price is not None:
                return price
        return await self._last_bar_close(contract_id)

    async def _last_bar_close(self, contract_id: str) -> Decimal | None:
        self.stats["bars_fallback"] += 1
        now = self.clock.now()
        body = {
            "contractId": contract_id,
            "live": self.settings.live,
            "startTime": wire.iso(now - timedelta(minutes=30)),
            "endTime": wire.iso(now),
            "unit": 2,  # minute
            "unitNumber": 1,
            "limit": 30,
            "includePartialBar": True,
        }
        path = "/api/History/retrieveBars"
        answer = await self._query(path, body, absent_codes=(1,))  # 1: ContractNotFound
        if answer is None:
            return None
        try:
            return wire.last_bar_close(answer)
        except wire.WireError as exc:
            raise MalformedPayloadError(f"{path}: {exc}") from None


_MISSING_ENDPOINT = object()


__all__ = ["POSITION_BRACKETS_TEXT", "ProjectXBroker"]
