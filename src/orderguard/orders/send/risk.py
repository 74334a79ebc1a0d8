"""Risk limits: position limits per contract and per account, and a daily loss limit.

Checked by the placement pipeline at the same gate as the ambiguity latch: only for a request
that would increase exposure (whether it does is decided there, from the account's position),
never for a protective or flattening one — a limit must never stand between a position and its
stop or its exit.

A position is counted at its worst case: the net position as if every working order on one side
filled, and the request with it. A strategy resting ten one-lot entries cannot pass a limit of
two one lot at a time, and an OCO pair of exits counts as what it is (both legs may fill).

:func:`evaluate` is pure (facts in, a refusal or None out); :class:`RiskGate` reads the facts
(positions, working orders, the day's trades) from the broker only for the limits that are
switched on, refuses when it cannot read them (a limit it cannot check is not a pass), and
journals every refusal as an event (kind ``risk_refused``) of the operation the request belongs
to, if any.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from orderguard.clock import Clock
from orderguard.config import OrderManagerConfig
from orderguard.errors import JournalError, OrderGuardError, RiskLimitError
from orderguard.journal.base import EventRecord, Journal
from orderguard.models import Contract, Order, OrderRequest, OrderSide, Position, Trade
from orderguard.orders.metrics import Counters, Metric, risk_refusal

log = logging.getLogger("orderguard.orders")

RISK_EVENT = "risk_refused"


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The limits in force; each None is switched off."""

    per_contract: int | None = None
    overrides: Mapping[str, int] | None = None
    per_account: int | None = None
    daily_loss: Decimal | None = None

    @classmethod
    def from_config(cls, config: OrderManagerConfig) -> RiskLimits:
        return cls(
            per_contract=config.max_position_per_contract,
            overrides=dict(config.position_limits),
            per_account=config.max_position_per_account,
            daily_loss=config.daily_loss_limit,
        )

    @property
    def watches_positions(self) -> bool:
        return bool(self.per_contract or self.overrides or self.per_account)

    @property
    def active(self) -> bool:
        return self.watches_positions or self.daily_loss is not None

    def contract_limit(self, contract: Contract) -> int | None:
        overrides = self.overrides or {}
        for key in (contract.id, contract.symbol_id):
            if key in overrides:
                return overrides[key]
        return self.per_contract


class Resting(Protocol):
    """What a position's worst case needs of an order that may still fill."""

    @property
    def contract_id(self) -> str: ...

    @property
    def side(self) -> OrderSide: ...

    @property
    def remaining(self) -> int: ...

    @property
    def is_working(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Reservation:
    """A request that passed the gate and is being sent. Counted as working by every check
    whose reads may not show it: those running while it is sent, and those that began reading
    before its send returned (their reads may predate it). So two entries checked at once
    cannot both pass on the same room under a limit."""

    contract_id: str
    side: OrderSide
    remaining: int
    is_working: bool = True


@dataclass(slots=True)
class _Held:
    reservation: Reservation
    released: int | None = None  # the gate's sequence number at release


@dataclass(frozen=True, slots=True)
class AccountFacts:
    """What the limits are judged against: broker truth of one account."""

    positions: Mapping[str, int]
    """Signed net position by contract id (flat contracts may be absent)."""
    working: tuple[Resting, ...] = ()
    """Working orders of the account (any contract), and requests being sent."""
    realized: Decimal = Decimal(0)
    """The trading day's realized P&L net of fees."""


@dataclass(frozen=True, slots=True)
class Refusal:
    limit: str  # contract_position | account_position | daily_loss | unverified
    message: str
    value: Any = None
    allowed: Any = None


def worst_case(position: int, working: Iterable[Resting], extra: int = 0) -> int:
    """The largest absolute net position reachable if the working orders of either side
    (plus ``extra``, signed, the request) filled: ``max(|pos + buys|, |pos - sells|)``."""
    buys = sum(o.remaining for o in working if o.side is OrderSide.BUY)
    sells = sum(o.remaining for o in working if o.side is OrderSide.SELL)
    up = position + buys + max(extra, 0)
    down = position - sells + min(extra, 0)
    return max(abs(up), abs(down))


def realized_pnl(trades: Iterable[Trade]) -> Decimal:
    """Realized P&L net of fees of the (non-voided) trades: half-turns only cost their fees."""
    total = Decimal(0)
    for trade in trades:
        if trade.voided:
            continue
        total += (trade.profit_and_loss or Decimal(0)) - trade.fees
    return total


def evaluate(
    limits: RiskLimits, request: OrderRequest, contract: Contract, facts: AccountFacts
) -> Refusal | None:
    """The first limit the request would break, or None. Pure."""
    where = f"{contract.id} (account {request.account_id})"
    if limits.daily_loss is not None and facts.realized <= -limits.daily_loss:
        return Refusal(
            "daily_loss",
            f"new exposure on {where} refused: the day's realized P&L {facts.realized} is at "
            f"or below the daily loss limit -{limits.daily_loss}",
            facts.realized,
            -limits.daily_loss,
        )
    signed = request.size if request.side is OrderSide.BUY else -request.size
    by_contract: dict[str, list[Resting]] = {}
    for order in facts.working:
        if order.is_working:
            by_contract.setdefault(order.contract_id, []).append(order)
    cap = limits.contract_limit(contract)
    if cap is not None:
        value = worst_case(
            facts.positions.get(contract.id, 0), by_contract.get(contract.id, ()), signed
        )
        if value > cap:
            return Refusal(
                "contract_position",
                f"new exposure on {where} refused: it could make the position {value} "
                f"contracts (working orders counted as filled), above the limit of {cap}",
                value,
                cap,
            )
    if limits.per_account is not None:
        total = 0
        for contract_id in {*facts.positions, *by_contract, contract.id}:
            extra = signed if contract_id == contract.id else 0
            total += worst_case(
                facts.positions.get(contract_id, 0), by_contract.get(contract_id, ()), extra
            )
        if total > limits.per_account:
            return Refusal(
                "account_position",
                f"new exposure on {where} refused: the account's positions could reach {total} "
                f"contracts (working orders counted as filled), above the limit of "
                f"{limits.per_account}",
                total,
                limits.per_account,
            )
    return None


def trading_day_start(now: datetime, start: str, zone: str) -> datetime:
    """The start of the trading day ``now`` falls in (``start`` is ``HH:MM`` local time)."""
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    hour, minute = (int(part) for part in start.split(":"))
    begin = datetime.combine(local.date(), time(hour, minute), tzinfo=tz)
    if begin > local:
        begin = datetime.combine(local.date() - timedelta(days=1), time(hour, minute), tzinfo=tz)
    return begin


class AccountReads(Protocol):
    """The broker reads the gate needs (the manager's guarded broker)."""

    async def search_positions(self, account_id: int) -> list[Position]: ...

    async def search_open_orders(self, account_id: int) -> list[Order]: ...

    async def search_trades(
        self, account_id: int, start: datetime, end: datetime | None = None
    ) -> list[Trade]: ...


class RiskGate:
    """Reads the facts a request is judged on and refuses it (typed, journaled) if a limit
    would break. ``operation_of(account, tag)`` names the operation a request belongs to."""

    def __init__(
        self,
        config: OrderManagerConfig,
        broker: AccountReads,
        clock: Clock,
        journal: Callable[[], Journal],
        stats: Counters,
        operation_of: Callable[[int, str], str | None] = lambda account, tag: None,
    ) -> None:
        self._config = config
        self.limits = RiskLimits.from_config(config)
        self._broker = broker
        self._clock = clock
        self._journal = journal
        self._stats = stats
        self._operation_of = operation_of
        self._reserved: dict[int, list[_Held]] = {}
        self._seq = 0  # counts releases
        self._reading: list[int] = []  # the sequence number each running check began at

    @contextlib.asynccontextmanager
    async def reserve(self, request: OrderRequest, contract: Contract) -> AsyncIterator[None]:
        """Check ``request`` (exposure), then hold its room while it is sent."""
        await self.check(request, contract)
        if not self.limits.watches_positions:
            yield
            return
        held = _Held(Reservation(request.contract_id, request.side, request.size))
        self._reserved.setdefault(request.account_id, []).append(held)
        try:
            yield
        finally:
            self._seq += 1
            held.released = self._seq
            self._prune()

    def reserved(self, account_id: int) -> list[Reservation]:
        """Reservations a check starting now would count (sends in progress)."""
        return [h.reservation for h in self._reserved.get(account_id, ()) if h.released is None]

    def _prune(self) -> None:
        oldest = min(self._reading, default=self._seq)
        for account_id, bucket in list(self._reserved.items()):
            kept = [h for h in bucket if h.released is None or h.released > oldest]
            if kept:
                self._reserved[account_id] = kept
            else:
                del self._reserved[account_id]

    async def check(self, request: OrderRequest, contract: Contract) -> None:
        """Raise :class:`RiskLimitError` if ``request`` (exposure) would break a limit."""
        if not self.limits.active:
            return
        start = self._seq
        self._reading.append(start)
        try:
            facts = await self._facts(request.account_id, start)
        except OrderGuardError as exc:
            refusal = Refusal(
                "unverified",
                f"new exposure on {contract.id} (account {request.account_id}) refused: the "
                f"account could not be read to check the risk limits ({type(exc).__name__})",
            )
        else:
            found = evaluate(self.limits, request, contract, facts)
            if found is None:
                return
            refusal = found
        finally:
            self._reading.remove(start)
            self._prune()
        self._stats[Metric.RISK_REFUSALS] += 1
        self._stats[risk_refusal(refusal.limit)] += 1
        await self._record(request, refusal)
        raise RiskLimitError(
            refusal.message,
            limit=refusal.limit,
            account_id=request.account_id,
            contract_id=request.contract_id,
            value=refusal.value,
            allowed=refusal.allowed,
        )

    async def check_growth(self, order: Order, growth: int, contract: Contract) -> None:
        """A working order's size raised by ``growth``: judged as a new order of that size
        (the order itself is already counted among the working ones)."""
        await self.check(
            OrderRequest(
                account_id=order.account_id,
                contract_id=order.contract_id,
                type=order.type,
                side=order.side,
                size=growth,
                custom_tag=order.custom_tag,
            ),
            contract,
        )

    async def _facts(self, account_id: int, began: int) -> AccountFacts:
        positions: dict[str, int] = {}
        working: tuple[Resting, ...] = ()
        realized = Decimal(0)
        if self.limits.watches_positions:
            for position in await self._broker.search_positions(account_id):
                if position.size:
                    positions[position.contract_id] = position.signed_size
            working = tuple(await self._broker.search_open_orders(account_id))
        if self.limits.daily_loss is not None:
            day = trading_day_start(
                self._clock.now(),
                self._config.trading_day_start,
                self._config.trading_day_timezone,
            )
            realized = realized_pnl(await self._broker.search_trades(account_id, day))
        # Taken after the awaits, and evaluated and reserved with no await in between: every
        # send in progress now, or released since this check began reading, counts.
        pending = tuple(
            h.reservation
            for h in self._reserved.get(account_id, ())
            if h.released is None or h.released > began
        )
        return AccountFacts(positions, (*working, *pending), realized)

    async def _record(self, request: OrderRequest, refusal: Refusal) -> None:
        tag = request.custom_tag or ""
        now = self._clock.now()
        payload = {
            "limit": refusal.limit,
            "message": refusal.message,
            "value": refusal.value,
            "allowed": refusal.allowed,
            "account_id": request.account_id,
            "contract_id": request.contract_id,
            "side": request.side.name,
            "size": request.size,
            "custom_tag": tag,
        }
        record = EventRecord(
            operation_id=self._operation_of(request.account_id, tag) if tag else None,
            kind=RISK_EVENT,
            key=f"risk:{request.account_id}:{tag}:{now.isoformat()}",
            payload=payload,
            at=now,
        )
        try:
            await self._journal().record_event(record)
        except JournalError as exc:
            # The refusal stands either way; only its record is missing.
            self._stats[Metric.JOURNAL_FAILURES] += 1
            log.error("risk refusal of %s not journaled: %s", tag, exc)
        log.warning("risk limit: %s", refusal.message)


__all__ = [
    "RISK_EVENT",
    "AccountFacts",
    "Refusal",
    "Reservation",
    "Resting",
    "RiskGate",
    "RiskLimits",
    "evaluate",
    "realized_pnl",
    "trading_day_start",
    "worst_case",
]
