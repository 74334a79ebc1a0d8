"""Which broker an operator command talks to, and the journal it reads or takes over.

``--broker sim`` is the embedded simulated exchange, in this process. A command line process
lives for one command, so the exchange keeps its state in a file between commands: ``--state
FILE`` is the same SQLite file ``orderguard gateway --state FILE`` keeps (accounts, orders,
positions, trades, prices), loaded before the command and saved after it. Its market does not
move while a command runs (no random walk): prices are where the file left them, or the
simulator's start prices for a new file. Without ``--state`` the exchange is fresh and gone
after the command. Never point ``--state`` at the file of a *running* gateway (it would
overwrite what the command did): talk to a running gateway as to ProjectX instead.

``--broker projectx`` is the ProjectX adapter, configured as the adapter is (``PROJECT_X_API_KEY``,
``PROJECT_X_USERNAME``, ``PROJECT_X_ACCOUNT_NAME``, ``PROJECTX_*``; ``--projectx-config FILE``
for a settings file, ``--api-url`` to override ``PROJECTX_API_URL``). ``--api-url
http://127.0.0.1:PORT`` reaches a running ``orderguard gateway`` — the way to look at and act on
a live simulated account whose market moves.

The journal: ``--journal FILE`` (or ``ORDERGUARD_JOURNAL``); else, with ProjectX, the adapter's
default per account (``~/.local/state/orderguard/<firm>-<account>.db``, the one a strategy
using the default writes); with the simulator, ``STATE.journal.db`` beside ``--state``; else
none (in memory). Reading commands (``status``, ``ops``) open it read-only, safe beside a running
strategy. Acting commands (``bracket``, ``close``, ``cancel-all``, ``rollback``, ``recover``)
start an OrderManager on it, whose start-up recovery takes over every unfinished operation in
it: run those on a strategy's journal only while that strategy is stopped.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from orderguard.broker.base import Broker
from orderguard.broker.projectx import ProjectXBroker, ProjectXSettings, default_journal_path
from orderguard.broker.sim import SimBroker
from orderguard.cli import logs
from orderguard.config import OrderManagerConfig
from orderguard.errors import ConfigurationError, UnknownAccountError
from orderguard.gateway import Gateway, GatewayConfig
from orderguard.gateway.market import start_price
from orderguard.models import Account


class BrokerKind(StrEnum):
    SIM = "sim"
    PROJECTX = "projectx"


@dataclass(frozen=True, slots=True)
class Target:
    """What the broker options of a command name."""

    broker: BrokerKind = BrokerKind.SIM
    state: Path | None = None
    api_url: str | None = None
    projectx_config: Path | None = None
    account: int | None = None
    journal: Path | None = None
    config: Path | None = None

    def manager_config(self) -> OrderManagerConfig:
        """OrderManager settings: ``--config FILE`` (TOML/JSON), else ``ORDERGUARD_*`` and
        defaults. Risk limits are set here."""
        if self.config is None:
            return OrderManagerConfig()
        try:
            return OrderManagerConfig.from_file(self.config)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"config file {self.config}: {exc}") from exc


@dataclass(slots=True)
class Session:
    """An open broker, the accounts it lists and the account the command acts on."""

    kind: BrokerKind
    broker: Broker
    accounts: list[Account]
    account: Account
    journal: Path | None
    label: str
    extras: dict[str, Any] = field(default_factory=dict)


def _pick(accounts: list[Account], wanted: int | None) -> Account:
    if wanted is not None:
        for account in accounts:
            if account.id == wanted:
                return account
        raise UnknownAccountError(f"account {wanted} is not known to the broker")
    for account in accounts:
        if account.can_trade:
            return account
    raise UnknownAccountError("the broker lists no tradable account")


def _projectx_settings(target: Target) -> ProjectXSettings:
    over: dict[str, Any] = {}
    if target.api_url is not None:
        over["api_url"] = target.api_url
    try:
        if target.projectx_config is not None:
            return ProjectXSettings.from_file(target.projectx_config, **over)
        return ProjectXSettings(**over)
    except PydanticValidationError as exc:
        # Field names and reasons only: pydantic's text would quote the values (the key).
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigurationError(
            f"ProjectX settings: {problems} (set PROJECT_X_API_KEY and PROJECT_X_USERNAME, "
            "or give --projectx-config)"
        ) from None


@contextlib.asynccontextmanager
async def open_session(target: Target, *, realtime: bool = True) -> AsyncIterator[Session]:
    """Open the broker of ``target`` for one command; closes it (and saves sim state) after."""
    if target.broker is BrokerKind.SIM:
        async with _sim(target) as session:
            yield session
    else:
        async with _projectx(target, realtime) as session:
            yield session


@contextlib.asynccontextmanager
async def _sim(target: Target) -> AsyncIterator[Session]:
    if target.state is not None and target.state.is_dir():
        raise IsADirectoryError(f"--state {target.state} is a directory")
    if target.state is not None and not target.state.parent.is_dir():
        raise FileNotFoundError(f"--state {target.state}: no directory {target.state.parent}")
    config = GatewayConfig()
    gateway = Gateway(config, state_path=target.state)
    exchange = gateway.exchange
    for contract in exchange.contracts():
        if exchange.last_price(contract.id) is None:
            exchange.set_price(contract.id, start_price(contract, config.start_prices))
    broker = SimBroker(exchange, gateway.clock)
    journal = target.journal
    if journal is None and target.state is not None:
        journal = target.state.with_name(target.state.name + ".journal.db")
    try:
        accounts = exchange.accounts()
        where = f"state {target.state}" if target.state is not None else "fresh, not kept"
        yield Session(
            BrokerKind.SIM,
            broker,
            accounts,
            _pick(accounts, target.account),
            journal,
            f"sim ({where})",
            {"gateway": gateway},
        )
    finally:
        store = gateway.core.store
        if store is not None:
            await store.save(gateway.core)
            store.close()


@contextlib.asynccontextmanager
async def _projectx(target: Target, realtime: bool) -> AsyncIterator[Session]:
    settings = _projectx_settings(target)
    broker = ProjectXBroker(settings, realtime=realtime)
    logs.redact_with(broker.secrets)
    try:
        await broker.start()
        accounts = await broker.get_accounts()
        if target.account is not None:
            account = _pick(accounts, target.account)
        else:
            account = await broker.selected_account()
        journal = target.journal
        if journal is None:
            journal = default_journal_path(broker.firm, account.name)
        yield Session(
            BrokerKind.PROJECTX,
            broker,
            accounts,
            account,
            journal,
            f"projectx ({broker.endpoints.api_base})",
        )
    finally:
        await broker.aclose()


__all__ = ["BrokerKind", "Session", "Target", "open_session"]
