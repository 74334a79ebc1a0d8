"""The control API under ``/control``: what the platform, the market and bad luck do to a client.

JSON over HTTP, no ProjectX token, and only from a loopback address (anything else gets 403, even
when the server itself was started with ``--allow-remote``). Every action is logged and kept for
``GET /control/log``; ``GET /control/truth`` is the exchange's own view of accounts, orders,
positions and trades, for a test to compare with what the client believes.

Bodies bind like the REST API's (same 400 shape); an unknown account, contract or hub is a 404
with ``{"error": ...}``; a refused action (an account switch with open exposure) is a 409.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orderguard.errors import UnknownAccountError

from .binding import BindingError, Body
from .core import GatewayCore
from .faults import HUBS, ArmedEventFault, ArmedFault, EventFault, WireFault
from .rest import order_place
from .wire import account_json, dumps, order_json, position_json, trade_json

ControlHandler = Callable[[GatewayCore, Body], Awaitable[Any]]


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _json(payload: Any, status: int = 200) -> Response:
    return Response(dumps(payload), status_code=status, media_type="application/json")


def _contract_id(core: GatewayCore, body: Body) -> str:
    given = body.string("contractId")
    body.check()
    contract = core.exchange.contract(given or "")
    if contract is None:
        raise ControlError(404, f"unknown contract {given!r}")
    return contract.id


def _account_id(core: GatewayCore, body: Body) -> int:
    account_id = body.int32("accountId")
    body.check()
    assert account_id is not None
    try:
        core.exchange.account(account_id)
    except UnknownAccountError:
        raise ControlError(404, f"unknown account {account_id}") from None
    return account_id


# -- reading -------------------------------------------------------------------------------------


def truth(core: GatewayCore) -> dict[str, Any]:
    exchange = core.exchange
    accounts = []
    for account in exchange.accounts():
        orders = [
            order_json(o, _symbol(core, o.contract_id), extras=True)
            for o in exchange.orders(account.id)
        ]
        accounts.append(
            {
                "account": account_json(account),
                "nativeBrackets": exchange.capabilities(account.id).native_brackets,
                "orders": orders,
                "positions": [position_json(p) for p in exchange.positions(account.id)],
                "trades": [trade_json(t) for t in exchange.trades(account.id)],
            }
        )
    quotes = {}
    for contract in exchange.contracts():
        quote = exchange.quote(contract.id)
        if quote is not None:
            quotes[contract.id] = {"last": quote.last, "bid": quote.bid, "ask": quote.ask}
    return {"now": core.clock.now(), "accounts": accounts, "quotes": quotes}


def _symbol(core: GatewayCore, contract_id: str) -> str:
    contract = core.exchange.contract(contract_id)
    return contract.symbol_id if contract else ""


# -- market --------------------------------------------------------------------------------------


async def set_price(core: GatewayCore, body: Body) -> Any:
    """Move a market to a price now (one step); the automatic path keeps running unless paused."""
    price = body.decimal("price", required=True)
    contract_id = _contract_id(core, body)
    assert price is not None
    try:
        core.exchange.set_price(contract_id, price)
    except ValueError as exc:
        raise ControlError(400, str(exc)) from None
    core.record("price", contractId=contract_id, price=str(price))
    await core.persist()
    return {"contractId": contract_id, "price": price}


async def script_prices(core: GatewayCore, body: Body) -> Any:
    """Pause the automatic path and apply ``prices`` in order, ``interval`` seconds apart."""
    raw = body.raw("prices")
    interval = body.decimal("interval") or Decimal(0)
    contract_id = _contract_id(core, body)
    if not isinstance(raw, list) or not raw:
        raise BindingError({"$.prices": ["A non-empty array of prices is required."]})
    try:
        prices = [Decimal(str(p)) for p in raw]
    except ArithmeticError:
        raise BindingError({"$.prices": ["Every price must be a number."]}) from None
    driver = core.market.drivers.get(contract_id)
    if driver is not None:
        await driver.stop()
    contract = core.exchange.contract(contract_id)
    assert contract is not None
    if any(p <= 0 or not contract.is_aligned(p) for p in prices):
        raise ControlError(
            400, f"every price must be positive and on the {contract.tick_size} grid"
        )
    core.record("prices", contractId=contract_id, count=len(prices), interval=str(interval))
    for index, price in enumerate(prices):
        if index and interval > 0:
            await core.clock.sleep(float(interval))
        core.exchange.set_price(contract_id, price)
    await core.persist()
    return {"contractId": contract_id, "applied": len(prices), "last": prices[-1]}


async def market_running(core: GatewayCore, body: Body) -> Any:
    """Start or pause a contract's automatic price path."""
    running = body.boolean("running")
    contract_id = _contract_id(core, body)
    driver = core.market.drivers.get(contract_id)
    if driver is None:
        raise ControlError(404, f"no price path for {contract_id}")
    if running:
        await driver.start()
    else:
        await driver.stop()
    core.record("market", contractId=contract_id, running=running)
    return {"contractId": contract_id, "running": driver.running}


async def liquidity(core: GatewayCore, body: Body) -> Any:
    """Contracts per order per price step (null: unlimited); depth size per level (null: random)."""
    amount = body.int32("liquidity", required=False)
    depth = body.int32("depthSize", required=False)
    body.check()
    if amount is not None and amount <= 0:
        raise ControlError(400, "liquidity must be positive (or null for unlimited)")
    core.exchange.liquidity = amount
    core.market.depth_size = depth
    core.record("liquidity", liquidity=amount, depthSize=depth)
    return {"liquidity": amount, "depthSize": depth}


# -- the platform's own actions ------------------------------------------------------------------


async def platform_place(core: GatewayCore, body: Body) -> Any:
    """An order placed on the platform (the web UI), not through the API: same validation."""
    payload = await order_place(core, body, None)
    core.record("platform_place", orderId=payload.get("orderId"), code=payload["errorCode"])
    await core.persist()
    return payload


async def platform_cancel(core: GatewayCore, body: Body) -> Any:
    order_id = body.int64("orderId")
    account_id = _account_id(core, body)
    assert order_id is not None
    result = core.exchange.cancel(account_id, order_id)
    core.record("platform_cancel", orderId=order_id, code=result.error_code)
    await core.persist()
    return {"errorCode": result.error_code, "errorMessage": result.error_message}


async def platform_close(core: GatewayCore, body: Body) -> Any:
    size = body.int32("size", required=False)
    contract_id = _contract_id(core, body)
    account_id = _account_id(core, body)
    if size is None:
        result = core.exchange.close_position(account_id, contract_id)
    else:
        result = core.exchange.partial_close(account_id, contract_id, size)
    core.record("platform_close", contractId=contract_id, size=size, code=result.error_code)
    await core.persist()
    return {"errorCode": result.error_code, "errorMessage": result.error_message,
            "orderId": result.order_id}  # fmt: skip


async def bracket_mode(core: GatewayCore, body: Body) -> Any:
    """Auto OCO Brackets (``auto``) or legacy Position Brackets (``position``).

    TopstepX refuses the switch while the account has positions or working orders (TSH); so
    does this, unless ``force`` is true.
    """
    mode = body.string("mode")
    force = body.boolean("force", required=False)
    account_id = _account_id(core, body)
    if mode not in ("auto", "position"):
        raise ControlError(400, "mode must be 'auto' or 'position'")
    exchange = core.exchange
    busy = exchange.positions(account_id) or any(o.is_working for o in exchange.orders(account_id))
    if busy and not force:
        raise ControlError(409, "the account has positions or working orders")
    exchange.set_native_brackets(account_id, mode == "auto")
    core.record("bracket_mode", accountId=account_id, mode=mode)
    await core.persist()
    return {"accountId": account_id, "mode": mode}


# -- tokens, limits, hubs, faults ----------------------------------------------------------------


async def tokens(core: GatewayCore, body: Body) -> Any:
    """``expire`` every token issued so far, or ``revoke`` them (optionally one ``sessionId``)."""
    action = body.string("action")
    session = body.string("sessionId", required=False)
    body.check()
    closed = 0
    if action == "expire":
        core.tokens.expire_all()
    elif action == "revoke" and session:
        core.tokens.end_session(session)
        closed = await core.hubs.end_session(session)
    elif action == "revoke":
        core.tokens.revoke_all()
        for hub in HUBS:
            closed += await core.hubs.disconnect(hub, graceful=True)
    else:
        raise ControlError(400, "action must be 'expire' or 'revoke'")
    core.record("tokens", tokenAction=action, session=session)
    await core.persist()
    return {"action": action, "hubConnectionsClosed": closed}


async def rate_limits(core: GatewayCore, body: Body) -> Any:
    """``enabled``: switch the limits; ``burst``: fill a user's windows now (429s follow)."""
    enabled = body.boolean("enabled", required=False)
    burst = body.boolean("burst", required=False)
    user = body.string("userName", required=False)
    body.check()
    if enabled is not None:
        core.rate_limits_enabled = enabled
    if burst:
        key = core.rate_key(user or core.config.user_name, "")
        core.general_limits.burst(key)
        core.bars_limits.burst(key)
    core.record("rate_limits", enabled=enabled, burst=burst)
    return {"enabled": core.rate_limits_enabled}


async def hub_action(core: GatewayCore, body: Body) -> Any:
    """``disconnect`` (``graceful``: with a Close message) or ``silence`` for ``seconds``."""
    hub = body.string("hub")
    action = body.string("action")
    seconds = body.decimal("seconds")
    graceful = body.boolean("graceful", required=False)
    body.check()
    if hub not in HUBS:
        raise ControlError(404, f"hub must be one of {HUBS}")
    if action == "disconnect":
        closed = await core.hubs.disconnect(hub, graceful=bool(graceful))
        result: dict[str, Any] = {"closed": closed}
    elif action == "silence":
        core.hubs.silence(hub, float(seconds or 0))
        result = {"silentFor": seconds}
    else:
        raise ControlError(400, "action must be 'disconnect' or 'silence'")
    core.record("hub", hub=hub, hubAction=action, seconds=str(seconds))
    return result


async def arm_fault(core: GatewayCore, body: Body) -> Any:
    """Arm a fault: ``target`` is an endpoint (``Order/place``), ``*``, or ``hub:user``."""
    target = (body.string("target") or "").strip().strip("/").lower()
    kind = body.string("kind")
    count = body.int32("count", required=False) or 1
    seconds = body.decimal("seconds")
    code = body.int32("code", required=False)
    message = body.string("message", required=False)
    body.check()
    target = target.removeprefix("api/")
    try:
        if target.startswith("hub:"):
            event = EventFault(kind or "")
            hub = target[len("hub:") :]
            if event in (EventFault.DISCONNECT, EventFault.GO_SILENT):
                if hub not in HUBS:
                    raise ValueError(f"hub must be one of {HUBS}")
                if event is EventFault.DISCONNECT:
                    await core.hubs.disconnect(hub)
                else:
                    core.hubs.silence(hub, float(seconds or 1))
            else:
                core.faults.arm_event(
                    ArmedEventFault(hub, event, count, float(seconds if seconds is not None else 1))
                )
        else:
            core.faults.arm(
                ArmedFault(
                    target or "*",
                    WireFault(kind or ""),
                    count,
                    None if seconds is None else float(seconds),
                    code,
                    message,
                )
            )
    except ValueError as exc:
        raise ControlError(400, str(exc)) from None
    core.record("fault_armed", target=target, kind=kind, count=count)
    return {"armed": core.faults.armed()}


async def clear_faults(core: GatewayCore, body: Body) -> Any:
    core.faults.clear()
    core.record("faults_cleared")
    return {"armed": []}


POSTS: dict[str, ControlHandler] = {
    "price": set_price,
    "prices": script_prices,
    "market": market_running,
    "liquidity": liquidity,
    "orders/place": platform_place,
    "orders/cancel": platform_cancel,
    "positions/close": platform_close,
    "accounts/brackets": bracket_mode,
    "tokens": tokens,
    "ratelimits": rate_limits,
    "hubs": hub_action,
    "faults": arm_fault,
    "faults/clear": clear_faults,
}


async def control(request: Request) -> Response:
    core: GatewayCore = request.app.state.core
    if not is_loopback(request.client.host if request.client else None):
        return _json({"error": "the control API answers loopback clients only"}, 403)
    name = request.path_params["name"].strip("/").lower()
    if request.method == "GET":
        if name == "truth":
            return _json(truth(core))
        if name == "log":
            return _json({"log": list(core.journal)})
        if name == "status":
            return _json(status(core))
        return _json({"error": f"no control resource {name!r}"}, 404)
    handler = POSTS.get(name)
    if handler is None:
        return _json({"error": f"no control action {name!r}"}, 404)
    try:
        body = Body.from_bytes(await request.body(), allow_empty=True)
        return _json(await handler(core, body))
    except BindingError as error:
        return _json(error.problem(), 400)
    except ControlError as error:
        return _json({"error": str(error)}, error.status)


def status(core: GatewayCore) -> dict[str, Any]:
    return {
        "now": core.clock.now(),
        "hubs": core.hubs.stats(),
        "faults": {"armed": core.faults.armed(), "fired": core.faults.fired},
        "rateLimits": {
            "enabled": core.rate_limits_enabled,
            "refused": core.general_limits.refused + core.bars_limits.refused,
        },
        "market": {cid: d.running for cid, d in core.market.drivers.items()},
        "tokensIssued": core.tokens.issued,
    }


def routes() -> list[Route]:
    return [Route("/control/{name:path}", control, methods=["GET", "POST"])]


__all__ = ["is_loopback", "routes", "truth"]
