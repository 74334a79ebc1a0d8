"""Saving and restoring a :class:`SimExchange`'s whole state as plain JSON-able values.

For servers that must remember across restarts (``orderguard gateway --state FILE``). It lives
beside the exchange because it has to read and rebuild the exchange's private records — the
live orders with their matching flags (a triggered stop, a pinned bracket leg), the brackets,
the books, the ``customTag`` sets and the id counters — which no public method exposes. Keeping
that knowledge in this one module leaves ``exchange.py`` untouched.

Values are strings for decimals and ISO text for timestamps, so the format does not depend on
any JSON encoder. :func:`restore` only fills an exchange with no accounts.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from decimal import Decimal
from typing import Any

from orderguard.models import OrderSide, OrderStatus, OrderType, Trade

from .exchange import SimExchange
from .matching import Exact, quote_for
from .records import AccountState, Bracket, LiveOrder, NetPosition

Snapshot = dict[str, Any]


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _undec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _peek(counter: itertools.count[int]) -> int:
    """The next value of an ``itertools.count`` without consuming it (its repr is count(n))."""
    return int(repr(counter)[len("count(") : -1])


def dump_order(order: LiveOrder) -> Snapshot:
    return {
        "id": order.id,
        "accountId": order.account_id,
        "contractId": order.contract.id,
        "created": order.created.isoformat(),
        "updated": order.updated.isoformat(),
        "status": int(order.status),
        "type": int(order.type),
        "side": int(order.side),
        "size": order.size,
        "limitPrice": _dec(order.limit_price),
        "stopPrice": _dec(order.stop_price),
        "trailPrice": _dec(order.trail_price),
        "fillVolume": order.fill_volume,
        "notional": str(order.notional),
        "filledPrice": _dec(order.filled_price),
        "customTag": order.custom_tag,
        "parentOrderId": order.parent_order_id,
        "bracketTicks": order.bracket_ticks,
        "pinned": order.pinned,
        "unlimited": order.unlimited,
        "triggered": order.triggered,
        "aggressive": order.aggressive,
    }


def dump_trade(trade: Trade) -> Snapshot:
    return {
        "id": trade.id,
        "accountId": trade.account_id,
        "contractId": trade.contract_id,
        "created": trade.creation_timestamp.isoformat(),
        "price": str(trade.price),
        "pnl": _dec(trade.profit_and_loss),
        "fees": str(trade.fees),
        "side": int(trade.side),
        "size": trade.size,
        "voided": trade.voided,
        "orderId": trade.order_id,
    }


def dump_position(position: NetPosition) -> Snapshot:
    return {
        "id": position.id,
        "accountId": position.account_id,
        "contractId": position.contract.id,
        "created": position.created.isoformat(),
        "size": position.size,
        "averagePrice": str(position.average_price),
        # The exact average the P&L of a later close is computed from (the wire value above
        # is rounded to 9 places and alone would book a restored position's close wrongly).
        "average": [position.average.num, position.average.den],
    }


def dump_account(state: AccountState) -> Snapshot:
    return {
        "id": state.id,
        "name": state.name,
        "balance": str(state.balance),
        "nativeBrackets": state.native_brackets,
        "maxOrderSize": state.max_order_size,
        "canTrade": state.can_trade,
    }


def live_order(exchange: SimExchange, account_id: int, order_id: int) -> LiveOrder | None:
    account = exchange._accounts.get(account_id)
    return None if account is None else account.orders.get(order_id)


def dump_meta(exchange: SimExchange) -> Snapshot:
    """Counters and last prices: what changes on every fill or price step."""
    return {
        "nextOrderId": _peek(exchange._order_ids),
        "nextTradeId": _peek(exchange._trade_ids),
        "nextPositionId": _peek(exchange._position_ids),
        "quotes": {cid: str(q.last) for cid, q in exchange._quotes.items()},
        "liquidity": exchange.liquidity,
    }


def dump(exchange: SimExchange) -> Snapshot:
    """Everything, in one value."""
    accounts = []
    for state in exchange._accounts.values():
        accounts.append(
            {
                **dump_account(state),
                "orders": [dump_order(o) for o in state.orders.values()],
                "trades": [dump_trade(t) for t in state.trades],
                "positions": [dump_position(p) for p in state.positions.values()],
            }
        )
    return {"meta": dump_meta(exchange), "accounts": accounts}


def restore(exchange: SimExchange, snapshot: Snapshot) -> None:
    """Rebuild ``snapshot`` into an exchange that has no accounts yet (no events are sent)."""
    if exchange._accounts:
        raise ValueError("restore needs an exchange without accounts")
    for data in snapshot["accounts"]:
        state = AccountState(
            data["id"],
            data["name"],
            Decimal(data["balance"]),
            data["nativeBrackets"],
            data["maxOrderSize"],
            data.get("canTrade", True),
        )
        exchange._accounts[state.id] = state
        for item in data["orders"]:
            order = _load_order(exchange, item)
            state.orders[order.id] = order
            if order.custom_tag is not None:
                state.tags.add(order.custom_tag)
            if order.is_working:
                exchange._books.setdefault(order.contract.id, {})[order.id] = order
        _link_brackets(state)
        for item in data["trades"]:
            state.trades.append(_load_trade(item))
        for item in data["positions"]:
            contract = exchange.contract(item["contractId"])
            assert contract is not None
            position = NetPosition(
                item["id"], state.id, contract, datetime.fromisoformat(item["created"])
            )
            position.size = item["size"]
            position.average_price = Decimal(item["averagePrice"])
            exact = item.get("average")  # absent in files written before it was kept
            position.average = (
                Exact(int(exact[0]), int(exact[1]))
                if exact is not None
                else Exact.of(position.average_price)
            )
            state.positions[contract.id] = position
    meta = snapshot["meta"]
    exchange._order_ids = itertools.count(meta["nextOrderId"])
    exchange._trade_ids = itertools.count(meta["nextTradeId"])
    exchange._position_ids = itertools.count(meta["nextPositionId"])
    exchange.liquidity = meta.get("liquidity")
    for contract_id, last in meta["quotes"].items():
        contract = exchange.contract(contract_id)
        if contract is not None:
            exchange._quotes[contract.id] = quote_for(Decimal(last), contract.tick_size)


def _load_order(exchange: SimExchange, item: Snapshot) -> LiveOrder:
    contract = exchange.contract(item["contractId"])
    if contract is None:
        raise ValueError(f"snapshot names unknown contract {item['contractId']!r}")
    order = LiveOrder(
        item["id"],
        account_id=item["accountId"],
        contract=contract,
        now=datetime.fromisoformat(item["created"]),
        status=OrderStatus(item["status"]),
        order_type=OrderType(item["type"]),
        side=OrderSide(item["side"]),
        size=item["size"],
        limit_price=_undec(item["limitPrice"]),
        stop_price=_undec(item["stopPrice"]),
        trail_price=_undec(item["trailPrice"]),
        custom_tag=item["customTag"],
        parent_order_id=item["parentOrderId"],
    )
    order.updated = datetime.fromisoformat(item["updated"])
    order.fill_volume = item["fillVolume"]
    order.notional = Decimal(item["notional"])
    order.filled_price = _undec(item["filledPrice"])
    order.bracket_ticks = item["bracketTicks"]
    order.pinned = item["pinned"]
    order.unlimited = item["unlimited"]
    order.triggered = item["triggered"]
    order.aggressive = item["aggressive"]
    return order


def _link_brackets(state: AccountState) -> None:
    """Re-create each native bracket from its legs' ``parent_order_id`` (legs in id order)."""
    for order in state.orders.values():
        parent_id = order.parent_order_id
        if parent_id is None:
            continue
        entry = state.orders.get(parent_id)
        if entry is None:
            continue
        if entry.bracket is None:
            entry.bracket = Bracket(entry)
        entry.bracket.legs.append(order)
        order.bracket = entry.bracket


def _load_trade(item: Snapshot) -> Trade:
    return Trade(
        id=item["id"],
        account_id=item["accountId"],
        contract_id=item["contractId"],
        creation_timestamp=datetime.fromisoformat(item["created"]),
        price=Decimal(item["price"]),
        profit_and_loss=_undec(item["pnl"]),
        fees=Decimal(item["fees"]),
        side=OrderSide(item["side"]),
        size=item["size"],
        voided=item["voided"],
        order_id=item["orderId"],
    )


__all__ = ["dump", "dump_account", "dump_meta", "dump_order", "dump_position", "dump_trade",
           "live_order", "restore"]  # fmt: skip
