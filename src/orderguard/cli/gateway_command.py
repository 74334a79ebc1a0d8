"""``orderguard gateway``: serve the simulated exchange over the ProjectX wire protocol.

Binds 127.0.0.1 by default and refuses any other address unless ``--allow-remote`` is given (the
simulator has no real security: a printed API key and a control API). Prints the URLs to point
a client at and the credentials to log in with, then serves until interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from pathlib import Path
from typing import Annotated

import typer

from orderguard.gateway import Gateway, GatewayConfig, parse_accounts
from orderguard.gateway.config import ExpiredValidate, RateLimit, UserEventShape
from orderguard.gateway.market import load_price_file

app = typer.Typer()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def gateway(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port; 0 picks a free one.")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the price paths and market data.")] = 0,
    accounts: Annotated[
        str,
        typer.Option(
            help="ID[:NAME[:BALANCE[:auto|position]]],... (position = legacy "
            "Position Brackets mode)."
        ),
    ] = "1:SIM-1:50000:auto",
    state: Annotated[
        Path | None, typer.Option(help="SQLite file that keeps state across restarts.")
    ] = None,
    user_name: Annotated[str, typer.Option(help="The userName clients log in with.")] = (
        "orderguard"
    ),
    api_key: Annotated[
        str | None, typer.Option(help="The apiKey (default: random, kept in --state).")
    ] = None,
    prices: Annotated[
        Path | None, typer.Option(help="Replay CONTRACT,PRICE lines instead of random walks.")
    ] = None,
    loop_prices: Annotated[bool, typer.Option(help="Replay --prices forever.")] = False,
    tick_interval: Annotated[float, typer.Option(help="Seconds between price steps.")] = 0.25,
    token_lifetime: Annotated[float, typer.Option(help="Token lifetime in seconds.")] = 86400.0,
    expired_validate: Annotated[
        ExpiredValidate, typer.Option(help="Auth/validate with an expired token.")
    ] = ExpiredValidate.REJECT,
    user_events: Annotated[
        UserEventShape, typer.Option(help="User-hub payloads: {action,data} or bare.")
    ] = UserEventShape.ACTION,
    bars_limit: Annotated[int, typer.Option(help="retrieveBars requests per 30 s.")] = 30,
    general_limit: Annotated[int, typer.Option(help="Other requests per 60 s.")] = 200,
    no_rate_limits: Annotated[bool, typer.Option(help="Serve without 429s.")] = False,
    retry_after: Annotated[bool, typer.Option(help="Send Retry-After with 429s.")] = False,
    liquidity: Annotated[
        int | None, typer.Option(min=1, help="Contracts per order per price step.")
    ] = None,
    allow_remote: Annotated[
        bool, typer.Option(help="Allow binding a non-loopback address.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log requests.")] = False,
) -> None:
    """Serve the simulated exchange over ProjectX REST + SignalR on loopback."""
    if not _is_loopback(host) and not allow_remote:
        typer.echo(
            f"refusing to bind {host}: not a loopback address (use --allow-remote)", err=True
        )
        raise typer.Exit(2)
    try:
        config = GatewayConfig(
            user_name=user_name,
            api_key=api_key,
            accounts=parse_accounts(accounts),
            seed=seed,
            token_lifetime=token_lifetime,
            expired_validate=expired_validate,
            user_event_shape=user_events,
            bars_limit=RateLimit(bars_limit, 30.0),
            general_limit=RateLimit(general_limit, 60.0),
            rate_limits=not no_rate_limits,
            retry_after=retry_after,
            tick_interval=tick_interval,
            liquidity=liquidity,
        )
        series = load_price_file(prices.read_text()) if prices is not None else None
    except (ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if verbose:
        # The root command installed the log handler (--log-json, --log-level): only raise
        # its level here.
        logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(config, host, port, state, series, loop_prices))


async def _serve(
    config: GatewayConfig,
    host: str,
    port: int,
    state: Path | None,
    series: dict[str, list] | None,  # type: ignore[type-arg]
    loop: bool,
) -> None:
    server = Gateway(config, state_path=state, price_series=series, loop_series=loop)
    urls = await server.start(host, port)
    user, key = server.credentials
    typer.echo(f"orderguard gateway serving on {urls.base}")
    typer.echo(f"  REST API     {urls.api}")
    typer.echo(f"  user hub     {urls.user_hub}")
    typer.echo(f"  market hub   {urls.market_hub}")
    typer.echo(f"  control API  {urls.control}  (loopback only)")
    typer.echo(f"  state        {state or 'in memory'}{' (restored)' if server.restored else ''}")
    typer.echo("credentials (for this simulator only):")
    typer.echo(f"  userName     {user}")
    typer.echo(f"  apiKey       {key}")
    typer.echo("project-x-py:")
    typer.echo(
        f"  export PROJECTX_API_URL={urls.api} PROJECTX_USER_HUB_URL={urls.user_hub} "
        f"PROJECTX_MARKET_HUB_URL={urls.market_hub}"
    )
    typer.echo(f"  export PROJECT_X_USERNAME={user} PROJECT_X_API_KEY={key}")
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


__all__ = ["app", "gateway"]
