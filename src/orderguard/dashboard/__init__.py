"""The operator's dashboard: a live page of operations, positions and their protection,
breakers, the rate limiter, recovery statistics and charts, with a force-rollback button,
plus ``/metrics``. See docs/operators.md.

Inside a strategy::

    server = await serve_dashboard(orders, port=8765)   # prints nothing; .url_with_token
    ...
    await server.stop()

Beside one: ``orderguard dashboard --journal FILE`` (read-only), or ``orderguard dashboard
--demo`` for the embedded exchange with a strategy loop.
"""

from orderguard.dashboard.app import build_app
from orderguard.dashboard.server import (
    DEFAULT_PORT,
    DashboardServer,
    new_token,
    serve_dashboard,
    serving,
)
from orderguard.dashboard.state import (
    DashboardSource,
    JournalSource,
    ManagerSource,
    RollbackRefusedError,
    RollbackResult,
)

__all__ = [
    "DEFAULT_PORT",
    "DashboardServer",
    "DashboardSource",
    "JournalSource",
    "ManagerSource",
    "RollbackRefusedError",
    "RollbackResult",
    "build_app",
    "new_token",
    "serve_dashboard",
    "serving",
]
