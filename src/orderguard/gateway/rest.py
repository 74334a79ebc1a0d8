"""The REST endpoints of §3: bind the body, ask the exchange, answer the ProjectX envelope.

Each handler takes the shared core, the request :class:`~orderguard.gateway.binding.Body` and the
caller's token claims, and returns the JSON payload. Binding happens before anything is touched
(``body.check()``), so a malformed request changes nothing. Business failures are envelopes with
the endpoint's error code — the same codes the simulated exchange already produces
(:mod:`orderguard.broker.base`), passed through unchanged. HTTP-level concerns (auth, 401, 429,
400, faults) live in :mod:`orderguard.gateway.app`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orderguard.broker.projectx.codes import PlaceCode
from orderguard.errors import UnknownAccountError
from orderguard.models import BracketSpec, Order, OrderRequest, OrderSide, OrderType

from .auth import TokenClaims, same_key
from .bars import BarUnit, bar_time
from .binding import Body
from .config import ExpiredValidate
from .core import GatewayCore
from .wire import (
    WireValue,
    account_json,
    contract_json,
    envelope,
    order_json,
    position_json,
    trade_json,
)

Payload = dict[str, WireValue]
Handler = Callable[[GatewayCore, Body, TokenClaims | None], Awaitable[Payload]]

ACCOUNT_NOT_FOUND = 1
MAX_PAGE_SIZE = 1000


class LoginCode:
    USER_NOT_FOUND = 1
    INVALID_CREDENTIALS = 3
    APP_NOT_FOUND = 4


class ValidateCode:
    INVALID_SESSION = 1
    SESSION_NOT_FOUND = 2
    EXPIRED_TOKEN = 3


class BarsCode:
    CONTRACT_NOT_FOUND = 1
    UNIT_INVALID = 2
    UNIT_NUMBER_INVALID = 3
    LIMIT_INVALID = 4


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One route: its handler, whether it needs a token, which rate-limit family, mutates."""

    handler: Handler
    auth: bool = True
    bars: bool = False
    mutation: bool = False
    empty_body: bool = False  # validate/logout take no body


def _orders_json(core: GatewayCore, orders: list[Order]) -> list[Payload]:
    extras = core.config.order_extras
    out = []
    for order in orders:
        contract = core.exchange.contract(order.contract_id)
        out.append(order_json(order, contract.symbol_id if contract else "", extras=extras))
    return out


def _has_account(core: GatewayCore, account_id: int) -> bool:
    try:
        core.exchange.account(account_id)
    except UnknownAccountError:
        return False
    return True


# -- auth ----------------------------------------------------------------------------------------


async def login_key(core: GatewayCore, body: Body, _: TokenClaims | None) -> Payload:
    user = body.string("userName")
    key = body.string("apiKey")
    body.check()
    assert user is not None and key is not None
    # One answer for a wrong user and a wrong key: a login must not reveal which users exist.
    if user != core.config.user_name or not same_key(key, core.api_key):
        return envelope(LoginCode.INVALID_CREDENTIALS, "Invalid credentials.", token=None)
    token, claims = core.tokens.issue(user)
    core.record("login", user=user, session=claims.session_id)
    return envelope(token=token)


async def login_app(core: GatewayCore, body: Body, _: TokenClaims | None) -> Payload:
    for name in ("userName", "password", "deviceId", "appId", "verifyKey"):
        body.string(name)
    body.check()
    return envelope(LoginCode.APP_NOT_FOUND, "App not found.", token=None)


async def validate(core: GatewayCore, body: Body, claims: TokenClaims | None) -> Payload:
    """Handled in the app layer's token check: here the token is known to be usable."""
    assert claims is not None
    token, _ = core.tokens.issue(claims.user_name, claims.session_id)
    if core.config.validate_revokes_old:
        core.tokens.revoke_token(claims.token_id)
    return envelope(newToken=token)


def validate_problem(core: GatewayCore, problem: str, claims: TokenClaims) -> Payload | None:
    """What ``Auth/validate`` answers for an expired or ended session (None: renew it)."""
    if problem == "revoked":
        return envelope(ValidateCode.SESSION_NOT_FOUND, "Session not found.", newToken=None)
    mode = core.config.expired_validate
    now = core.clock.now().timestamp()
    if mode is ExpiredValidate.RENEW and now < claims.expires_at + core.config.validate_grace:
        return None
    return envelope(ValidateCode.EXPIRED_TOKEN, "Token expired.", newToken=None)


async def logout(core: GatewayCore, body: Body, claims: TokenClaims | None) -> Payload:
    assert claims is not None
    core.tokens.end_session(claims.session_id)
    await core.hubs.end_session(claims.session_id)
    core.record("logout", session=claims.session_id)
    return envelope()


# -- accounts and contracts ----------------------------------------------------------------------


async def account_search(core: GatewayCore, body: Body, _: TokenClaims | None) -> Payload:
    only_active = body.boolean("onlyActiveAccounts")
    body.check()
    accounts = [a for a in core.exchange.accounts() if a.can_trade or not only_active]
    return envelope(accounts=[account_json(a) for a in accounts])


async def contract_search(core: GatewayCore, body: Body, _: TokenClaims | None) -> Payload:
    text = body.string("searchText", required=False)
    body.boolean("live")
    body.check()
    found = core.exchange.search_contracts(text or "", core.config.contract_search_limit)
    return envelope(contracts=[contract_json(c) for c in found])


async def contract_by_id(core: GatewayCore, body: Body, _: TokenClaims | None) -> Payload:
    contract_id = body.string("contractId")
    body.check()
    contract = core.exchange.contract(contract_id or "")
    if contract is None or contract.id != contract_id:
        return envelope(1, "Contract not found.", contract=None)
    return envelope(contract=contract_json(contract))


async def contract_available(core: GatewayCore, body: Body, _: TokenClaims | None) -> Payload:
    body.boolean("live")
    body.check()
    return envelope(contracts=[contract_json(c) for c in core.exchange.contracts()])


async def retrieve_bars(core: GatewayCore, body: Body, _: TokenClaims | None) -> Payload:
    contract_id = body.string("contractId")
    body.boolean("live")
    start = body.timestamp("startTime")
    end = body.timestamp("endTime")
    unit = body.int32("unit")
    number = body.int32("unitNumber")
    limit = body.int32("limit")
    partial = body.boolean("includePartialBar")
    body.check()
    assert start is not None and end is not None and unit is not None
    assert number is not None and limit is not None and partial is not None
    contract = core.exchange.contract(contract_id or "")
    if contract is None or contract.id != contract_id:
        return envelope(BarsCode.CONTRACT_NOT_FOUND, "Contract not found.", bars=None)
    allowed = {u.value for u in BarUnit if u is not BarUnit.TICK or core.config.tick_bar_unit}
    if unit not in allowed:
        return envelope(BarsCode.UNIT_INVALID, f"Invalid unit ({unit}).", bars=None)
    if number < 1:
        return envelope(BarsCode.UNIT_NUMBER_INVALID, f"Invalid unit number ({number}).", bars=None)
    if not 1 <= limit <= core.config.max_bars:
        return envelope(BarsCode.LIMIT_INVALID, f"Invalid limit ({limit}).", bars=None)
    bars = core.history.bars(
        contract.id,
        unit=BarUnit(unit),
        number=number,
        start=start,
        end=end,
        limit=limit,
        include_partial=partial,
        now=core.clock.now(),
    )
    return envelope(
        bars=[
            {"t": bar_time(b), "o": b.open, "h": b.high, "l": b.low, "c": b.close, "v": b.volume}
            for b in bars
        ]
    )


# -- orders --------------------------------------------------------------------------------------


def _bracket(body: Body | None) -> tuple[BracketSpec | None, str | None]:
    """A bracket leg, or the rejection text for a leg the exchange cannot even represent."""
    if body is None:
        return None, None
    ticks = body.int32("ticks")
    kind = body.int32("type")
    if ticks is None or kind is None:
        return None, None
    try:
        return BracketSpec(ticks, OrderType(kind)), None
    except ValueError:
        return None, f"Invalid bracket order type ({kind})."


async def order_place(core: GatewayCore, body: Body, _: TokenClaims | None) -> Payload:
    account_id = body.int32("accountId")
    contract_id = body.string("contractId")
    kind = body.int32("type")
    side = body.int32("side")
    size = body.int32("size")
    limit_price = body.decimal("limitPrice")
    stop_price = body.decimal("stopPrice")
    trail_price = body.decimal("trailPrice")
    tag = body.string("customTag", required=False)
    body.int64("linkedOrderId", required=False)  # older docs; accepted and ignored (§9)
    stop_loss, stop_problem = _bracket(body.object("stopLossBracket"))
    take_profit, take_problem = _bracket(body.object("takeProfitBracket"))
    body.check()
    assert account_id is not None and contract_id is not None
    assert kind is not None and side is not None and size is not None
    problem = stop_problem or take_problem
    try:
        order_type, order_side = OrderType(kind), OrderSide(side)
    except ValueError:
        problem = problem or f"Invalid order type ({kind}) or side ({side})."
    if problem is not None:
        if not _has_account(core, account_id):
            return envelope(PlaceCode.ACCOUNT_NOT_FOUND, "Account not found.", orderId=None)
        return envelope(PlaceCode.ORDER_REJECTED, problem, orderId=None)
    request = OrderRequest(
        account_id=account_id,
        contract_id=contract_id,
        type=order_type,
        side=order_side,
        size=size,
        limit_price=limit_price,
        stop_price=stop_price,
        trail_price=trail_price,
        custom_tag=tag,
        stop_loss_bracket=stop_loss,
        take_profit_bracket=take_profit,
    )
    result = core.exchange.place(request)
    return envelope(result.error_code, result.error_message, orderId=result.order_id)


async def order_cancel(core: GatewayCore, body: Body, _: TokenClaims | None) -> Payload:
    account_id = body.int32("accountId")
    order_id = body.int64("orderId")
    body.check()
    assert account_id is not None and order_id is not None
    result = core.exchange.cancel(account_id, order_id)
    return envelope(result.error_code, result.error_message)


async def order_modify(core: GatewayCore, body: Body, _: TokenClaims | None) -> Payload:
    account_id = body.int32("accountId")
    order_id = body.int64("orderId")
    size = body.int32("size", required=False)
    limit_price = body.decimal("limitPrice")
    stop_price = body.decimal("stopPrice")
    trail_price = body.decimal("trailPrice")
    body.check()
    assert account_id is not None and order_id is not None
    result = core.exchange.modify(
        account_id,
        order_id,
        size=size,
        limit_price=limit_price,
        stop_price=stop_price,
        trail_price=trail_price,
    )
    return envelope(result.error_code, result.error_message)


def _window(orders: list[Order], start: datetime | None, end: datetime | None) -> list[Order]:
    return [
        o
        for o in orders
        if (start is None or o.creation_timestamp >= start)
        and (end is None or o.creation_timestamp <= end)
    ]


async def order_search(core: GatewayCore, body: Body, _: TokenClaims | None) -> Payload:
    account_id = body.int32("accountId")
    start = body.timestamp("startTimestamp")
    end = body.timestamp("endTimestamp", required=False)
    body.check()
    assert account_id is not None
    if not _has_account(core, account_id):
        return envelope(ACCOUNT_NOT_FOUND, "Account not found.", orders=None)
    orders = _window(core.exchange.orders(account_id), start, end)
    return envelope(orders=_orders_json(core, orders))


async def order_search_open(core: GatewayCore, body: Body, _: TokenClaims | None) -> Payload:
    account_id = body.int32("accountId")
    body.check()
    assert account_id is not None
    if not _has_account(core, account_id):
        return envelope(ACCOUNT_NOT_FOUND, "Account not found.", orders=None)
    return envelope(orders=_orders_json(core, core.exchange.open_orders(account_id)))


async def order_search_by_id(core: GatewayCore, body: Body, _: TokenClaims | None) -> Payload:
    account_id = body.int32("accountId")
    order_id = body.int64("orderId")
    body.check()
    assert account_id is not None and order_id is not None
    order = core.exchange.order(account_id, order_id) if _has_account(core, account_id) else None
    if order is None:
        return envelope(1, "Order not found.", order=None)
    return envelope(order=_orders_json(core, [order])[0])


async def order_query(core: GatewayCore, body: Body, _: TokenClaims | None) -> Payload:
    """``Order/v2/query`` (RS only, UNCONFIRMED in docs; project-x-py 4.x calls it)."""
    flt = body.object("filter")
    page_size = body.int32("pageSize", required=False)
    page_offset = body.int32("pageOffset", required=False)
    sort_by = body.int32("sortBy", required=False)
    direction = body.int32("sortDirection", required=False)
    with_total = body.boolean("includeTotalCount", required=False)
    account_id = statuses = contract_id = after = before = None
    if flt is not None:
        account_id = flt.int32("accountId")
        statuses = flt.int_list("statuses")
        contract_id = flt.string("contractId", required=False)
        after = flt.timestamp("createdAfter", required=False)
        before = flt.timestamp("createdBefore", required=False)
    else:
        body.errors.setdefault("Filter", []).append("The Filter field is required.")
    body.check()
    assert account_id is not None
    if not _has_account(core, account_id):
        return envelope(ACCOUNT_NOT_FOUND, "Account not found.", orders=None)
    orders = _window(core.exchange.orders(account_id), after, before)
    if statuses:
        wanted = set(statuses)
        orders = [o for o in orders if int(o.status) in wanted]
    if contract_id:
        orders = [o for o in orders if o.contract_id == contract_id]
    key: Callable[[Order], Any] = (
        (lambda o: o.id) if sort_by == 1 else (lambda o: (o.creation_timestamp, o.id))
    )
    orders.sort(key=key, reverse=direction == 1)
    total = len(orders)
    offset = max(0, page_offset or 0)
    size = min(MAX_PAGE_SIZE, page_size if page_size and page_size > 0 else 50)
    payload = envelope(orders=_orders_json(core, orders[offset : offset + size]))
    if with_total:
        payload["totalCount"] = total
    return payload


# -- positions and trades ------------------------------------------------------------------------


async def position_search_open(core: GatewayCore, body: Body, _: TokenClaims | None) -> Payload:
    account_id = body.int32("accountId")
    body.check()
    assert account_id is not None
    if not _has_account(core, account_id):
        return envelope(ACCOUNT_NOT_FOUND, "Account not found.", positions=None)
    return envelope(positions=[position_json(p) for p in core.exchange.positions(account_id)])


async def position_close(core: GatewayCore, body: Body, _: TokenClaims | None) -> Payload:
    account_id = body.int32("accountId")
    contract_id = body.string("contractId")
    body.check()
    assert account_id is not None and contract_id is not None
    result = core.exchange.close_position(account_id, contract_id)
    return envelope(result.error_code, result.error_message)


async def position_partial_close(core: GatewayCore, body: Body, _: TokenClaims | None) -> Payload:
    account_id = body.int32("accountId")
    contract_id = body.string("contractId")
    size = body.int32("size")
    body.check()
    assert account_id is not None and contract_id is not None and size is not None
    result = core.exchange.partial_close(account_id, contract_id, size)
    return envelope(result.error_code, result.error_message)


async def trade_search(core: GatewayCore, body: Body, _: TokenClaims | None) -> Payload:
    account_id = body.int32("accountId")
    # DOC marks the start required, the late swagger optional: accept both.
    start = body.timestamp("startTimestamp", required=False)
    end = body.timestamp("endTimestamp", required=False)
    body.check()
    assert account_id is not None
    if not _has_account(core, account_id):
        return envelope(ACCOUNT_NOT_FOUND, "Account not found.", trades=None)
    trades = [
        t
        for t in core.exchange.trades(account_id)
        if (start is None or t.creation_timestamp >= start)
        and (end is None or t.creation_timestamp <= end)
    ]
    return envelope(trades=[trade_json(t) for t in trades])


# Lower-case paths below /api/ (paths are case-insensitive on the wire).
ENDPOINTS: dict[str, Endpoint] = {
    "auth/loginkey": Endpoint(login_key, auth=False),
    "auth/loginapp": Endpoint(login_app, auth=False),
    "auth/validate": Endpoint(validate, empty_body=True),
    "auth/logout": Endpoint(logout, empty_body=True),
    "account/search": Endpoint(account_search),
    "contract/search": Endpoint(contract_search),
    "contract/searchbyid": Endpoint(contract_by_id),
    "contract/available": Endpoint(contract_available),
    "history/retrievebars": Endpoint(retrieve_bars, bars=True),
    "order/place": Endpoint(order_place, mutation=True),
    "order/cancel": Endpoint(order_cancel, mutation=True),
    "order/modify": Endpoint(order_modify, mutation=True),
    "order/search": Endpoint(order_search),
    "order/searchopen": Endpoint(order_search_open),
    "order/searchbyid": Endpoint(order_search_by_id),
    "order/v2/query": Endpoint(order_query),
    "position/searchopen": Endpoint(position_search_open),
    "position/closecontract": Endpoint(position_close, mutation=True),
    "position/partialclosecontract": Endpoint(position_partial_close, mutation=True),
    "trade/search": Endpoint(trade_search),
}

__all__ = ["ENDPOINTS", "Endpoint", "Handler", "validate_problem"]
