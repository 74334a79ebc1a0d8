"""Our SignalR client against a real WebSocket hub on loopback: handshake, pings, both negotiate
modes, silence detection, reconnect with resubscription and a renewed token, clean close."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from px_hub import RS, FakeHub, Tokens, until

from orderguard.broker.base import ConnectionState
from orderguard.broker.projectx.http import HttpSeam
from orderguard.broker.projectx.signalr import (
    HubClient,
    HubError,
    HubOptions,
    backoff_delay,
    split_records,
    ws_url,
)
from orderguard.clock import SystemClock

FAST = HubOptions(
    keepalive_interval=0.05,
    silence_timeout=0.4,
    handshake_timeout=2.0,
    invoke_timeout=1.0,
    reconnect_initial_delay=0.01,
    reconnect_max_delay=0.05,
    close_timeout=0.5,
)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, list[Any]]] = []
        self.states: list[tuple[ConnectionState, str]] = []
        self.opens = 0

    def on_event(self, target: str, arguments: list[Any]) -> None:
        self.events.append((target, arguments))

    def on_state(self, state: ConnectionState, detail: str) -> None:
        self.states.append((state, detail))

    def count(self, state: ConnectionState) -> int:
        return sum(1 for s, _ in self.states if s is state)

    async def on_open(self, hub: HubClient) -> None:
        self.opens += 1
        await hub.invoke("SubscribeAccounts")
        await hub.invoke("SubscribeOrders", 7001)


@pytest.fixture
async def server() -> AsyncIterator[FakeHub]:
    hub = await FakeHub(ping_interval=0.05).start()
    yield hub
    await hub.stop()


def client(
    url: str, rec: Recorder, tokens: Tokens | None = None, options: HubOptions = FAST, **kw: Any
) -> HubClient:
    return HubClient(
        "user",
        url,
        tokens or Tokens(),
        on_event=rec.on_event,
        on_state=rec.on_state,
        on_open=rec.on_open,
        clock=SystemClock(),
        options=options,
        rng=random.Random(1),
        **kw,
    )


def test_records_split_and_join_across_frames() -> None:
    records, rest = split_records("", '{"type":6}' + RS + '{"type":1,')
    assert records == ['{"type":6}'] and rest == '{"type":1,'
    records, rest = split_records(rest, '"target":"X"}' + RS)
    assert records == ['{"type":1,"target":"X"}'] and rest == ""


def test_backoff_grows_caps_and_is_seeded() -> None:
    """Exponential with jitter in [cap/2, cap], capped, and the same for the same seed."""
    a = [backoff_delay(n, 0.5, 30.0, random.Random(7)) for n in range(10)]
    b = [backoff_delay(n, 0.5, 30.0, random.Random(7)) for n in range(10)]
    assert a == b
    for n, delay in enumerate(a):
        cap = min(30.0, 0.5 * 2**n)
        assert cap / 2 <= delay <= cap


def test_ws_url_converts_scheme_and_keeps_query() -> None:
    assert ws_url("https://rtc.x.com/hubs/user?a=1", {"access_token": "t"}) == (
        "wss://rtc.x.com/hubs/user?a=1&access_token=t"
    )
    assert ws_url("http://127.0.0.1:5/hubs/market", {}).startswith("ws://127.0.0.1:5/")


async def test_handshake_subscribe_events_and_pings(server: FakeHub) -> None:
    """Connects with the token in access_token, re-subscribes, reports CONNECTED, delivers
    events, and pings the server every keepalive interval."""
    rec = Recorder()
    hub = client(server.url(), rec)
    hub.start()
    assert await hub.wait_ready(3.0)
    assert server.tokens_seen == ["hub-token-0001-secret"]
    assert server.targets() == ["SubscribeAccounts", "SubscribeOrders"]
    assert rec.states[0][0] is ConnectionState.CONNECTED
    await server.push("GatewayUserOrder", {"action": 1, "data": {"id": 1}})
    await until(lambda: rec.events == [("GatewayUserOrder", [{"action": 1, "data": {"id": 1}}])])
    await until(lambda: server.pings_received >= 3, what="client pings")
    assert hub.stats["pings_received"] >= 1
    await hub.close()


async def test_records_in_the_handshake_frame_are_not_lost() -> None:
    event = json.dumps({"type": 1, "target": "GatewayUserTrade", "arguments": [{"id": 5}]}) + RS
    server = await FakeHub(handshake_extra=event).start()
    rec = Recorder()
    hub = client(server.url(), rec)
    hub.start()
    await until(lambda: ("GatewayUserTrade", [{"id": 5}]) in rec.events)
    await hub.close()
    await server.stop()


async def test_negotiate_then_connect_with_the_connection_token(server: FakeHub) -> None:
    """Without skip_negotiation: POST <hub>/negotiate?negotiateVersion=1, then connect with id."""
    negotiations: list[httpx2.Request] = []

    def negotiate(request: httpx2.Request) -> httpx2.Response:
        negotiations.append(request)
        body = {
            "negotiateVersion": 1,
            "connectionId": "conn-id",
            "connectionToken": "conn-token-abc",
            "availableTransports": [{"transport": "WebSockets", "transferFormats": ["Text"]}],
        }
        return httpx2.Response(200, json=body)

    http = HttpSeam("http://127.0.0.1:1", transport=httpx2.MockTransport(negotiate))
    rec = Recorder()
    options = HubOptions(
        skip_negotiation=False,
        keepalive_interval=FAST.keepalive_interval,
        silence_timeout=FAST.silence_timeout,
        reconnect_initial_delay=FAST.reconnect_initial_delay,
        reconnect_max_delay=FAST.reconnect_max_delay,
    )
    hub = client(server.url(), rec, options=options, http=http)
    hub.start()
    assert await hub.wait_ready(3.0)
    (request,) = negotiations
    assert request.url.path == "/hubs/user/negotiate"
    assert request.url.params["negotiateVersion"] == "1"
    assert request.headers["authorization"] == "Bearer hub-token-0001-secret"
    assert server.queries[-1]["id"] == ["conn-token-abc"]
    assert server.queries[-1]["access_token"] == ["hub-token-0001-secret"]
    await hub.close()
    await http.aclose()


async def test_negotiate_refusals() -> None:
    """A negotiate 401 asks for a new token; no WebSockets transport is an error."""
    answers = iter(
        [
            httpx2.Response(401),
            httpx2.Response(
                200,
                json={
                    "negotiateVersion": 1,
                    "connectionToken": "x",
                    "availableTransports": [{"transport": "LongPolling"}],
                },
            ),
        ]
    )
    http = HttpSeam(
        "http://127.0.0.1:1",
        transport=httpx2.MockTransport(lambda r: next(answers, httpx2.Response(503))),
    )
    tokens = Tokens()
    rec = Recorder()
    hub = client(
        "http://127.0.0.1:1/hubs/user",
        rec,
        tokens=tokens,
        options=HubOptions(
            skip_negotiation=False, reconnect_initial_delay=0.01, reconnect_max_delay=0.02
        ),
        http=http,
    )
    hub.start()
    await until(lambda: hub.stats["connect_failures"] >= 2)
    assert tokens.rejections == 1 and hub.stats["auth_rejected"] == 1
    await hub.close()
    await http.aclose()


async def test_silent_hub_is_detected_and_reconnected(server: FakeHub) -> None:
    """No message for silence_timeout with the socket open: SILENT, reconnect, resubscribe,
    RECONNECTED (the reconciler's cue)."""
    rec = Recorder()
    hub = client(server.url(), rec)
    hub.start()
    assert await hub.wait_ready(3.0)
    server.silent = True
    await until(lambda: rec.count(ConnectionState.SILENT) == 1, what="SILENT")
    server.silent = False
    await until(lambda: rec.count(ConnectionState.RECONNECTED) == 1, what="RECONNECTED")
    assert server.connections == 2
    assert server.targets(2) == ["SubscribeAccounts", "SubscribeOrders"]
    states = [s for s, _ in rec.states]
    assert states.index(ConnectionState.SILENT) < states.index(ConnectionState.RECONNECTED)
    await hub.close()


async def test_dropped_connection_reconnects_and_resubscribes(server: FakeHub) -> None:
    rec = Recorder()
    hub = client(server.url(), rec)
    hub.start()
    assert await hub.wait_ready(3.0)
    for n in range(2, 4):
        server.drop_all()
        await until(lambda n=n: rec.count(ConnectionState.RECONNECTED) == n - 1, what="reconnect")
        assert server.targets(n) == ["SubscribeAccounts", "SubscribeOrders"]
    assert rec.count(ConnectionState.DISCONNECTED) == 2
    assert hub.stats["reconnects"] == 2
    await hub.close()


async def test_server_close_message_reconnects(server: FakeHub) -> None:
    rec = Recorder()
    hub = client(server.url(), rec)
    hub.start()
    assert await hub.wait_ready(3.0)
    await server.send_raw(
        json.dumps({"type": 7, "error": "maintenance", "allowReconnect": True}) + RS
    )
    await until(lambda: rec.count(ConnectionState.RECONNECTED) == 1)
    assert any("maintenance" in d for _, d in rec.states)
    await hub.close()


async def test_rejected_token_is_renewed_before_reconnecting(server: FakeHub) -> None:
    """A 401 at the upgrade: the client asks for a new token and connects with it (F10)."""
    tokens = Tokens()
    allowed = {tokens.value}
    server.accept_token = lambda token: token in allowed
    rec = Recorder()
    hub = client(server.url(), rec, tokens=tokens)
    hub.start()
    assert await hub.wait_ready(3.0)
    allowed.clear()
    allowed.add("hub-token-0002-secret")  # the old session was revoked; the next one is valid
    server.drop_all()
    await until(lambda: rec.count(ConnectionState.RECONNECTED) == 1, what="reconnect")
    assert server.rejected >= 1 and tokens.rejections >= 1
    assert server.tokens_seen == ["hub-token-0001-secret", "hub-token-0002-secret"]
    await hub.close()


async def test_forced_reconnect_uses_the_new_token(server: FakeHub) -> None:
    """After a token refresh the broker asks for a reconnect: at once, with the new token."""
    tokens = Tokens()
    rec = Recorder()
    hub = client(server.url(), rec, tokens=tokens)
    hub.start()
    assert await hub.wait_ready(3.0)
    tokens.rotate()
    hub.reconnect("token renewed")
    await until(lambda: rec.count(ConnectionState.RECONNECTED) == 1)
    assert server.tokens_seen[-1] == "hub-token-0002-secret"
    await hub.close()


async def test_malformed_frames_are_counted_not_fatal(server: FakeHub) -> None:
    rec = Recorder()
    hub = client(server.url(), rec)
    hub.start()
    assert await hub.wait_ready(3.0)
    await server.send_raw("not json" + RS + "[1,2]" + RS + '{"type":1,"target":5}' + RS)
    await server.push("GatewayUserOrder", {"id": 1})
    await until(lambda: len(rec.events) == 1)
    assert hub.stats["malformed_frames"] == 3 and rec.count(ConnectionState.DISCONNECTED) == 0
    await hub.close()


async def test_failed_resubscription_reconnects(server: FakeHub) -> None:
    server.fail_targets.add("SubscribeOrders")
    rec = Recorder()
    hub = client(server.url(), rec)
    hub.start()
    await until(lambda: server.connections >= 2, what="retry after a failed subscribe")
    assert not hub.connected and rec.count(ConnectionState.CONNECTED) == 0
    server.fail_targets.clear()
    assert await hub.wait_ready(3.0)
    await hub.close()


async def test_invoke_errors(server: FakeHub) -> None:
    rec = Recorder()
    hub = client(server.url(), rec)
    with pytest.raises(HubError):
        await hub.invoke("SubscribeAccounts")  # not connected
    hub.start()
    assert await hub.wait_ready(3.0)
    server.fail_targets.add("SubscribeTrades")
    with pytest.raises(HubError, match="failed"):
        await hub.invoke("SubscribeTrades", 1)
    await hub.close()


def _tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


async def test_close_leaves_no_tasks_and_never_hangs(server: FakeHub) -> None:
    """close() while connected, while an invocation waits, and while reconnecting to nothing."""
    before = _tasks()
    rec = Recorder()
    hub = client(server.url(), rec)
    hub.start()
    assert await hub.wait_ready(3.0)
    server.silent = True  # the next invocation never completes
    pending = asyncio.ensure_future(hub.invoke("SubscribeTrades", 1))
    await until(lambda: "SubscribeTrades" in server.targets())
    await asyncio.wait_for(hub.close(), 2.0)
    with pytest.raises(HubError):
        await pending
    await until(lambda: _tasks() <= before, what="no leftover tasks")

    nowhere = client("http://127.0.0.1:9/hubs/user", Recorder())  # nothing listens on port 9
    nowhere.start()
    await until(lambda: nowhere.stats["connect_failures"] >= 2)
    await asyncio.wait_for(nowhere.close(), 2.0)
    await until(lambda: _tasks() <= before, what="no leftover tasks")


async def test_cancelling_the_caller_of_invoke_cleans_up(server: FakeHub) -> None:
    rec = Recorder()
    hub = client(server.url(), rec)
    hub.start()
    assert await hub.wait_ready(3.0)
    server.silent = True
    task = asyncio.ensure_future(hub.invoke("SubscribeTrades", 1))
    await until(lambda: "SubscribeTrades" in server.targets())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert hub._pending == {}
    await hub.close()


async def test_close_under_a_stream_of_messages_does_not_hang() -> None:
    """Regression: with asyncio.wait_for around recv(), a cancel that met a message arriving
    was swallowed on Python 3.11 and close() waited forever. Many times, under pings every ms."""
    server = await FakeHub(ping_interval=0.001).start()
    try:
        for _ in range(20):
            hub = client(server.url(), Recorder())
            hub.start()
            assert await hub.wait_ready(3.0)
            await until(lambda hub=hub: hub.stats["pings_received"] > 3)
            await asyncio.wait_for(hub.close(), 2.0)
    finally:
        await server.stop()
