"""The options every operator command shares: which broker, which account, which journal.

See :mod:`orderguard.cli.session` for what each means.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orderguard.cli.session import BrokerKind, Target

BrokerOpt = Annotated[
    BrokerKind,
    typer.Option(
        "--broker",
        envvar="ORDERGUARD_BROKER",
        help="sim: the embedded simulated exchange; projectx: the ProjectX adapter "
        "(PROJECT_X_API_KEY, PROJECT_X_USERNAME, PROJECTX_API_URL, ...).",
    ),
]
StateOpt = Annotated[
    Path | None,
    typer.Option(
        "--state",
        help="sim: the exchange's state file, shared with `orderguard gateway --state` "
        "(not while that gateway runs).",
    ),
]
ApiUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--api-url",
        help="projectx: the REST base (overrides PROJECTX_API_URL), e.g. the "
        "http://127.0.0.1:PORT of a running `orderguard gateway`.",
    ),
]
PxConfigOpt = Annotated[
    Path | None,
    typer.Option("--projectx-config", help="projectx: a settings file (.toml/.json, chmod 600)."),
]
AccountOpt = Annotated[
    int | None, typer.Option("--account", help="Account id (default: the broker's selection).")
]
JournalOpt = Annotated[
    Path | None,
    typer.Option(
        "--journal",
        envvar="ORDERGUARD_JOURNAL",
        help="Journal file (default: the ProjectX account's, or STATE.journal.db for sim).",
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="OrderManager settings (.toml/.json), risk limits included; ORDERGUARD_* too.",
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON object (see `orderguard schema`).")
]


def target(
    broker: BrokerKind,
    state: Path | None,
    api_url: str | None,
    projectx_config: Path | None,
    account: int | None,
    journal: Path | None,
    config: Path | None = None,
) -> Target:
    return Target(broker, state, api_url, projectx_config, account, journal, config)


__all__ = [
    "AccountOpt",
    "ApiUrlOpt",
    "BrokerKind",
    "BrokerOpt",
    "ConfigOpt",
    "JournalOpt",
    "JsonOpt",
    "PxConfigOpt",
    "StateOpt",
    "Target",
    "target",
]
