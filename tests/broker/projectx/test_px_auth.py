"""Session tokens: login, scheduled refresh before expiry (virtual clock), 401 re-login and the
one re-send, failures to get a token classified as "not sent"."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx2
import pytest
from px_fakes import ACCOUNT_ID, MNQ, T0, FakeRest, fail, make_jwt, ok, respond, rest_broker

from orderguard.broker.base import Confirmed, Unknown
from orderguard.broker.projectx.auth import schedule, token_expiry
from orderguard.clock import VirtualClock
from orderguard.errors import AuthenticationError, ConnectionFailedError, RateLimitedError
from orderguard.models import OrderRequest, OrderSide, OrderType

MARKET = OrderRequest(ACCOUNT_ID, MNQ, OrderType.MARKET, OrderSide.BUY, 1, custom_tag="m1")


def test_schedule_reads_exp_and_refreshes_early() -> None:
    """A 24 h token refreshes 30 min before exp; a short one at 3/4 of its life; no exp → 1 h."""
    long = schedule(
        make_jwt(T0 + timedelta(hours=24), T0), T0, refresh_margin=1800, fallback_lifetime=3600
    )
    assert long.expires_at == T0 + timedelta(hours=24)
    assert long.refresh_at == T0 + timedelta(hours=18)  # 3/4 of the life comes before exp-30min
    short = schedule(
        make_jwt(T0 + timedelta(minutes=20), T0), T0, refresh_margin=1800, fallback_lifetime=3600
    )
    assert short.refresh_at == T0 + timedelta(minutes=15)
    opaque = schedule("not-a-jwt", T0, refresh_margin=1800, fallback_lifetime=3600)
    assert opaque.refresh_at == T0 + timedelta(hours=1)
    assert token_expiry("a.b.c") is None
    assert "value" not in repr(long) and make_jwt(T0, T0) not in repr(long)


async def test_token_refreshes_before_expiry_on_a_virtual_clock() -> None:
    """The background refresher calls Auth/validate before exp and installs newToken; the old
    token is never used after that."""
    clock = VirtualClock(T0)
    fake = FakeRest(clock=clock, token_ttl=timedelta(hours=1))
    fake.routes["/api/order/searchopen"] = lambda b, r: ok(orders=[])
    broker = rest_broker(fake, clock=clock)
    await broker.start()
    first = broker.tokens.current
    assert first is not None and fake.paths().count("/api/auth/loginkey") == 1
    await clock.advance(29 * 60)  # refresh_margin (30 min) before exp comes first here
    assert fake.paths().count("/api/auth/validate") == 0
    await clock.advance(2 * 60)  # past 30 min
    assert fake.paths().count("/api/auth/validate") == 1
    second = broker.tokens.current
    assert second is not None and second.value != first.value
    await broker.search_open_orders(ACCOUNT_ID)
    assert fake.calls[-1].token == second.value
    await clock.advance(60 * 60)  # and again, a whole token life later
    assert fake.paths().count("/api/auth/validate") >= 2
    assert fake.paths().count("/api/auth/loginkey") == 1
    await broker.aclose()


async def test_validate_failure_falls_back_to_login() -> None:
    clock = VirtualClock(T0)
    fake = FakeRest(clock=clock, token_ttl=timedelta(hours=1))
    fake.routes["/api/auth/validate"] = lambda b, r: fail(3, "ExpiredToken")
    broker = rest_broker(fake, clock=clock)
    await broker.start()
    await clock.advance(50 * 60)
    assert fake.paths().count("/api/auth/loginkey") == 2
    await broker.aclose()


async def test_refresh_failure_keeps_the_valid_token_and_retries_later() -> None:
    """While the old token still lives, a failed refresh is retried later, not in a tight loop."""
    clock = VirtualClock(T0)
    fake = FakeRest(clock=clock, token_ttl=timedelta(hours=1))
    broker = rest_broker(fake, clock=clock)
    await broker.start()
    fake.routes["/api/auth/validate"] = lambda b, r: respond(status=503)
    fake.routes["/api/auth/loginkey"] = lambda b, r: respond(status=503)
    await clock.advance(50 * 60)
    attempts = fake.paths().count("/api/auth/loginkey")
    assert 1 < attempts < 40  # about once a minute, never a tight loop
    assert broker.tokens.current is not None
    await broker.aclose()


async def test_query_401_relogs_in_and_retries_once() -> None:
    fake = FakeRest(routes={"/api/order/searchopen": lambda b, r: ok(orders=[])})
    broker = rest_broker(fake)
    await broker.start()
    fake.revoke_all()  # the session was replaced elsewhere: 401 before exp
    assert await broker.search_open_orders(ACCOUNT_ID) == []
    paths = fake.paths()
    assert paths[-3:] == ["/api/order/searchopen", "/api/auth/loginkey", "/api/order/searchopen"]
    assert broker.stats["resent_after_401"] == 1
    await broker.aclose()


async def test_mutation_answered_401_is_resent_once_after_relogin() -> None:
    """A 401 comes from the auth middleware before the endpoint runs: re-sending is safe."""
    placed: list[str | None] = []

    def place(body: dict[str, Any], req: httpx2.Request) -> Any:
        placed.append(body.get("customTag"))
        return ok(orderId=11)

    fake = FakeRest(routes={"/api/order/place": place})
    broker = rest_broker(fake)
    await broker.start()
    fake.revoke_all()
    assert await broker.place_order(MARKET) == Confirmed(11)
    assert placed == ["m1"]  # executed once: the 401 attempt never reached the handler
    assert [c.path for c in fake.calls].count("/api/order/place") == 2
    await broker.aclose()


async def test_second_401_raises_authentication_error() -> None:
    fake = FakeRest(routes={"/api/order/place": lambda b, r: respond(status=401)})
    broker = rest_broker(fake)
    with pytest.raises(AuthenticationError):
        await broker.place_order(MARKET)
    assert fake.paths().count("/api/order/place") == 2
    await broker.aclose()


async def test_concurrent_401s_share_one_relogin() -> None:
    fake = FakeRest(routes={"/api/order/searchopen": lambda b, r: ok(orders=[])})
    broker = rest_broker(fake)
    await broker.start()
    fake.revoke_all()
    await asyncio.gather(*(broker.search_open_orders(ACCOUNT_ID) for _ in range(5)))
    assert fake.paths().count("/api/auth/loginkey") == 2  # the first login and one re-login
    await broker.aclose()


async def test_relogin_failure_after_401_means_not_sent() -> None:
    """The mutation was refused (401) and could not be re-sent: nothing executed, so the caller
    gets the retryable not-sent error, not Unknown."""
    fake = FakeRest(routes={"/api/order/place": lambda b, r: ok(orderId=1)})
    broker = rest_broker(fake)
    await broker.start()
    fake.revoke_all()

    def down(body: dict[str, Any], req: httpx2.Request) -> Any:
        raise httpx2.ConnectError("refused")

    fake.routes["/api/auth/loginkey"] = down
    with pytest.raises(ConnectionFailedError):
        await broker.place_order(MARKET)
    await broker.aclose()


async def test_resend_after_401_that_times_out_is_unknown() -> None:
    calls = {"n": 0}

    def place(body: dict[str, Any], req: httpx2.Request) -> Any:
        calls["n"] += 1
        raise httpx2.ReadTimeout("slow")

    fake = FakeRest(routes={"/api/order/place": place})
    broker = rest_broker(fake)
    await broker.start()
    fake.revoke_all()
    outcome = await broker.place_order(MARKET)
    assert isinstance(outcome, Unknown)
    await broker.aclose()


@pytest.mark.parametrize(
    ("login", "error"),
    [
        (lambda b, r: fail(3, "InvalidCredentials", token=None), AuthenticationError),
        (lambda b, r: respond(status=503), ConnectionFailedError),
        (lambda b, r: respond(status=429, headers={"Retry-After": "2"}), RateLimitedError),
    ],
)
async def test_login_failures(login: Any, error: type) -> None:
    """Bad credentials are final; an unavailable or rate-limited login means not sent."""
    fake = FakeRest(routes={"/api/auth/loginkey": login})
    broker = rest_broker(fake)
    with pytest.raises(error) as info:
        await broker.place_order(MARKET)
    if isinstance(info.value, RateLimitedError):
        assert info.value.sent is False and info.value.retry_after == 2.0
    assert "/api/order/place" not in fake.paths()
    await broker.aclose()


async def test_login_refused_by_connect_error_is_not_sent() -> None:
    def down(body: dict[str, Any], req: httpx2.Request) -> Any:
        raise httpx2.ConnectError("refused")

    fake = FakeRest(routes={"/api/auth/loginkey": down})
    broker = rest_broker(fake)
    with pytest.raises(ConnectionFailedError):
        await broker.search_open_orders(ACCOUNT_ID)
    await broker.aclose()
