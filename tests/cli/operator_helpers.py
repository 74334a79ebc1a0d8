"""Helpers of the operator-command tests: a gateway simulator served from a thread, and the CLI
invoked against it (``--broker projectx --api-url``) or against a sim state file."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx2
from pydantic import BaseModel
from typer.testing import CliRunner, Result

from orderguard.cli.app import app
from orderguard.cli.logs import HANDLER_NAME
from orderguard.gateway import Gateway, GatewayConfig
from orderguard.gateway.config import AccountSpec

MNQ = "CON.F.US.MNQ.Z26"
START = Decimal("21000.00")
CONTRACTS = ("CON.F.US.MNQ.Z26", "CON.F.US.MES.Z26", "CON.F.US.ENQ.Z26", "CON.F.US.EP.Z26")

M = TypeVar("M", bound=BaseModel)


class GatewayThread:
    """``orderguard gateway`` in a thread of its own (its own event loop), on 127.0.0.1, with
    the market paused: the CLI under test runs its own ``asyncio.run`` in the test's thread."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.gateway: Gateway | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="gateway", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with Gateway(self.config).running(port=0) as gateway:
            self.gateway = gateway
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> GatewayThread:
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"gateway did not start: {self._error!r}")
        for contract in CONTRACTS:
            self.control("market", {"contractId": contract, "running": False})
        self.control("price", {"contractId": MNQ, "price": str(START)})
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    @property
    def url(self) -> str:
        assert self.gateway is not None and self.gateway.urls is not None
        return self.gateway.urls.base

    @property
    def credentials(self) -> tuple[str, str]:
        assert self.gateway is not None
        return self.gateway.credentials

    def control(self, name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        with httpx2.Client(base_url=self.url, timeout=10.0, trust_env=False) as client:
            r = client.post(f"/control/{name}", json=body or {})
            assert r.status_code == 200, r.text
            data: dict[str, Any] = r.json()
            return data

    def platform_order(self, side: int, size: int, order_type: int = 2, **extra: Any) -> int:
        """An order placed on the trading platform, outside orderguard."""
        body = {"accountId": 1, "contractId": MNQ, "type": order_type, "side": side,
                "size": size, **extra}  # fmt: skip
        answer = self.control("orders/place", body)
        assert answer["success"], answer
        return int(answer["orderId"])


def gateway_config() -> GatewayConfig:
    return GatewayConfig(
        accounts=(AccountSpec(1, "SIM-1"),),
        seed=3,
        start_prices={MNQ: START},
        history_days=0,
    )


class Cli:
    """Runs ``orderguard`` in-process (typer's CliRunner) with a fixed environment."""

    def __init__(self, env: dict[str, str], base: list[str]) -> None:
        self.env = {"COLUMNS": "200", **env}
        self.base = base
        self.runner = CliRunner()

    def __call__(self, *args: str, broker: bool = True) -> Result:
        argv = list(args)
        if broker:
            # The shared options go after the command name (and its arguments).
            argv = [*argv, *self.base]
        result = self.runner.invoke(app, argv, env=self.env)
        _drop_cli_log_handler()
        return result

    def json(self, model: type[M], *args: str, code: int = 0, broker: bool = True) -> M:
        """Run with ``--json``; check the exit status; validate stdout against ``model``."""
        result = self(*args, "--json", broker=broker)
        assert result.exit_code == code, (result.exit_code, result.output)
        return model.model_validate_json(result.stdout)


def _drop_cli_log_handler() -> None:
    # The CLI logs to the stderr it found; CliRunner's is gone after the call.
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(handler)


def projectx_cli(gateway: GatewayThread, tmp: Path) -> Cli:
    user, key = gateway.credentials
    env = {
        "PROJECT_X_API_KEY": key,
        "PROJECT_X_USERNAME": user,
        "XDG_STATE_HOME": str(tmp / "state"),  # the default journal lives under it
        "PROJECTX_FIRST_CONNECT_WAIT": "5",
        "PROJECTX_QUOTE_WAIT": "1",
    }
    return Cli(env, ["--broker", "projectx", "--api-url", gateway.url])


def sim_cli(tmp: Path) -> Cli:
    return Cli({"XDG_STATE_HOME": str(tmp / "state")}, ["--broker", "sim", "--state",
                                                         str(tmp / "sim.db")])  # fmt: skip


def log_lines(text: str) -> Iterator[dict[str, Any]]:
    """The JSON log records among ``text``'s lines."""
    for line in text.splitlines():
        if line.startswith("{") and '"logger"' in line:
            yield json.loads(line)
