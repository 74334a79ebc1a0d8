"""The dashboard's HTTP surface on a live manager (virtual clock, in-process ASGI): state,
/metrics parsed by prometheus_client's own parser, and the token on rollbacks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orderguard.dashboard import JournalSource, ManagerSource, build_app
from orderguard.journal.sqlite import SqliteJournal
from orderguard.orders.bracket.values import BracketOutcome

from .rig import Rig, make_rig, market_bracket

TOKEN = "t" * 32


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    rig = await make_rig()
    yield rig
    await rig.manager.cleanup()


def client(rig: Rig) -> httpx2.AsyncClient:
    m = rig.manager
    monitor = m.alerts or m.enable_alerts()
    app = build_app(ManagerSource(m, monitor), TOKEN)
    return httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://127.0.0.1:8765"
    )


async def get(rig: Rig, path: str) -> httpx2.Response:
    async with client(rig) as c:
        return await rig.run(c.get(path))  # type: ignore[no-any-return]


async def test_state_shows_a_protected_bracket_with_its_legs(rig: Rig) -> None:
    """A bracket appears with entry/stop/target legs, its outcome and time to protection."""
    r = await market_bracket(rig)
    state = (await get(rig, "/api/state")).json()
    [op] = [o for o in state["operations"] if o["id"] == r.operation_id]
    assert op["outcome"] == "protected" and op["protected"] == 1
    assert {leg["leg"] for leg in op["legs"]} == {"entry", "stop0", "target0"}
    assert op["time_to_protection"] is not None and op["time_to_protection"] >= 0
    [pos] = state["positions"]
    assert pos["status"] == "protected" and pos["size"] == 1
    assert state["rate_limiter"]["max_requests"] == 200
    assert set(state["breakers"]) >= {"orders"}


async def test_metrics_parse_with_the_prometheus_parser(rig: Rig) -> None:
    """/metrics is valid Prometheus text with the operations, breakers and histograms."""
    await market_bracket(rig)
    response = await get(rig, "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    ops = {
        (s.labels["type"], s.labels["state"]): s.value
        for s in families["orderguard_operations"].samples
    }
    assert ops[("bracket_order", "in_progress")] == 1
    outcomes = {
        (s.labels["type"], s.labels["outcome"]): s.value
        for s in families["orderguard_operation_outcomes"].samples
    }
    assert outcomes[("bracket_order", "protected")] == 1
    breaker = {s.labels["family"]: s.value for s in families["orderguard_breaker_state"].samples}
    assert breaker and set(breaker.values()) == {0.0}
    ttp = families["orderguard_time_to_protection_seconds"]
    assert ttp.type == "histogram"
    count = [s.value for s in ttp.samples if s.name.endswith("_count")]
    assert count == [1.0]
    for name in (
        "orderguard_unknown_outcomes",
        "orderguard_unknown_outcomes_resolved",
        "orderguard_flattens",
        "orderguard_obligations_overdue",
        "orderguard_rate_limit_waits",
        "orderguard_unprotected_seconds",
    ):
        assert name in families, name


async def test_rollback_refuses_without_the_token_and_works_with_it(rig: Rig) -> None:
    """No token or a wrong one: 401 and the bracket stays; with it: flat, 200, safe."""
    r = await market_bracket(rig)
    path = f"/api/operations/{r.operation_id}/rollback"
    async with client(rig) as c:
        refused = await rig.run(c.post(path))
        wrong = await rig.run(c.post(path, headers={"X-Orderguard-Token": "x" * 32}))
        assert refused.status_code == wrong.status_code == 401
        assert TOKEN not in refused.text
        assert rig.position() == 1
        done = await rig.run(c.post(path, headers={"X-Orderguard-Token": TOKEN}))
    assert done.status_code == 200, done.text
    assert done.json()["safe"] is True
    assert rig.position() == 0 and rig.stops() == []
    status = rig.manager.get_bracket_status(r.operation_id)
    assert status is not None and status.outcome is BracketOutcome.FLAT


async def test_rollback_of_an_unknown_operation_is_404(rig: Rig) -> None:
    async with client(rig) as c:
        response = await rig.run(
            c.post("/api/operations/nope/rollback", headers={"Authorization": f"Bearer {TOKEN}"})
        )
    assert response.status_code == 404


async def test_a_foreign_host_header_is_refused(rig: Rig) -> None:
    """DNS rebinding: a request naming another host than loopback is refused."""
    async with client(rig) as c:
        response = await rig.run(c.get("/api/state", headers={"Host": "evil.example"}))
    assert response.status_code == 400


async def test_journal_source_is_read_only(tmp_path: Path) -> None:
    """Beside a strategy: the journal's operations are shown, a rollback is refused (409)."""
    path = tmp_path / "journal.db"
    rig = await make_rig(journal=lambda clock: SqliteJournal(path, clock))
    r = await market_bracket(rig)
    await rig.run(rig.manager.journal.flush())
    app = build_app(JournalSource(path), TOKEN)
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as c:
        state: dict[str, Any] = (await c.get("/api/state")).json()
        refused = await c.post(
            f"/api/operations/{r.operation_id}/rollback", headers={"X-Orderguard-Token": TOKEN}
        )
        metrics = await c.get("/metrics")
    assert state["read_only"] and [o["id"] for o in state["operations"]] == [r.operation_id]
    assert refused.status_code == 409 and metrics.status_code == 404
    await rig.manager.cleanup()
    await rig.manager.journal.close()
