"""``orderguard gateway``: the simulated exchange served over the real ProjectX wire protocol.

REST under ``/api`` (§3 of projectx-api.md), SignalR hubs ``/hubs/user`` and ``/hubs/market``,
a control API under ``/control`` for the platform's own actions and injected faults, and an
optional SQLite state file. See ``docs/gateway.md``::

    async with Gateway(GatewayConfig(seed=7)).running(port=0) as gateway:
        user_name, api_key = gateway.credentials
        print(gateway.urls.api, gateway.urls.user_hub, gateway.urls.market_hub)
"""

from .config import AccountSpec, GatewayConfig, RateLimit, parse_accounts
from .server import Gateway, GatewayUrls

__all__ = ["AccountSpec", "Gateway", "GatewayConfig", "GatewayUrls", "RateLimit", "parse_accounts"]
