"""``--state FILE``: a restarted gateway remembers orders, positions, trades, ids and tokens."""

from __future__ import annotations

from pathlib import Path

from orderguard.gateway import GatewayConfig

from .conftest import GatewayFactory, Hub, base_url

START = "2020-01-01T00:00:00Z"


async def test_restart_keeps_everything(start_gateway: GatewayFactory, tmp_path: Path) -> None:
    """Orders (with working bracket legs), positions, trades, counters, key and token survive."""
    state = tmp_path / "gateway.db"
    config = GatewayConfig(history_days=0)
    first = await start_gateway(config, state_path=state)
    token = await first.login()
    await first.place(size=2, customTag="entry")
    await first.place(type=1, limitPrice=20990, stopLossBracket={"ticks": -8, "type": 4},
                      takeProfitBracket={"ticks": 8, "type": 1})  # fmt: skip
    before = await first.truth()
    user, key = first.gateway.credentials
    await first.gateway.stop()
    assert oct(state.stat().st_mode & 0o777) == "0o600"

    second = await start_gateway(config, state_path=state)
    assert second.gateway.restored and second.gateway.credentials == (user, key)
    second.token = token  # the old token is still good: same signing secret
    after = await second.truth()
    assert after["orders"] == before["orders"] and after["trades"] == before["trades"]
    assert after["positions"] == before["positions"]
    assert (await second.place(customTag="entry"))["errorCode"] == 2  # tags remembered
    assert (await second.place())["orderId"] == 5  # ids go on: 1 market, 2 entry, 3-4 legs
    # The restored bracket still works: its entry fills, its legs activate.
    await second.price("20989.00")
    legs = [o for o in (await second.truth())["orders"] if o["parentOrderId"] == 2]
    assert [o["status"] for o in legs] == [1, 1]


async def test_a_fresh_state_file_starts_the_configured_accounts(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    api = await start_gateway(GatewayConfig(history_days=0), state_path=tmp_path / "s.db")
    assert not api.gateway.restored
    await api.login()
    hub = await Hub.connect(base_url(api), "user", api.token)
    await hub.close()
    assert (await api.ok("Account/search", {"onlyActiveAccounts": True}))["accounts"][0]["id"] == 1
