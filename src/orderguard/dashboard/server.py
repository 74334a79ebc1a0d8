"""Serving the dashboard with uvicorn in the running event loop (inside a strategy or the CLI)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Self

import uvicorn

from orderguard.dashboard.app import LOOPBACK_HOSTS, build_app
from orderguard.dashboard.state import DashboardSource, ManagerSource
from orderguard.orders import OrderManager

log = logging.getLogger("orderguard.dashboard")

DEFAULT_PORT = 8765


class _InProcessServer(uvicorn.Server):
    """uvicorn without its signal handlers: the embedding program owns Ctrl-C."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def new_token() -> str:
    return secrets.token_urlsafe(24)


class DashboardServer:
    """A dashboard being served; ``url`` is where to point a browser, ``token`` authorises
    rollbacks. ``stop()`` (or leaving ``async with``) ends it."""

    def __init__(
        self,
        source: DashboardSource,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        token: str | None = None,
        interval: float = 1.0,
    ) -> None:
        self.source = source
        self.host = host
        self.port = port
        self.token = token or new_token()
        if host in ("0.0.0.0", "::"):
            # Every interface, as the operator asked: any Host name is accepted (the token
            # still guards every mutation; DNS-rebinding protection needs a named host).
            hosts: tuple[str, ...] = ("*",)
        elif host in LOOPBACK_HOSTS:
            hosts = LOOPBACK_HOSTS
        else:
            hosts = (*LOOPBACK_HOSTS, host)
        self.app = build_app(source, self.token, interval=interval, allowed_hosts=hosts)
        self._server: _InProcessServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._sampler: asyncio.Task[None] | None = None
        self.interval = interval
        self.url = ""

    @property
    def url_with_token(self) -> str:
        """The page with the token in its fragment (which a browser never sends)."""
        return f"{self.url}/#token={self.token}"

    def __repr__(self) -> str:  # never the token
        return f"DashboardServer(url={self.url!r})"

    async def start(self) -> str:
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        # Bound here, not by uvicorn: a port in use is an OSError for the caller, where uvicorn
        # would log it and call sys.exit from inside its task.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise OSError(
                exc.errno, f"cannot listen on {self.host}:{self.port}: {exc.strerror}"
            ) from exc
        server = _InProcessServer(config)
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="dashboard-uvicorn")
        while not server.started:
            if self._task.done():
                await self._task  # raises the bind error
                raise OSError(f"the dashboard could not listen on {self.host}:{self.port}")
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{shown}:{port}"
        log.info("dashboard serving on %s", self.url)
        self._sampler = asyncio.create_task(self._sample(), name="dashboard-sampler")
        return self.url

    async def _sample(self) -> None:
        """Exposure over time is recorded from the start, not only while a page is open."""
        while True:
            try:
                self.source.sample()
            except Exception:
                log.exception("dashboard sample failed")
            await asyncio.sleep(self.interval)  # real time, like the page it feeds

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
            self._sampler = None
        server, task = self._server, self._task
        if server is None or task is None:
            return
        # Event streams never end by themselves: a hard stop, not uvicorn's graceful wait.
        server.should_exit = server.force_exit = True
        for listener in server.servers:
            listener.close()
        for connection in list(server.server_state.connections):
            connection.shutdown()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self._server = self._task = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def serve_dashboard(
    orders: OrderManager,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    token: str | None = None,
    interval: float = 1.0,
) -> DashboardServer:
    """Serve the live dashboard (and ``/metrics``) of ``orders`` from this process, with its
    alerts if :meth:`OrderManager.enable_alerts` was called first. The returned server's
    ``url_with_token`` opens the page; ``await server.stop()`` ends it. Port 0 picks a free one."""
    server = DashboardServer(
        ManagerSource(orders, orders.alerts),
        host=host,
        port=port,
        token=token,
        interval=interval,
    )
    await server.start()
    return server


@contextlib.asynccontextmanager
async def serving(source: DashboardSource, **kwargs: object) -> AsyncIterator[DashboardServer]:
    server = DashboardServer(source, **kwargs)  # type: ignore[arg-type]
    async with server:
        yield server


__all__ = ["DEFAULT_PORT", "DashboardServer", "new_token", "serve_dashboard", "serving"]
