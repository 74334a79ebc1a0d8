"""Alerts: rate limiting, delivery (callback, webhook, journal), the incidents the monitor sees."""

from __future__ import annotations

import json
from typing import Any

import httpx2

from orderguard.clock import VirtualClock
from orderguard.journal.memory import MemoryJournal
from orderguard.ops.alerts import Alert, Alerter, AlertKind, AlertPolicy
from orderguard.ops.monitor import AlertMonitor, MonitorSources

from .rig import BUY, MNQ, D, make_rig


def _alert(
    clock: VirtualClock, subject: str = "op1", kind: AlertKind = AlertKind.BREAKER_OPEN
) -> Alert:
    return Alert(kind, subject=subject, message=f"{kind} {subject}", at=clock.now())


async def test_the_same_incident_is_told_once_per_repeat_interval() -> None:
    """A repeat of (kind, subject) inside repeat_after is held back; after it, told again."""
    clock = VirtualClock()
    told: list[Alert] = []
    alerter = Alerter(clock, policy=AlertPolicy(repeat_after=10.0), callback=told.append)
    assert alerter.raise_alert(_alert(clock))
    assert not alerter.raise_alert(_alert(clock))
    await clock.advance(10.0)
    assert alerter.raise_alert(_alert(clock))
    await alerter.drain()
    assert len(told) == 2 and told[1].details["suppressed_before"] == 1
    assert alerter.stats["suppressed_repeat"] == 1


async def test_a_storm_is_capped_per_window() -> None:
    """100 distinct incidents in one window: max_alerts go out, the rest are counted."""
    clock = VirtualClock()
    told: list[Alert] = []
    alerter = Alerter(clock, policy=AlertPolicy(max_alerts=5, window=60.0), callback=told.append)
    sent = [alerter.raise_alert(_alert(clock, f"op{i}")) for i in range(100)]
    await alerter.drain()
    assert sum(sent) == 5 and len(told) == 5
    assert alerter.stats["suppressed_storm"] == 95
    await clock.advance(60.0)
    assert alerter.raise_alert(_alert(clock, "later"))
    await alerter.drain()
    assert told[-1].details["suppressed_before"] == 95


async def test_each_alert_is_posted_to_the_webhook_and_journaled() -> None:
    """The webhook gets the alert as JSON; the journal holds it as an 'alert' event."""
    clock = VirtualClock()
    journal = MemoryJournal(clock)
    await journal.open()
    posted: list[dict[str, Any]] = []

    def hook(request: httpx2.Request) -> httpx2.Response:
        posted.append(json.loads(request.content))
        return httpx2.Response(204)

    alerter = Alerter(
        clock,
        webhook="https://hooks.example/secret-path",
        journal=journal,
        transport=httpx2.MockTransport(hook),
    )
    alert = Alert(
        AlertKind.ROLLBACK_UNCONFIRMED, "op9", "rollback of op9 not confirmed", clock.now(),
        operation_id="op9",
    )  # fmt: skip
    alerter.raise_alert(alert)
    await alerter.aclose()
    assert posted == [alert.as_dict()]
    [event] = await journal.events_for("op9")
    assert event.kind == "alert" and event.payload["kind"] == "rollback_unconfirmed"
    assert alerter.stats["webhook_sent"] == 1 and alerter.stats["journaled"] == 1


async def test_a_failing_callback_or_webhook_never_raises(caplog: Any) -> None:
    """A raising callback and a 500 from the webhook are counted; the URL is never logged."""
    clock = VirtualClock()

    def broken(alert: Alert) -> None:
        raise RuntimeError("pager down")

    alerter = Alerter(
        clock,
        callback=broken,
        webhook="https://hooks.example/TOKEN123",
        transport=httpx2.MockTransport(lambda request: httpx2.Response(500)),
    )
    assert alerter.raise_alert(_alert(clock))
    await alerter.aclose()
    assert alerter.stats["callback_errors"] == 1 and alerter.stats["webhook_failures"] == 1
    assert "TOKEN123" not in caplog.text


async def test_monitor_alerts_on_a_naked_position_past_the_threshold() -> None:
    """A position with no stop: no alert before unprotected_after, one alert after (once)."""
    rig = await make_rig()
    m = rig.manager
    told: list[Alert] = []
    monitor = m.enable_alerts(
        callback=told.append, policy=AlertPolicy(unprotected_after=3.0, check_interval=0.5)
    )
    await rig.run(m.place_market_order(MNQ, BUY, 2))
    await rig.run(rig.clock.sleep(2.0))
    assert told == []
    await rig.run(rig.clock.sleep(3.0))
    await monitor.alerter.drain()
    [alert] = told
    assert alert.kind is AlertKind.UNPROTECTED_EXPOSURE and alert.contract_id == MNQ
    assert alert.details["uncovered"] == 2
    await m.cleanup()


async def test_monitor_alerts_on_a_stop_without_a_position() -> None:
    """A stop working on a flat contract is over-coverage (it would open a position)."""
    rig = await make_rig()
    m = rig.manager
    told: list[Alert] = []
    m.enable_alerts(callback=told.append, policy=AlertPolicy(over_coverage_after=1.0))
    await rig.run(m.place_stop_order(MNQ, 1, 1, D("20900")))
    await rig.run(rig.clock.sleep(3.0))
    assert m.alerts is not None
    await m.alerts.alerter.drain()
    assert [a.kind for a in told] == [AlertKind.OVER_COVERAGE]
    await m.cleanup()


async def test_monitor_alerts_on_an_open_breaker_and_journal_failures() -> None:
    """Breaker state and the journal-failure count are read at each check."""
    clock = VirtualClock()
    told: list[Alert] = []
    state = {"orders": {"state": "closed", "failure_count": 0}}
    failures = [0]
    monitor = AlertMonitor(
        clock,
        Alerter(clock, callback=told.append),
        MonitorSources(
            accounts=lambda: [],
            orders=lambda a: [],
            positions=lambda a: [],
            breakers=lambda: state,
            journal_failures=lambda: failures[0],
        ),
    )
    monitor.check()
    state["orders"] = {"state": "open", "failure_count": 5}
    failures[0] = 2
    monitor.check()
    await monitor.alerter.drain()
    assert sorted(a.kind.value for a in told) == ["breaker_open", "journal_failure"]
