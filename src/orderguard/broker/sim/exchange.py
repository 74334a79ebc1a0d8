"""The simulated exchange: synchronous state of accounts, orders, positions and trades.

:class:`SimExchange` is the broker's truth in simulations. It is synchronous and deterministic: it
never reads wall time (only the injected clock, for timestamps), has no randomness of its own, and
processes work in a fixed order (orders by id within a matching run), so the same calls produce the
same events. The async :class:`~orderguard.broker.sim.broker.SimBroker` puts latency in front of it.

Semantics follow the ProjectX Gateway (see ``/work/shared/projectx-api.md``); the matching rules and
the one-tick quote are described in :mod:`orderguard.broker.sim.matching`. Where the real gateway's
behaviour is unconfirmed, each reading is a switch of
:class:`~orderguard.broker.sim.rules.ExchangeRules` (``rules=``; ``docs/exchange-rules.md`` has
the table); "by default" below names the default reading. The choices, made here on purpose:

* **Ids** are increasing integers, one sequence each for orders, trades and positions.
* **Events** for one fill come in the order ``OrderEvent``, ``TradeEvent``, ``PositionEvent``,
  ``AccountEvent``, then any bracket-leg updates. ``set_price`` first emits a ``QuoteEvent``. A new
  order is reported Open before it is reported (partially) filled. A trailing stop that moves is
  reported with an ``OrderEvent`` carrying the new ``stop_price``. Events are delivered
  synchronously to :meth:`SimExchange.listen` callbacks after the state change, at the end of the
  call that made it; a callback that calls back into the exchange has its events queued behind
  the current ones.
* **Validation** refuses bad requests with the endpoint's code and no order record (§8.7–8.8). A
  stop at or through the market is refused by default ("Invalid stop price", field report); a
  native stop loss must be at least ``rules.min_stop_loss_ticks`` (4, §9.1) ticks away. The
  account's ``max_order_size`` limits each order by default (``rules.size_limit``); a placement it
  refuses leaves no record by default (``rules.size_rejection``).
* **Positions**: one net position per (account, contract) with average-cost accounting. A position
  gets a new id when it opens from flat and when a fill flips it through zero (the old one is first
  reported flat, ``size`` 0, keeping its direction); by default a flip is one trade
  (``rules.flip_trades``). Fees are charged per contract on every fill (``fee_per_contract`` by
  default, ``rules.fees``); the balance moves by realised P&L minus fees on each fill. A
  position's average price is kept exact (never re-averaged from a rounded one; bounded at 1e-18
  for a position that never goes flat) and leaves the exchange rounded to the wire's 9 places;
  realised P&L is computed from the exact average and rounded to cents (half to even).
* **Liquidity**: with ``liquidity=N`` each order fills at most N contracts per matching run (one
  ``set_price``, or the placement/modify of that order). Position closes are exempt by default and
  flatten at once at the touch (``rules.close_fill``).
* **Cancel** of a terminal order returns cancel code 3 (Rejected), not 2 (OrderNotFound): the order
  exists. A partially filled order cancels its remainder and keeps ``fill_volume``.
* **Modify** re-matches the order at once by default, as if it arrived
  (``rules.limit_aggression``); a new stop price re-arms a triggered stop by default
  (``rules.triggered_stop_modify``).
* **Native brackets** (§9): legs are Suspended children (``parent_order_id``) until the entry fills;
  then Open, anchored at the entry's average fill price (by default re-anchored on each further
  entry fill unless the client modified the leg's price, ``rules.leg_anchor``; a trailing leg only
  tightens) and sized to the filled quantity. Each leg covers ``entry filled - legs filled``: a leg
  fill shrinks its sibling (also, by default, one the client resized: ``rules.resized_leg_fill``)
  and, when nothing is left to cover, cancels the sibling and by default the entry's unfilled
  remainder too, so later entry fills cannot arrive unprotected (``rules.entry_after_exit``). An
  entry cancelled with no fill cancels its legs. Closing the position does not cancel legs by
  default (field reports: they remain as orphans; ``rules.close_cancels_brackets``).

Over 500 lines: every change of the exchange's state (accounts, orders, positions, trades) happens
in this one class so that its events come out in one deterministic order; the matching rules are
matching.py, validation validation.py.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from orderguard.broker.base import (
    AccountCapabilities,
    AccountEvent,
    BrokerEvent,
    OrderEvent,
    PositionEvent,
    QuoteEvent,
    TradeEvent,
)
from orderguard.broker.projectx.codes import (
    CancelCode,
    CloseCode,
    ModifyCode,
    PartialCloseCode,
    PlaceCode,
)
from orderguard.clock import Clock
from orderguard.errors import UnknownAccountError, UnknownContractError
from orderguard.models import (
    Account,
    Contract,
    Order,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    PositionType,
    Trade,
)

from .contracts import ContractBook, default_contracts, root_of
from .matching import (
    Quote,
    apply_fill,
    average,
    execution_price,
    initial_trail_stop,
    join_price,
    limit_executable,
    money_of,
    quote_for,
    stop_reference,
    stop_triggered,
    touch,
)
from .records import AccountState, Bracket, LiveOrder, NetPosition, SimOrderResult, SimResult
from .rules import (
    PRODUCT_FEES,
    CloseFill,
    EntryAfterExit,
    ExchangeRules,
    Fees,
    FlipTrades,
    LegAnchor,
    LimitAggression,
    MarketableStop,
    ResizedLegFill,
    SizeLimit,
    SizeRejection,
    StopTrigger,
    TriggeredStopModify,
)
from .validation import (
    INVALID_STOP_PRICE_MESSAGE,
    check_modify,
    check_place,
    check_position_limit,
    check_size,
)

log = logging.getLogger(__name__)

_ZERO = Decimal(0)
_BUY = OrderSide.BUY
_LIMIT_TYPES = frozenset({OrderType.LIMIT, OrderType.JOIN_BID, OrderType.JOIN_ASK})


def _made_marketable(order: LiveOrder, new_limit: Decimal, quote: Quote) -> bool:
    """Whether moving ``order``'s limit to ``new_limit`` turns it from resting to executable."""
    old = order.limit_price
    if old is not None and limit_executable(order.side, old, quote):
        return False
    return limit_executable(order.side, new_limit, quote)


class ExchangeListener:
    """Handle returned by :meth:`SimExchange.listen`; ``close()`` stops delivery (idempotent)."""

    __slots__ = ("_exchange", "callback")

    def __init__(self, exchange: SimExchange, callback: Callable[[BrokerEvent], None]) -> None:
        self._exchange = exchange
        self.callback = callback

    def close(self) -> None:
        self._exchange._unlisten(self)


class SimExchange:
    """An in-memory futures exchange with ProjectX semantics. See the module docstring."""

    def __init__(
        self,
        clock: Clock,
        *,
        contracts: Iterable[Contract] | None = None,
        liquidity: int | None = None,
        fee_per_contract: Decimal = Decimal("0.37"),
        rules: ExchangeRules | None = None,
        reject_duplicate_tags: bool | None = None,
        close_cancels_brackets: bool | None = None,
        duplicate_tag_message: str | None = None,
    ) -> None:
        """``rules`` picks every unconfirmed reading (default: :meth:`ExchangeRules.default`).

        ``reject_duplicate_tags``, ``close_cancels_brackets`` and ``duplicate_tag_message`` are the
        older spelling of the rules fields of those names; when given they override ``rules``.
        """
        if liquidity is not None and liquidity <= 0:
            raise ValueError("liquidity must be positive (or None for unlimited)")
        self._clock = clock
        self._contracts = ContractBook(default_contracts() if contracts is None else contracts)
        self.liquidity = liquidity
        self.fee_per_contract = fee_per_contract
        keywords: dict[str, Any] = {
            "reject_duplicate_tags": reject_duplicate_tags,
            "close_cancels_brackets": close_cancels_brackets,
            "duplicate_tag_message": duplicate_tag_message,
        }
        given = {name: value for name, value in keywords.items() if value is not None}
        self.rules = dataclasses.replace(rules or ExchangeRules(), **given)
        self._accounts: dict[int, AccountState] = {}
        self._quotes: dict[str, Quote] = {}
        self._point_values: dict[str, Fraction] = {}
        # Working orders (Open and Suspended) per contract, in id order (dicts keep insertion).
        self._books: dict[str, dict[int, LiveOrder]] = {}
        self._order_ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self._position_ids = itertools.count(1)
        self._runs = itertools.count()
        self._listeners: tuple[ExchangeListener, ...] = ()
        self._outbox: deque[BrokerEvent] = deque()
        self._flushing = False
        self.listener_errors = 0

    # -- rules ------------------------------------------------------------------------------------
    @property
    def rules(self) -> ExchangeRules:
        """The readings in force; assigning new rules takes effect from the next call."""
        return self._rules

    @rules.setter
    def rules(self, rules: ExchangeRules) -> None:
        self._rules = rules
        # The matching loop reads these flags on every order; an attribute beats an enum compare.
        self._reject_marketable_stops = rules.marketable_stops is MarketableStop.REJECT
        self._stop_on_touch = rules.stop_trigger is StopTrigger.TOUCH
        self._exit_cancels_entry = rules.entry_after_exit is EntryAfterExit.CANCEL_REST
        self._resized_fill_cancels = rules.resized_leg_fill is ResizedLegFill.CANCEL_SIBLING
        self._anchor_on_average = rules.leg_anchor is LegAnchor.AVERAGE_FILL
        self._fill_rest = rules.triggered_stop_modify is TriggeredStopModify.FILL_REST
        self._sweep = rules.limit_aggression is LimitAggression.SWEEP
        self._close_at_once = rules.close_fill is CloseFill.IMMEDIATE
        self._fees_by_product = rules.fees is Fees.BY_PRODUCT
        self._split_flips = rules.flip_trades is FlipTrades.SPLIT

    @property
    def reject_duplicate_tags(self) -> bool:
        return self._rules.reject_duplicate_tags

    @property
    def close_cancels_brackets(self) -> bool:
        return self._rules.close_cancels_brackets

    @property
    def duplicate_tag_message(self) -> str:
        return self._rules.duplicate_tag_message

    # -- accounts and contracts -------------------------------------------------------------------
    def open_account(
        self,
        account_id: int = 1,
        name: str = "SIM-1",
        balance: Decimal = Decimal("50000"),
        *,
        native_brackets: bool = True,
        max_order_size: int | None = 50,
    ) -> Account:
        """Open an account; ``native_brackets=False`` is TopstepX's legacy Position Brackets."""
        if account_id in self._accounts:
            raise ValueError(f"account {account_id} already exists")
        state = AccountState(account_id, name, balance, native_brackets, max_order_size)
        self._accounts[account_id] = state
        return state.snapshot()

    def set_native_brackets(self, account_id: int, enabled: bool) -> None:
        """Switch between Auto OCO Brackets (True) and Position Brackets (False)."""
        self._account(account_id).native_brackets = enabled

    def set_max_order_size(self, account_id: int, max_order_size: int | None) -> None:
        self._account(account_id).max_order_size = max_order_size

    def account(self, account_id: int) -> Account:
        return self._account(account_id).snapshot()

    def accounts(self) -> list[Account]:
        return [state.snapshot() for state in self._accounts.values()]

    def capabilities(self, account_id: int) -> AccountCapabilities:
        state = self._account(account_id)
        return AccountCapabilities(
            native_brackets=state.native_brackets, max_order_size=state.max_order_size
        )

    def contract(self, id_or_symbol: str) -> Contract | None:
        """Look a contract up by id, symbol id, root, CME ticker (NQ, ES) or name."""
        return self._contracts.get(id_or_symbol)

    def contracts(self) -> list[Contract]:
        return self._contracts.all()

    def search_contracts(self, text: str, limit: int = 20) -> list[Contract]:
        return self._contracts.search(text, limit)

    # -- market -----------------------------------------------------------------------------------
    def set_price(self, contract_id: str, price: Decimal) -> None:
        """Move the market of a contract to ``price`` (its last), then match its working orders."""
        contract = self._contracts.get(contract_id)
        if contract is None:
            raise UnknownContractError(f"unknown contract {contract_id!r}")
        if not price.is_finite() or price <= 0 or not contract.is_aligned(price):
            raise ValueError(f"price {price} is not a positive multiple of {contract.tick_size}")
        quote = quote_for(price, contract.tick_size)
        self._quotes[contract.id] = quote
        now = self._clock.now()
        if self._listeners:
            self._outbox.append(QuoteEvent(contract.id, price, quote.bid, quote.ask, now))
        book = self._books.get(contract.id)
        if book:
            self._run(list(book.values()), quote, now, arriving=False)
        self._flush()

    def quote(self, contract_id: str) -> Quote | None:
        contract = self._contracts.get(contract_id)
        return None if contract is None else self._quotes.get(contract.id)

    def last_price(self, contract_id: str) -> Decimal | None:
        quote = self.quote(contract_id)
        return None if quote is None else quote.last

    def best_bid(self, contract_id: str) -> Decimal | None:
        quote = self.quote(contract_id)
        return None if quote is None else quote.bid

    def best_ask(self, contract_id: str) -> Decimal | None:
        quote = self.quote(contract_id)
        return None if quote is None else quote.ask

    # -- queries ----------------------------------------------------------------------------------
    def orders(
        self, account_id: int, start: datetime | None = None, end: datetime | None = None
    ) -> list[Order]:
        """Every order of the account in any status created in ``[start, end]`` (inclusive;
        None: unbounded), in creation order. The window is applied before the snapshots are
        taken (a long-running exchange holds many finished orders)."""
        return [
            order.snapshot()
            for order in self._account(account_id).orders.values()
            if (start is None or start <= order.created) and (end is None or order.created <= end)
        ]

    def open_orders(self, account_id: int) -> list[Order]:
        """Working orders, excluding Suspended bracket legs (like ``Order/searchOpen``)."""
        return [
            order.snapshot()
            for order in self._account(account_id).orders.values()
            if order.status is OrderStatus.OPEN
        ]

    def order(self, account_id: int, order_id: int) -> Order | None:
        found = self._account(account_id).orders.get(order_id)
        return None if found is None else found.snapshot()

    def positions(self, account_id: int) -> list[Position]:
        """Open (non-flat) positions."""
        return [pos.snapshot() for pos in self._account(account_id).positions.values()]

    def position_size(self, account_id: int, contract_id: str) -> int:
        """Signed net size (long positive) of the account in a contract; 0 when flat."""
        contract = self._contracts.get(contract_id)
        if contract is None:
            return 0
        pos = self._account(account_id).positions.get(contract.id)
        return 0 if pos is None else pos.size

    def trades(self, account_id: int) -> list[Trade]:
        return list(self._account(account_id).trades)

    # -- events -----------------------------------------------------------------------------------
    def listen(self, callback: Callable[[BrokerEvent], None]) -> ExchangeListener:
        """Call ``callback`` synchronously, in order, with every event after each state change.

        A callback that raises is logged and counted in ``listener_errors``; the others still run.
        """
        listener = ExchangeListener(self, callback)
        self._listeners = (*self._listeners, listener)
        return listener

    def _unlisten(self, listener: ExchangeListener) -> None:
        self._listeners = tuple(item for item in self._listeners if item is not listener)

    def _flush(self) -> None:
        # A callback that mutates the exchange re-enters here: its events join the same queue and
        # are delivered after the current ones, so every listener sees one global order.
        if self._flushing:
            return
        self._flushing = True
        try:
            outbox = self._outbox
            while outbox:
                event = outbox.popleft()
                for listener in self._listeners:
                    try:
                        listener.callback(event)
                    except Exception:
                        self.listener_errors += 1
                        log.exception("sim exchange listener failed on %r", event)
        finally:
            self._flushing = False

    def _emit_order(self, order: LiveOrder) -> None:
        if self._listeners:
            self._outbox.append(OrderEvent(order.snapshot()))

    # -- placing ----------------------------------------------------------------------------------
    def place(self, request: OrderRequest) -> SimOrderResult:
        """``Order/place``: validate like the gateway, create the order, match it at once."""
        result = self._place(request)
        self._flush()
        return result

    def _place(self, request: OrderRequest) -> SimOrderResult:
        account = self._accounts.get(request.account_id)
        if account is None:
            return SimOrderResult(PlaceCode.ACCOUNT_NOT_FOUND, "Account not found.")
        # The gateway takes exact contract ids only; aliases are for people, not for Order/place.
        contract = self._contracts.get_exact(request.contract_id)
        if contract is None:
            return SimOrderResult(PlaceCode.CONTRACT_NOT_FOUND, "Contract not found.")
        if not contract.active:
            return SimOrderResult(PlaceCode.CONTRACT_NOT_ACTIVE, "Contract is not active.")
        quote = self._quotes.get(contract.id)
        tag = request.custom_tag
        rules = self._rules
        problem = check_place(
            request,
            contract,
            max_order_size=None,  # the size limit is a risk rule, checked below
            has_market=quote is not None,
            tag_taken=rules.reject_duplicate_tags and tag is not None and tag in account.tags,
            native_brackets=account.native_brackets,
            duplicate_tag_message=rules.duplicate_tag_message,
            min_stop_loss_ticks=rules.min_stop_loss_ticks,
        )
        if problem is not None:
            return SimOrderResult(PlaceCode.ORDER_REJECTED, problem)
        problem = None
        if account.max_order_size is not None:
            problem = self._check_size_limit(account, contract, request.side, request.size)
        if problem is not None:
            if rules.size_rejection is SizeRejection.REJECTED_ORDER:
                return self._record_rejection(account, contract, request, problem)
            return SimOrderResult(PlaceCode.ORDER_REJECTED, problem)
        if request.type is OrderType.STOP:
            assert quote is not None and request.stop_price is not None  # checked by check_place
            problem = self._check_stop_price(request.side, request.stop_price, quote)
            if problem is not None:
                return SimOrderResult(PlaceCode.ORDER_REJECTED, problem)

        now = self._clock.now()
        order = self._new_order(
            account, contract, now, kind=request.type, side=request.side, size=request.size
        )
        order.custom_tag = tag
        kind = request.type
        if kind is OrderType.LIMIT:
            order.limit_price = request.limit_price
        elif kind is OrderType.STOP:
            order.stop_price = request.stop_price
        elif kind is OrderType.TRAILING_STOP and quote is not None:
            order.trail_price = request.trail_price
            assert request.trail_price is not None  # checked by check_place
            order.stop_price = initial_trail_stop(request.side, quote.last, request.trail_price)
        elif kind in (OrderType.JOIN_BID, OrderType.JOIN_ASK) and quote is not None:
            order.limit_price = join_price(kind, quote)
        if tag is not None:
            account.tags.add(tag)
        self._emit_order(order)
        self._attach_brackets(order, request, account, quote, now)
        if quote is not None:
            self._run([order], quote, now, arriving=True)
        return SimOrderResult(order_id=order.id)

    def _check_size_limit(
        self, account: AccountState, contract: Contract, side: OrderSide, open_qty: int
    ) -> str | None:
        """The account's size limit on an order that may still fill ``open_qty`` contracts."""
        limit = account.max_order_size
        if limit is None:
            return None
        if self._rules.size_limit is SizeLimit.ORDER:
            return check_size(open_qty, limit)
        position = account.positions.get(contract.id)
        held = 0 if position is None else position.size
        return check_position_limit(held, side.sign * open_qty, limit)

    def _record_rejection(
        self, account: AccountState, contract: Contract, request: OrderRequest, message: str
    ) -> SimOrderResult:
        """A Rejected order with an id, for a placement the size limit refused (see the rules)."""
        order = self._new_order(
            account,
            contract,
            self._clock.now(),
            kind=request.type,
            side=request.side,
            size=request.size,
            status=OrderStatus.REJECTED,
        )
        self._retire(order)  # never on the book
        order.limit_price = request.limit_price
        order.stop_price = request.stop_price
        order.trail_price = request.trail_price
        order.custom_tag = request.custom_tag
        if request.custom_tag is not None:
            account.tags.add(request.custom_tag)
        self._emit_order(order)
        return SimOrderResult(PlaceCode.ORDER_REJECTED, message, order_id=order.id)

    def _new_order(
        self,
        account: AccountState,
        contract: Contract,
        now: datetime,
        *,
        kind: OrderType,
        side: OrderSide,
        size: int,
        status: OrderStatus = OrderStatus.OPEN,
        parent_order_id: int | None = None,
    ) -> LiveOrder:
        order = LiveOrder(
            next(self._order_ids),
            account_id=account.id,
            contract=contract,
            now=now,
            status=status,
            order_type=kind,
            side=side,
            size=size,
            parent_order_id=parent_order_id,
        )
        account.orders[order.id] = order
        self._books.setdefault(contract.id, {})[order.id] = order
        return order

    def _attach_brackets(
        self,
        entry: LiveOrder,
        request: OrderRequest,
        account: AccountState,
        quote: Quote | None,
        now: datetime,
    ) -> None:
        specs = [s for s in (request.stop_loss_bracket, request.take_profit_bracket) if s]
        if not specs:
            return
        bracket = Bracket(entry)
        entry.bracket = bracket
        # Until the entry fills, legs are priced off where the entry is expected to fill.
        if entry.limit_price is not None:
            provisional = entry.limit_price
        elif entry.stop_price is not None:
            provisional = entry.stop_price
        else:
            assert quote is not None  # a market entry needs a market (checked by check_place)
            provisional = touch(entry.side, quote)
        for spec in specs:
            leg = self._new_order(
                account,
                entry.contract,
                now,
                kind=spec.type,
                side=entry.side.opposite,
                size=entry.size,
                status=OrderStatus.SUSPENDED,
                parent_order_id=entry.id,
            )
            leg.bracket = bracket
            leg.bracket_ticks = spec.ticks
            self._anchor_leg(leg, provisional)
            bracket.legs.append(leg)
            self._emit_order(leg)

    # -- cancelling and modifying -----------------------------------------------------------------
    def cancel(self, account_id: int, order_id: int) -> SimResult:
        """``Order/cancel``. A filled or already cancelled order answers code 3 (Rejected)."""
        account = self._accounts.get(account_id)
        if account is None:
            return SimResult(CancelCode.ACCOUNT_NOT_FOUND, "Account not found.")
        order = account.orders.get(order_id)
        if order is None:
            return SimResult(CancelCode.ORDER_NOT_FOUND, "Order not found.")
        if not order.is_working:
            return SimResult(CancelCode.REJECTED, f"Order is {order.status.name.lower()}.")
        self._cancel(order, self._clock.now())
        self._flush()
        return SimResult()

    def modify(
        self,
        account_id: int,
        order_id: int,
        *,
        size: int | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        trail_price: Decimal | None = None,
    ) -> SimResult:
        """``Order/modify``: change size or prices of a working order; then match it again.

        A new ``trail_price`` restarts the trailing stop from the current market. A modified
        bracket leg price is kept (no longer re-anchored on later entry fills).
        """
        account = self._accounts.get(account_id)
        if account is None:
            return SimResult(ModifyCode.ACCOUNT_NOT_FOUND, "Account not found.")
        order = account.orders.get(order_id)
        if order is None:
            return SimResult(ModifyCode.ORDER_NOT_FOUND, "Order not found.")
        if not order.is_working:
            return SimResult(ModifyCode.REJECTED, f"Order is {order.status.name.lower()}.")
        problem = check_modify(
            order.type,
            order.contract,
            fill_volume=order.fill_volume,
            max_order_size=None,  # the size limit is checked below, on the unfilled rest
            size=size,
            limit_price=limit_price,
            stop_price=stop_price,
            trail_price=trail_price,
        )
        if problem is None and size is not None:
            open_qty = (
                size if self._rules.size_limit is SizeLimit.ORDER else size - order.fill_volume
            )
            problem = self._check_size_limit(account, order.contract, order.side, open_qty)
        quote = self._quotes.get(order.contract.id)
        if (
            problem is None
            and stop_price is not None
            and order.status is OrderStatus.OPEN
            and quote is not None
        ):
            problem = self._check_stop_price(order.side, stop_price, quote)
        if problem is not None:
            return SimResult(ModifyCode.REJECTED, problem)
        if size is None and limit_price is None and stop_price is None and trail_price is None:
            return SimResult()
        if size is not None:
            if order.parent_order_id is not None and size != order.size:
                order.resized = True
            order.size = size
        # SWEEP: any modify re-matches the order as if it arrived. ARRIVAL_ONLY: only a new price
        # that makes it marketable does (a new stop price may elect a stop).
        rematch = self._sweep or stop_price is not None or trail_price is not None
        if limit_price is not None:
            if not rematch and quote is not None:
                rematch = _made_marketable(order, limit_price, quote)
            order.limit_price = limit_price
        # A triggered stop is a market order: FILL_REST keeps it one, REARM makes it a stop again.
        stays_triggered = order.triggered and self._fill_rest
        if stop_price is not None:
            order.stop_price = stop_price
            order.triggered = stays_triggered
        if trail_price is not None:
            order.trail_price = trail_price
            if quote is not None and stop_price is None:
                order.stop_price = initial_trail_stop(order.side, quote.last, trail_price)
            order.triggered = stays_triggered
        if limit_price is not None or stop_price is not None or trail_price is not None:
            order.pinned = True
        now = self._clock.now()
        order.updated = now
        self._emit_order(order)
        if rematch and order.status is OrderStatus.OPEN and quote is not None:
            self._run([order], quote, now, arriving=True)
        self._flush()
        return SimResult()

    def _check_stop_price(self, side: OrderSide, stop: Decimal, quote: Quote) -> str | None:
        """Refuse a stop the market has already reached, if the rules say so (see the rules)."""
        if not self._reject_marketable_stops:
            return None
        reference = stop_reference(side, quote, on_touch=self._stop_on_touch)
        return INVALID_STOP_PRICE_MESSAGE if stop_triggered(side, stop, reference) else None

    def _cancel(self, order: LiveOrder, now: datetime) -> None:
        order.status = OrderStatus.CANCELLED
        order.updated = now
        self._retire(order)
        self._emit_order(order)
        bracket = order.bracket
        if bracket is not None and order is bracket.entry and order.fill_volume == 0:
            for leg in bracket.legs:
                if leg.is_working:
                    self._cancel(leg, now)

    def _retire(self, order: LiveOrder) -> None:
        book = self._books.get(order.contract.id)
        if book is not None:
            book.pop(order.id, None)

    # -- closing positions ------------------------------------------------------------------------
    def close_position(self, account_id: int, contract_id: str) -> SimOrderResult:
        """``Position/closeContract``: flatten with a market order filled at once at the touch."""
        account = self._accounts.get(account_id)
        if account is None:
            return SimOrderResult(CloseCode.ACCOUNT_NOT_FOUND, "Account not found.")
        contract = self._contracts.get_exact(contract_id)
        if contract is None:
            return SimOrderResult(CloseCode.CONTRACT_NOT_FOUND, "Contract not found.")
        if not contract.active:
            return SimOrderResult(CloseCode.CONTRACT_NOT_ACTIVE, "Contract is not active.")
        position = account.positions.get(contract.id)
        if position is None:
            return SimOrderResult(CloseCode.POSITION_NOT_FOUND, "Position not found.")
        quote = self._quotes.get(contract.id)
        if quote is None:
            return SimOrderResult(CloseCode.ORDER_REJECTED, "No market price is available.")
        now = self._clock.now()
        order_id = self._flatten(account, contract, -position.size, quote, now)
        if self.close_cancels_brackets:
            for order in list(account.orders.values()):
                if (
                    order.parent_order_id is not None
                    and order.contract is contract
                    and order.is_working
                ):
                    self._cancel(order, now)
        self._flush()
        return SimOrderResult(order_id=order_id)

    def partial_close(self, account_id: int, contract_id: str, size: int) -> SimOrderResult:
        """``Position/partialCloseContract``: reduce the position by ``size`` at the touch."""
        account = self._accounts.get(account_id)
        if account is None:
            return SimOrderResult(PartialCloseCode.ACCOUNT_NOT_FOUND, "Account not found.")
        contract = self._contracts.get_exact(contract_id)
        if contract is None:
            return SimOrderResult(PartialCloseCode.CONTRACT_NOT_FOUND, "Contract not found.")
        if not contract.active:
            return SimOrderResult(PartialCloseCode.CONTRACT_NOT_ACTIVE, "Contract is not active.")
        position = account.positions.get(contract.id)
        if position is None:
            return SimOrderResult(PartialCloseCode.POSITION_NOT_FOUND, "Position not found.")
        if size <= 0 or size > abs(position.size):
            return SimOrderResult(
                PartialCloseCode.INVALID_CLOSE_SIZE,
                f"Invalid close size ({size}). The position size is {abs(position.size)}.",
            )
        quote = self._quotes.get(contract.id)
        if quote is None:
            # RS reports errorCode 6 with no message when the market is closed or unpriced.
            return SimOrderResult(PartialCloseCode.ORDER_REJECTED, None)
        direction = 1 if position.size > 0 else -1
        order_id = self._flatten(account, contract, -direction * size, quote, self._clock.now())
        self._flush()
        return SimOrderResult(order_id=order_id)

    def _flatten(
        self,
        account: AccountState,
        contract: Contract,
        signed_qty: int,
        quote: Quote,
        now: datetime,
    ) -> int:
        side = OrderSide.BUY if signed_qty > 0 else OrderSide.SELL
        order = self._new_order(
            account, contract, now, kind=OrderType.MARKET, side=side, size=abs(signed_qty)
        )
        order.unlimited = self._close_at_once
        self._emit_order(order)
        self._run([order], quote, now, arriving=True)
        return order.id

    # -- matching and fills -----------------------------------------------------------------------
    def _run(self, orders: list[LiveOrder], quote: Quote, now: datetime, *, arriving: bool) -> None:
        """One matching run: each Open order is evaluated at most once, in list order.

        Bracket legs activated during the run are appended and evaluated in the same run (as
        arriving orders); the ``run`` stamp keeps an order from being evaluated twice, which is what
        bounds a fill to ``liquidity`` contracts per order per run.
        """
        run = next(self._runs)
        liquidity = self.liquidity
        stop_on_touch = self._stop_on_touch
        bid, ask = quote.bid, quote.ask
        index = 0
        while index < len(orders):
            order = orders[index]
            index += 1
            if order.run == run or order.status is not OrderStatus.OPEN:
                continue
            order.run = run
            # Fast path for the common case, a resting limit the market has not reached: the same
            # answer execution_price would give, without the call (most of a step's work).
            if not arriving and not order.aggressive and order.type in _LIMIT_TYPES:
                limit = order.limit_price
                if limit is not None and (ask > limit if order.side is _BUY else bid < limit):
                    continue
            before = order.stop_price
            price = execution_price(order, quote, arriving=arriving, stop_on_touch=stop_on_touch)
            if price is None:
                if order.stop_price != before:  # a trailing stop moved
                    order.updated = now
                    self._emit_order(order)
                continue
            qty = order.size - order.fill_volume
            if liquidity is not None and not order.unlimited and qty > liquidity:
                qty = liquidity
            self._fill(order, qty, price, now, orders)

    def _fill(
        self, order: LiveOrder, qty: int, price: Decimal, now: datetime, run: list[LiveOrder]
    ) -> None:
        if not self._sweep:
            order.aggressive = False  # ARRIVAL_ONLY: what is left rests at its limit
        order.fill_volume += qty
        order.notional += price * qty
        # An order's first fill is at one price: no division needed for its average.
        filled = order.fill_volume
        order.filled_price = price if filled == qty else average(order.notional, filled)
        order.updated = now
        if filled >= order.size:
            order.status = OrderStatus.FILLED
            self._retire(order)
        self._emit_order(order)
        if self._split_flips:
            self._book_trade_halves(order, qty, price, now)
        else:
            self._book_trade(order, qty, price, now)
        bracket = order.bracket
        if bracket is not None:
            if order is bracket.entry:
                self._on_entry_fill(bracket, now, run)
            else:
                self._on_leg_fill(bracket, order, now)

    def _book_trade_halves(self, order: LiveOrder, qty: int, price: Decimal, now: datetime) -> None:
        """FlipTrades.SPLIT: a fill through zero is booked as its closing and opening halves."""
        position = self._accounts[order.account_id].positions.get(order.contract.id)
        held = 0 if position is None else position.size
        if held and (held > 0) != (order.side is _BUY) and qty > abs(held):
            self._book_trade(order, abs(held), price, now)
            qty -= abs(held)
        self._book_trade(order, qty, price, now)

    def _book_trade(self, order: LiveOrder, qty: int, price: Decimal, now: datetime) -> None:
        account = self._accounts[order.account_id]
        contract = order.contract
        position = account.positions.get(contract.id)
        if position is None:
            position = NetPosition(next(self._position_ids), account.id, contract, now)
            account.positions[contract.id] = position
        old_type = PositionType.LONG if position.size > 0 else PositionType.SHORT
        opening = position.size == 0
        change = apply_fill(position.size, position.average, order.side.sign * qty, price)
        pnl: Decimal | None = None
        if change.closed:
            pnl = money_of(change.points, self._point_value(contract))
        fee = self.fee_per_contract
        if self._fees_by_product:
            fee = PRODUCT_FEES.get(root_of(contract), fee)
        fees = fee * qty
        account.balance += (_ZERO if pnl is None else pnl) - fees
        trade = Trade(
            next(self._trade_ids), account.id, contract.id, now, price, pnl, fees,
            order.side, qty, False, order.id,
        )  # fmt: skip
        account.trades.append(trade)
        emit = bool(self._listeners)
        if emit:
            self._outbox.append(TradeEvent(trade))
        if change.flipped:
            position.size = 0
            if emit:
                self._outbox.append(PositionEvent(position.snapshot(flat_type=old_type)))
            position = NetPosition(next(self._position_ids), account.id, contract, now)
            account.positions[contract.id] = position
        position.size = change.size
        if change.average is not position.average:
            position.average = change.average
            # An opening fill's average is its price as sent; only a re-average needs rounding.
            opening = opening or change.flipped
            position.average_price = price if opening else change.average.rounded()
        if position.size == 0:
            del account.positions[contract.id]
        if emit:
            self._outbox.append(PositionEvent(position.snapshot(flat_type=old_type)))
            self._outbox.append(AccountEvent(account.snapshot()))

    # -- native brackets --------------------------------------------------------------------------
    def _anchor_leg(self, leg: LiveOrder, anchor: Decimal) -> None:
        """Price a bracket leg ``bracket_ticks`` ticks from ``anchor`` (aligned to the grid)."""
        contract = leg.contract
        ticks = leg.bracket_ticks or 0
        target = contract.align(anchor + contract.tick_size * ticks)
        if target <= 0:
            target = contract.tick_size
        if leg.type is OrderType.LIMIT:
            leg.limit_price = target
        elif leg.type is OrderType.TRAILING_STOP:
            leg.trail_price = contract.tick_size * abs(ticks)
            current = leg.stop_price
            if current is None or leg.status is OrderStatus.SUSPENDED:
                leg.stop_price = target
            elif leg.side is OrderSide.SELL:
                leg.stop_price = max(current, target)  # a trailing stop never loosens
            else:
                leg.stop_price = min(current, target)
        else:
            leg.stop_price = target

    def _on_entry_fill(self, bracket: Bracket, now: datetime, run: list[LiveOrder]) -> None:
        uncovered = bracket.uncovered()
        anchor = bracket.entry.filled_price
        if uncovered <= 0 or anchor is None:
            return
        for leg in bracket.legs:
            if not leg.is_working:
                continue
            leg.size = leg.fill_volume + uncovered
            first = leg.status is OrderStatus.SUSPENDED
            if not leg.pinned and (first or self._anchor_on_average):
                self._anchor_leg(leg, anchor)
            if leg.status is OrderStatus.SUSPENDED:
                leg.status = OrderStatus.OPEN
                leg.aggressive = True  # it arrives on the book now
            leg.updated = now
            self._emit_order(leg)
            run.append(leg)

    def _on_leg_fill(self, bracket: Bracket, leg: LiveOrder, now: datetime) -> None:
        uncovered = bracket.uncovered()
        # Under CANCEL_SIBLING a leg the client resized no longer mirrors the position: its fill
        # cancels the sibling like a plain OCO, whatever is still held.
        cancel_siblings = uncovered <= 0 or (leg.resized and self._resized_fill_cancels)
        for sibling in bracket.legs:
            if sibling is leg or not sibling.is_working:
                continue
            if cancel_siblings:
                self._cancel(sibling, now)
            elif sibling.size != sibling.fill_volume + uncovered:
                sibling.size = sibling.fill_volume + uncovered
                sibling.updated = now
                self._emit_order(sibling)
        if uncovered <= 0 and bracket.entry.is_working and self._exit_cancels_entry:
            self._cancel(bracket.entry, now)

    # -- helpers ----------------------------------------------------------------------------------
    def _point_value(self, contract: Contract) -> Fraction:
        """Dollars per price point of ``contract`` (tick value / tick size), exact and cached."""
        value = self._point_values.get(contract.id)
        if value is None:
            value = Fraction(contract.tick_value) / Fraction(contract.tick_size)
            self._point_values[contract.id] = value
        return value

    def _account(self, account_id: int) -> AccountState:
        state = self._accounts.get(account_id)
        if state is None:
            raise UnknownAccountError(f"unknown account {account_id}")
        return state


__all__ = ["ExchangeListener", "SimExchange"]
