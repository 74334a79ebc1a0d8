"""``orderguard dashboard``: the live operator's page (and ``/metrics``) on 127.0.0.1.

* ``--demo``: the embedded exchange with a strategy loop, so the page is live without an account;
* beside a running strategy: its journal read-only (``--journal FILE``) and, with ``--broker``
  (the operator commands' broker options: ``projectx`` with ``--api-url``/``--projectx-config``,
  or ``sim --state FILE``), broker truth — positions and working orders, read over REST at most
  every 10 s (no hubs). The journal defaults as for the other commands (the ProjectX account's).
  No rollback from here: the process that owns the operations serves that, with
  ``await serve_dashboard(orders)``, or ``orderguard rollback``.

The token that authorises rollbacks is printed once at start, inside the page's URL fragment
(which a browser never sends to the server); it never goes to a log. Exit statuses follow the
operator commands' table (:mod:`orderguard.cli.exit_codes`): 2 for bad input (and a port that
cannot be bound), 4 when the broker cannot be reached; Ctrl-C is how it ends (0).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

import typer

from orderguard.cli import exit_codes
from orderguard.cli.options import AccountOpt, ApiUrlOpt, JournalOpt, PxConfigOpt, StateOpt
from orderguard.cli.session import BrokerKind, Target, open_session
from orderguard.dashboard import DEFAULT_PORT, DashboardServer, JournalSource, ManagerSource
from orderguard.dashboard.demo import demo_session
from orderguard.errors import BrokerError, ConfigurationError, UnknownAccountError

app = typer.Typer()


async def _serve_forever(server: DashboardServer) -> None:
    await server.start()
    typer.echo(f"orderguard dashboard: {server.url_with_token}")
    typer.echo("(the token after #token= authorises rollbacks; Ctrl-C stops)")
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


async def _demo(host: str, port: int, seed: int, every: float) -> None:
    async with demo_session(seed=seed, every=every) as session:
        manager = session.manager
        source = ManagerSource(manager, manager.alerts)
        await _serve_forever(DashboardServer(source, host=host, port=port))


async def _beside(target: Target, broker: BrokerKind | None, host: str, port: int) -> None:
    if broker is None:
        assert target.journal is not None
        await _serve_forever(DashboardServer(JournalSource(target.journal), host=host, port=port))
        return
    async with open_session(target, realtime=False) as session:
        journal = session.journal
        if journal is None or not journal.is_file():
            raise ConfigurationError(f"no journal file at {journal} (give --journal FILE)")
        source = JournalSource(journal, broker=session.broker)
        await _serve_forever(DashboardServer(source, host=host, port=port))


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"orderguard dashboard: {message}", err=True)
    return typer.Exit(code)


@app.command()
def dashboard(
    demo: Annotated[
        bool, typer.Option("--demo", help="Run the embedded exchange with a strategy loop.")
    ] = False,
    journal: JournalOpt = None,
    broker: Annotated[
        BrokerKind | None,
        typer.Option(
            "--broker",
            case_sensitive=False,
            help="Beside a strategy: read positions and working orders (broker truth) from "
            "this broker every 10 s; the operator commands' broker options apply.",
        ),
    ] = None,
    state: StateOpt = None,
    api_url: ApiUrlOpt = None,
    projectx_config: PxConfigOpt = None,
    account: AccountOpt = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free).")] = (
        DEFAULT_PORT
    ),
    seed: Annotated[int, typer.Option(help="Seed of the demo's market and strategy.")] = 1,
    every: Annotated[
        float, typer.Option(min=0.1, help="Seconds between the demo's brackets.")
    ] = 2.0,
) -> None:
    """Serve the live dashboard (operations, protection, breakers, charts, rollback)."""
    beside = journal is not None or broker is not None
    if demo == beside:
        raise _fail(
            "give exactly one of --demo or --journal FILE / --broker (beside a strategy)",
            exit_codes.USAGE,
        )
    if journal is not None and not journal.is_file():
        raise _fail(f"no journal file at {journal}", exit_codes.USAGE)
    target = Target(broker or BrokerKind.SIM, state, api_url, projectx_config, account, journal)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            if demo:
                asyncio.run(_demo(host, port, seed, every))
            else:
                asyncio.run(_beside(target, broker, host, port))
    except (ConfigurationError, UnknownAccountError) as exc:
        raise _fail(str(exc), exit_codes.USAGE) from None
    except BrokerError as exc:
        raise _fail(f"broker unreachable: {exc}", exit_codes.UNAVAILABLE) from None
    except OSError as exc:
        raise _fail(exc.strerror or str(exc), exit_codes.USAGE) from None
