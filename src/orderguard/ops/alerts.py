"""Alerts: incidents that need a person, told to a callback and an optional webhook, journaled.

:class:`Alerter` takes :class:`Alert` values from wherever an incident is noticed (the
:class:`~orderguard.ops.monitor.AlertMonitor`, the protection executor's overdue obligations, a
forced rollback that did not end safe) and, unless rate-limited, delivers each:

* to the user's callback (sync or async; its exceptions are logged and counted, never raised);
* to the webhook, a JSON ``POST`` through httpx2 (failures counted; the URL is never logged,
  since webhook URLs often carry a secret);
* to the journal as an event of kind ``alert`` (a journal that cannot be written is counted: the
  alert about *that* still reaches the callback and the webhook).

Rate limiting, so that a storm does not flood: the same (kind, subject) is told at most once per
``repeat_after`` seconds, and at most ``max_alerts`` alerts go out per ``window`` seconds overall.
What is held back is counted (:attr:`Alerter.stats` ``suppressed``) and the next alert delivered
says how many were held back before it (``details["suppressed_before"]``). Times come from the
injected clock.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

import httpx2

from orderguard.clock import Clock
from orderguard.errors import JournalError
from orderguard.journal.base import EventRecord, Journal, format_time

log = logging.getLogger("orderguard.ops.alerts")


class AlertKind(StrEnum):
    UNPROTECTED_EXPOSURE = "unprotected_exposure"
    OVER_COVERAGE = "over_coverage"
    ROLLBACK_UNCONFIRMED = "rollback_unconfirmed"
    JOURNAL_FAILURE = "journal_failure"
    BREAKER_OPEN = "breaker_open"


@dataclass(frozen=True, slots=True)
class Alert:
    kind: AlertKind
    subject: str
    """What the alert is about (an operation id, ``account/contract``, a breaker family): the
    key of the repeat suppression together with ``kind``."""
    message: str
    at: datetime
    operation_id: str | None = None
    account_id: int | None = None
    contract_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "subject": self.subject,
            "message": self.message,
            "at": format_time(self.at),
            "operation_id": self.operation_id,
            "account_id": self.account_id,
            "contract_id": self.contract_id,
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    repeat_after: float = 300.0
    """Seconds before the same (kind, subject) is told again."""
    max_alerts: int = 10
    window: float = 60.0
    unprotected_after: float = 3.0
    """Seconds a position may be naked or partly covered before it is an incident."""
    over_coverage_after: float = 3.0
    """Seconds stops may cover more than the position (an exit in flight is normal briefly)."""
    check_interval: float = 1.0
    webhook_timeout: float = 5.0

    def __post_init__(self) -> None:
        for name in ("repeat_after", "window", "check_interval", "webhook_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.max_alerts < 1:
            raise ValueError("max_alerts must be at least 1")
        if self.unprotected_after < 0 or self.over_coverage_after < 0:
            raise ValueError("thresholds must not be negative")


AlertCallback = Callable[[Alert], object | Awaitable[object]]


class Alerter:
    """Rate-limits and delivers alerts (see module docstring)."""

    def __init__(
        self,
        clock: Clock,
        *,
        policy: AlertPolicy | None = None,
        callback: AlertCallback | None = None,
        webhook: str | None = None,
        journal: Journal | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        max_recent: int = 100,
    ) -> None:
        self._clock = clock
        self.policy = policy or AlertPolicy()
        self._callbacks: list[AlertCallback] = [] if callback is None else [callback]
        self._webhook = webhook
        self._transport = transport
        self._client: httpx2.AsyncClient | None = None
        self.journal = journal
        self.stats: Counter[str] = Counter()
        self.recent: deque[Alert] = deque(maxlen=max_recent)
        self._last: dict[tuple[AlertKind, str], float] = {}
        self._sent: deque[float] = deque()
        self._held_back = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def add_callback(self, callback: AlertCallback) -> None:
        self._callbacks.append(callback)

    @property
    def webhook_configured(self) -> bool:
        return self._webhook is not None

    # -- raising --------------------------------------------------------------------------
    def raise_alert(self, alert: Alert) -> bool:
        """Deliver ``alert`` unless rate-limited; True when it goes out. Never raises."""
        now = self._clock.monotonic()
        self.stats["raised"] += 1
        key = (alert.kind, alert.subject)
        last = self._last.get(key)
        if last is not None and now - last < self.policy.repeat_after:
            return self._hold_back("repeat")
        while self._sent and now - self._sent[0] >= self.policy.window:
            self._sent.popleft()
        if len(self._sent) >= self.policy.max_alerts:
            return self._hold_back("storm")
        self._last[key] = now
        self._sent.append(now)
        if self._held_back:
            alert = replace(alert, details={**alert.details, "suppressed_before": self._held_back})
            self._held_back = 0
        self.stats["delivered"] += 1
        self.stats[f"kind_{alert.kind.value}"] += 1
        self.recent.append(alert)
        log.error("ALERT %s %s: %s", alert.kind.value, alert.subject, alert.message)
        self._spawn(self._deliver(alert))
        return True

    def _hold_back(self, why: str) -> bool:
        self.stats["suppressed"] += 1
        self.stats[f"suppressed_{why}"] += 1
        self._held_back += 1
        return False

    def _spawn(self, coro: Awaitable[None]) -> None:
        try:
            task = asyncio.ensure_future(coro)
        except RuntimeError:  # no running loop (a synchronous caller): nothing async to do
            if inspect.iscoroutine(coro):
                coro.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, alert: Alert) -> None:
        # Callback, webhook and journal are independent: one failing never stops the others.
        await asyncio.gather(self._tell_callbacks(alert), self._post(alert), self._journal(alert))

    async def _tell_callbacks(self, alert: Alert) -> None:
        for callback in list(self._callbacks):
            try:
                result = callback(alert)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                self.stats["callback_errors"] += 1
                log.exception("alert callback raised")

    async def _post(self, alert: Alert) -> None:
        if self._webhook is None:
            return
        if self._client is None:
            self._client = httpx2.AsyncClient(
                transport=self._transport, timeout=self.policy.webhook_timeout
            )
        try:
            response = await self._client.post(self._webhook, json=alert.as_dict())
        except httpx2.HTTPError as exc:
            self.stats["webhook_failures"] += 1
            log.warning(
                "alert webhook failed: %s", type(exc).__name__
            )  # no URL: it may hold a secret
            return
        if response.status_code >= 400:
            self.stats["webhook_failures"] += 1
            log.warning("alert webhook answered HTTP %s", response.status_code)
        else:
            self.stats["webhook_sent"] += 1

    async def _journal(self, alert: Alert) -> None:
        if self.journal is None:
            return
        record = EventRecord(
            operation_id=alert.operation_id,
            kind="alert",
            key=f"alert:{alert.kind.value}:{alert.subject}:{format_time(alert.at)}",
            payload=alert.as_dict(),
            at=alert.at,
        )
        try:
            await self.journal.record_event(record)
            self.stats["journaled"] += 1
        except JournalError:
            self.stats["journal_failures"] += 1
            log.warning("alert %s not journaled: the journal cannot be written", alert.kind)

    async def drain(self) -> None:
        """Wait for deliveries in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        await self.drain()
        if self._client is not None:
            await self._client.aclose()
            self._client = None


__all__ = ["Alert", "AlertCallback", "AlertKind", "AlertPolicy", "Alerter"]
