"""A whole ProjectXBroker session: REST on a MockTransport gateway, both hubs on a real loopback
WebSocket server. Events, reconnects, token renewal, and not one secret in logs, reprs or errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx2
import pytest
from px_fakes import ACCOUNT_ID, API_KEY, MNQ, FakeRest, ok, order_json, respond, settings
from px_hub import FakeHub, until

from orderguard.broker.base import (
    BrokerEvent,
    Confirmed,
    ConnectionEvent,
    ConnectionState,
    EventFeed,
    OrderEvent,
    QuoteEvent,
)
from orderguard.broker.projectx import ProjectXBroker
from orderguard.errors import AuthenticationError
from orderguard.models import OrderRequest, OrderSide, OrderStatus, OrderType

LOG_LEVEL = logging.INFO
MARKET = OrderRequest(ACCOUNT_ID, MNQ, OrderType.MARKET, OrderSide.BUY, 1, custom_tag="s1")


class Session:
    def __init__(self, fake: FakeRest, hub: FakeHub, broker: ProjectXBroker) -> None:
        self.fake, self.hub, self.broker = fake, hub, broker
        self.events: list[BrokerEvent] = []
        broker.subscribe(self.events.append)

    def states(self, feed: EventFeed = EventFeed.ORDERS) -> list[ConnectionState]:
        return [e.state for e in self.events if isinstance(e, ConnectionEvent) and e.feed is feed]


def negotiate(body: dict[str, Any], request: httpx2.Request) -> Any:
    return respond(
        {
            "negotiateVersion": 1,
            "connectionId": "c",
            "connectionToken": "ct",
            "availableTransports": [{"transport": "WebSockets", "transferFormats": ["Text"]}],
        }
    )


@pytest.fixture
async def session(request: pytest.FixtureRequest) -> AsyncIterator[Session]:
    negotiate_first = getattr(request, "param", False)
    fake = FakeRest(
        routes={
            "/api/order/place": lambda b, r: ok(orderId=501),
            "/hubs/user/negotiate": negotiate,
            "/hubs/market/negotiate": negotiate,
        }
    )
    hub = await FakeHub(ping_interval=0.05, accept_token=lambda t: t in fake.valid_tokens).start()
    broker = ProjectXBroker(
        settings(
            user_hub_url=hub.url("user"),
            market_hub_url=hub.url("market"),
            first_connect_wait=3.0,
            quote_wait=2.0,
            keepalive_interval=0.05,
            silence_timeout=0.5,
            reconnect_initial_delay=0.01,
            reconnect_max_delay=0.05,
            skip_negotiation=not negotiate_first,
        ),
        transport=httpx2.MockTransport(fake),
    )
    yield Session(fake, hub, broker)
    await broker.aclose()
    await hub.stop()


async def test_start_subscribes_and_delivers_events(session: Session) -> None:
    """start() logs in, subscribes the accounts on the user hub, then events flow as ours."""
    await session.broker.start()
    assert session.states() == [ConnectionState.CONNECTED]
    targets = session.hub.targets()
    assert targets[:4] == [
        "SubscribeAccounts",
        "SubscribeOrders",
        "SubscribePositions",
        "SubscribeTrades",
    ]
    assert targets.count("SubscribeOrders") == 2  # both accounts listed by Account/search
    await session.hub.push(
        "GatewayUserOrder",
        {"action": 1, "data": order_json(9, status=2, fillVolume=2, filledPrice=21000.5)},
    )
    await session.hub.push("GatewayUserOrder", "garbage")
    await until(lambda: any(isinstance(e, OrderEvent) for e in session.events))
    order = next(e.order for e in session.events if isinstance(e, OrderEvent))
    assert order.status is OrderStatus.FILLED and order.filled_price == Decimal("21000.5")
    await until(lambda: session.broker.stats["malformed_events"] == 1)


async def test_quotes_give_the_last_price(session: Session) -> None:
    await session.broker.start()

    async def quote_soon() -> None:
        await until(lambda: "SubscribeContractQuotes" in session.hub.targets())
        await session.hub.push(
            "GatewayQuote",
            MNQ,
            {
                "symbol": "F.US.MNQ",
                "lastPrice": 21003.25,
                "bestBid": 21003,
                "bestAsk": 21003.25,
                "timestamp": "2026-01-05T14:30:00Z",
            },
        )

    pusher = asyncio.ensure_future(quote_soon())
    assert await session.broker.get_last_price(MNQ) == Decimal("21003.25")
    await pusher
    assert any(isinstance(e, QuoteEvent) for e in session.events)
    assert "/api/history/retrievebars" not in session.fake.paths()


async def test_a_dropped_user_hub_is_reported_reconnected(session: Session) -> None:
    await session.broker.start()
    session.hub.drop_all()
    await until(lambda: ConnectionState.RECONNECTED in session.states(), what="RECONNECTED")
    assert ConnectionState.DISCONNECTED in session.states()


async def test_token_renewal_reconnects_the_hubs_with_it(session: Session) -> None:
    """After a 401 re-login, the hubs are reconnected with the new token (F10)."""
    await session.broker.start()
    first = session.fake.issued[-1]
    session.fake.revoke_all()
    assert await session.broker.place_order(MARKET) == Confirmed(501)
    fresh = session.fake.issued[-1]
    assert fresh != first
    await until(
        lambda: session.hub.tokens_seen.count(fresh) >= 2, what="both hubs on the new token"
    )
    await until(lambda: session.states().count(ConnectionState.RECONNECTED) >= 1)


@pytest.mark.parametrize("session", [True], indirect=True)
async def test_no_secret_leaks_in_a_full_session(
    session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    """Login, orders, a 401 re-login, hub reconnects (with negotiate, whose URL carries the
    token): neither the API key nor any token appears in logs, reprs or exception texts."""
    caplog.set_level(LOG_LEVEL)
    broker = session.broker
    texts: list[str] = []
    await broker.start()
    assert await broker.place_order(MARKET) == Confirmed(501)
    session.fake.revoke_all()
    assert await broker.place_order(MARKET) == Confirmed(501)
    await until(lambda: ConnectionState.RECONNECTED in session.states(), what="token reconnect")
    session.hub.drop_all()
    await until(
        lambda: session.states().count(ConnectionState.RECONNECTED) >= 2,
        what=lambda: (
            f"reconnects {session.states()} {session.broker.user_hub.stats} {session.fake.paths()}"
        ),
    )
    session.fake.routes["/api/order/cancel"] = lambda b, r: respond(status=401)
    with pytest.raises(AuthenticationError) as info:
        await broker.cancel_order(ACCOUNT_ID, 1)
    texts.append(str(info.value))
    texts.append(repr(info.value))
    texts += [
        repr(broker),
        repr(broker.settings),
        str(broker.settings),
        repr(broker.tokens),
        repr(broker.tokens.current),
        repr(broker.user_hub),
        repr(broker.secrets),
    ]
    texts += [str(e) for e in session.events]
    records = caplog.records
    texts += [r.getMessage() for r in records]
    texts += [logging.Formatter().format(r) for r in records]
    assert any(r.name == "httpx2" for r in records), (
        "httpx2 logged nothing: the test lost its teeth"
    )
    assert any("negotiate" in r.getMessage() for r in records)
    secrets = [API_KEY, *session.fake.issued]
    assert len(secrets) >= 4
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"secret leaked into: {text[:200]}"
