"""``--state FILE``: the gateway remembers accounts, orders, positions, trades and id counters.

One SQLite file (WAL). Writes are incremental: the exchange's events mark which orders and trades
changed, and :meth:`StateStore.save` writes just those, plus every working order (their
matching flags change without events) and the counters, in one transaction. The REST layer saves
before it answers a mutation, so an acknowledged order survives a crash of the server right
after; market moves are saved by a periodic task (a crash loses at most its last second of
prices). The API key, the token-signing secret and the token counter are kept too, so a client's
token and key still work after a restart — as they would against the real gateway.

The file holds the API key and the signing secret: it is created with mode 0600.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orderguard.broker.base import BrokerEvent, OrderEvent, TradeEvent
from orderguard.broker.sim import snapshot

if TYPE_CHECKING:
    from .core import GatewayCore

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (id INTEGER PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trades (
    id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS positions (
    account_id INTEGER NOT NULL, contract_id TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (account_id, contract_id));
"""


class StateStore:
    """The gateway's SQLite state file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fresh = not path.exists()
        if fresh:
            path.touch(mode=0o600)
        os.chmod(path, 0o600)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._orders: set[tuple[int, int]] = set()
        self._trades: list[Any] = []
        self.saves = 0

    def close(self) -> None:
        self._db.close()

    # -- marking ----------------------------------------------------------------------------------
    def mark(self, event: BrokerEvent) -> None:
        if isinstance(event, OrderEvent):
            self._orders.add((event.order.account_id, event.order.id))
        elif isinstance(event, TradeEvent):
            self._trades.append(event.trade)

    # -- writing ----------------------------------------------------------------------------------
    async def save(self, core: GatewayCore) -> None:
        """Write what changed since the last save (synchronously: small, and on loopback)."""
        exchange = core.exchange
        orders, self._orders = self._orders, set()
        trades, self._trades = self._trades, []
        db = self._db
        db.execute("BEGIN")
        try:
            for account in exchange.accounts():
                live = [o for o in exchange.orders(account.id) if o.is_working]
                orders.update((account.id, o.id) for o in live)
            for account_id, order_id in orders:
                order = snapshot.live_order(exchange, account_id, order_id)
                if order is not None:
                    db.execute(
                        "INSERT OR REPLACE INTO orders VALUES (?, ?, ?)",
                        (order_id, account_id, json.dumps(snapshot.dump_order(order))),
                    )
            for trade in trades:
                db.execute(
                    "INSERT OR REPLACE INTO trades VALUES (?, ?, ?)",
                    (trade.id, trade.account_id, json.dumps(snapshot.dump_trade(trade))),
                )
            # Accounts and positions are few: rewrite them all (a bracket-mode switch or a
            # balance change needs no event to be kept).
            for account_id, state in exchange._accounts.items():
                db.execute(
                    "INSERT OR REPLACE INTO accounts VALUES (?, ?)",
                    (account_id, json.dumps(snapshot.dump_account(state))),
                )
                db.execute("DELETE FROM positions WHERE account_id = ?", (account_id,))
                for position in state.positions.values():
                    db.execute(
                        "INSERT INTO positions VALUES (?, ?, ?)",
                        (account_id, position.contract.id,
                         json.dumps(snapshot.dump_position(position))),
                    )  # fmt: skip
            meta = {
                "exchange": json.dumps(snapshot.dump_meta(exchange)),
                "api_key": core.api_key,
                "jwt_secret": core.tokens.secret,
                "tokens_issued": str(core.tokens.issued),
            }
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta.items())
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.saves += 1

    # -- reading ----------------------------------------------------------------------------------
    def load_meta(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def restore(self, core: GatewayCore) -> bool:
        """Fill the core's (empty) exchange from the file; False when the file has no accounts."""
        db = self._db
        rows = db.execute("SELECT id, data FROM accounts ORDER BY id").fetchall()
        meta = self.load_meta()
        if not rows or "exchange" not in meta:
            return False
        accounts = []
        for account_id, data in rows:
            account = json.loads(data)
            account["orders"] = [
                json.loads(d)
                for (d,) in db.execute(
                    "SELECT data FROM orders WHERE account_id = ? ORDER BY id", (account_id,)
                )
            ]
            account["trades"] = [
                json.loads(d)
                for (d,) in db.execute(
                    "SELECT data FROM trades WHERE account_id = ? ORDER BY id", (account_id,)
                )
            ]
            account["positions"] = [
                json.loads(d)
                for (d,) in db.execute(
                    "SELECT data FROM positions WHERE account_id = ?", (account_id,)
                )
            ]
            accounts.append(account)
        snapshot.restore(
            core.exchange, {"meta": json.loads(meta["exchange"]), "accounts": accounts}
        )
        return True


__all__ = ["StateStore"]
